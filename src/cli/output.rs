//! What the client subcommands print: the lab's classification lines, the `bench` tables, and
//! strings from the server made safe for a terminal. Each returns its text; [`print_stdout`]
//! writes it.

use std::fmt::Write as _;
use std::time::Duration;

use crate::client::engine_bench::{self, EngineBenchReport};
use crate::client::load_generator::LoadReport;
use crate::proto;

/// Write `text` and a newline to stdout, ignoring a closed pipe (`swin-serve info | head`).
pub fn print_stdout(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
}

/// A string from the server as the terminal may show it: control characters (escape sequences,
/// carriage returns) written as escapes.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// A failed call as the CLI reports it: the RPC, the gRPC code and the server's message (escaped).
pub fn rpc_failed(rpc: &str, status: &tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(
        "{rpc} failed: {:?}: {}",
        status.code(),
        printable(status.message())
    )
}

/// One image's result as the lab prints it: top1_cls / top1_prob / top5_cls / top5_prob, then
/// (for `k` over 5) the top-k with labels and logits, then the server's timing.
pub fn classification_text(name: &str, r: &proto::ClassifyResponse, k: u32) -> String {
    let p = &r.predictions;
    let mut out = format!("{name}  [{}]", printable(&r.model));
    if let Some(top1) = p.first() {
        let _ = write!(
            out,
            "\n  top1_cls: {} ({})\n  top1_prob: {:.6}",
            top1.class_id,
            printable(&top1.label),
            top1.probability
        );
    }
    let top5: Vec<_> = p.iter().take(5).collect();
    let _ = write!(
        out,
        "\n  top5_cls: [{}]\n  top5_prob: [{}]",
        top5.iter()
            .map(|x| format!("{} ({})", x.class_id, printable(&x.label)))
            .collect::<Vec<_>>()
            .join(", "),
        top5.iter()
            .map(|x| format!("{:.6}", x.probability))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if k as usize > 5 {
        for (rank, x) in p.iter().take(k as usize).enumerate() {
            let _ = write!(
                out,
                "\n  {:>3}. {:>4} {:<30} p={:.6} logit={:.4}",
                rank + 1,
                x.class_id,
                printable(&x.label),
                x.probability,
                x.logit
            );
        }
    }
    if let Some(t) = &r.timing {
        let _ = write!(
            out,
            "\n  time: total {:.1} ms (preprocess {:.1}, queue {:.1}, inference {:.1}, batch {})",
            t.total_us as f64 / 1e3,
            t.preprocess_us as f64 / 1e3,
            t.queue_us as f64 / 1e3,
            t.inference_us as f64 / 1e3,
            t.batch_size
        );
    }
    out
}

/// The header of the `bench server` table.
pub fn load_table_header() -> String {
    format!(
        "{:<14} {:>5} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "rpc", "conc", "ok", "errors", "img/s", "mean ms", "p50 ms", "p90 ms", "p99 ms"
    )
}

/// One run's line of the `bench server` table (failures by gRPC code or HTTP status at the end).
pub fn load_table_row(report: &LoadReport) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let codes: Vec<String> = report
        .codes
        .iter()
        .map(|(code, n)| format!("{code}={n}"))
        .collect();
    format!(
        "{:<14} {:>5} {:>6} {:>6} {:>9.2} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  {}",
        report.rpc.name(),
        report.concurrency,
        report.ok,
        report.errors,
        report.throughput(),
        ms(report.mean()),
        ms(report.quantile(0.5)),
        ms(report.quantile(0.9)),
        ms(report.quantile(0.99)),
        codes.join(" ")
    )
}

/// `bench engine`'s output: with `json`, one object per line (a figure per batch size, then the
/// profiles); else a title line, the table and the profiles' lines.
pub fn engine_report_text(report: &EngineBenchReport, json: bool) -> String {
    let mut lines = Vec::new();
    if json {
        lines.extend(report.figures.iter().map(|f| f.to_json()));
        lines.extend(report.profiles.iter().map(|p| p.to_json()));
    } else {
        if let Some(f) = report.figures.first() {
            lines.push(format!(
                "{} on {} ({}, {}), {} threads{}",
                report.model,
                f.cpu,
                f.isa,
                f.precision,
                f.threads,
                f.fma_peak_gflops.map_or(String::new(), |p| format!(
                    "; FP32 FMA peak {p:.1} GFLOP/s{}",
                    f.bf16_peak_gflops
                        .map_or(String::new(), |b| format!(", bf16 {b:.1}"))
                ))
            ));
        }
        lines.push(
            engine_bench::format_table(&report.figures)
                .trim_end()
                .to_string(),
        );
        lines.extend(report.profiles.iter().map(|p| p.describe()));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::client::load_generator::Rpc;

    fn prediction(class_id: u32, label: &str, probability: f32) -> proto::Prediction {
        proto::Prediction {
            class_id,
            label: label.into(),
            probability,
            logit: probability * 10.0,
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("ok\x1b[31m\r\n"), "ok\\u{1b}[31m\\r\\n");
        assert_eq!(printable("tabby cat"), "tabby cat");
    }

    #[test]
    fn classification_prints_like_the_lab() {
        let response = proto::ClassifyResponse {
            model: "swinv2_tiny".into(),
            predictions: vec![
                prediction(281, "tabby", 0.5),
                prediction(282, "tiger cat", 0.25),
            ],
            ..Default::default()
        };
        let text = classification_text("cat.jpg", &response, 5);
        assert_eq!(
            text,
            "cat.jpg  [swinv2_tiny]\n  top1_cls: 281 (tabby)\n  top1_prob: 0.500000\n  \
             top5_cls: [281 (tabby), 282 (tiger cat)]\n  top5_prob: [0.500000, 0.250000]"
        );
        let long = classification_text("cat.jpg", &response, 6);
        assert!(long.contains("    1.  281 tabby"), "{long}");
        assert!(long.contains("logit=2.5000"), "{long}");
    }

    #[test]
    fn the_load_table_lines_up() {
        let report = LoadReport {
            rpc: Rpc::Batch,
            concurrency: 4,
            ok: 2,
            images: 16,
            errors: 1,
            first_error: Some("Unavailable: busy".into()),
            codes: BTreeMap::from([("Unavailable".to_string(), 1)]),
            wall: Duration::from_secs(2),
            latencies: vec![Duration::from_millis(10), Duration::from_millis(30)],
        };
        let header = load_table_header();
        let row = load_table_row(&report);
        assert!(header.starts_with("rpc        "), "{header}");
        assert!(row.starts_with("ClassifyBatch "), "{row}");
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            fields,
            [
                "ClassifyBatch",
                "4",
                "2",
                "1",
                "8.00",
                "20.0",
                "10.0",
                "30.0",
                "30.0",
                "Unavailable=1"
            ]
        );
    }
}

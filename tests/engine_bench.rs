//! `swin-serve bench` without `--server`: the local CPU engine benchmark, run as the real binary on
//! a small random SwinV2-T (64×64 input, window 2), its JSON lines parsed.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_swin-serve"))
        .arg("bench")
        .args(args)
        .env_remove("SWIN_SERVE_URL")
        // Every CPU has the scalar kernels: the figure must say which ran.
        .env("SWIN_SERVE_ISA", "scalar")
        .output()
        .expect("running swin-serve bench")
}

#[test]
fn local_bench_prints_one_json_figure_per_batch_size() {
    let out = bench(&[
        "--random-weights",
        "0",
        "--img-size",
        "64",
        "--window-size",
        "2",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--batch",
        "1",
        "--json",
        "--profile",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let figure = &lines[0];
    assert_eq!(figure["system"], "swin-serve-cpu");
    assert_eq!(figure["batch"], 1);
    assert_eq!(figure["runs"], 1);
    assert_eq!(figure["threads"], 1);
    for field in ["median_ms", "min_ms", "max_ms", "img_per_s", "gflops"] {
        assert!(
            figure[field].as_f64().is_some_and(|v| v > 0.0),
            "{field}: {figure}"
        );
    }
    assert!(figure["cpu"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(figure["isa"], "scalar", "SWIN_SERVE_ISA=scalar: {figure}");
    if cfg!(target_os = "linux") {
        assert!(figure["peak_rss_mb"].as_f64().is_some_and(|v| v > 1.0));
    }
    // img/s and GFLOP/s follow from the median.
    let median = figure["median_ms"].as_f64().unwrap();
    let per_s = figure["img_per_s"].as_f64().unwrap();
    assert!((per_s - 1e3 / median).abs() / per_s < 0.01, "{figure}");
    let profile = &lines[1];
    assert_eq!(profile["system"], "swin-serve-cpu-profile");
    assert!(profile["operations"]["qkv"].as_f64().is_some(), "{profile}");
    assert!(profile["stages"]["stage 0"].as_f64().is_some(), "{profile}");
}

#[test]
fn server_flags_without_a_server_are_refused() {
    let out = bench(&["--concurrency", "4"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--server"), "{stderr}");
    let out = bench(&["--server", "http://127.0.0.1:9", "--batch", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--batch"), "{stderr}");
}

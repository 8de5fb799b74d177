//! The command line as people and deployments type it: every old flag and environment variable
//! spelling, the old `bench [FLAGS]` form, and what each duration flag says 0 means.
//!
//! Clap reads environment variables itself; these tests read none (the parser's `env`s are
//! stripped, so a developer's SWIN_SERVE_* variables don't leak in). An environment is given as
//! a fake lookup: [`renamed_env`] applies the old names to it, and each variable then becomes the
//! flag that declares it (found by its `env` name, so the name is what is tested).

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Duration;

use clap::CommandFactory;

use super::args::{Cli, Command};
use super::bench_args::{BenchEngineArgs, BenchMode, BenchServerArgs};
use super::env_aliases::{renamed_env, ENV_ALIASES};
use super::parse::{legacy_bench_mode, parse_with, LegacyBench};
use super::serve::ServeSettings;
use super::serve_args::SERVE_AFTER_HELP;
use crate::client::load_generator::Rpc;

fn no_env(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| arg.env(None))
        .mut_subcommands(no_env)
}

fn lookup(env: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = env
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |name| map.get(name).cloned()
}

/// `swin-serve ARGS` with the environment `env`.
fn parse_env(args: &[&str], env: &[(&str, &str)]) -> Result<Cli, clap::Error> {
    let argv = std::iter::once("swin-serve").chain(args.iter().copied());
    parse_with(&no_env(Cli::command()), argv, lookup(env))
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    parse_env(args, &[])
}

/// The `serve` subcommand's declared flags.
fn serve_command() -> clap::Command {
    Cli::command()
        .find_subcommand("serve")
        .expect("serve")
        .clone()
}

/// The flag (long name) that reads environment variable `name`.
fn flag_reading(name: &str) -> Option<String> {
    serve_command()
        .get_arguments()
        .find(|arg| arg.get_env().is_some_and(|e| e == name))
        .and_then(|arg| arg.get_long().map(str::to_string))
}

/// `serve EXTRA` with the environment `env` (old names applied, then each variable as its flag).
fn serve_with_env(env: &[(&str, &str)], extra: &[&str]) -> String {
    let env_lookup = lookup(env);
    let mut vars: Vec<(String, OsString)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    for renamed in renamed_env(&env_lookup) {
        vars.retain(|(k, _)| k != renamed.alias.old);
        if let Some((new, value)) = renamed.copy() {
            vars.push((new.to_string(), value.clone()));
        }
    }
    let mut args = vec!["serve".to_string()];
    for (name, value) in vars {
        let flag = flag_reading(&name).unwrap_or_else(|| panic!("no serve flag reads {name}"));
        args.push(format!("--{flag}={}", value.to_str().unwrap()));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    serve_settings(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `swin-serve ARGS` (a serve command line) as its settings, printed (every field compared).
fn serve_settings(args: &[&str]) -> String {
    let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let Command::Serve(serve) = cli.command else {
        panic!("{args:?} is not serve");
    };
    format!("{:?}", ServeSettings::try_from(serve).unwrap())
}

/// Every flag `serve` took before the rename (src/main.rs at the time), as typed then.
const OLD_SERVE_FLAGS: &[&str] = &[
    "model",
    "model-name",
    "random-weights",
    "listen",
    "instances",
    "threads",
    "max-batch",
    "max-queue-delay",
    "max-queue-wait",
    "queue-capacity",
    "labels",
    "backend",
    "plugin-lib",
    "device",
    "img-size",
    "window-size",
    "model-url",
    "model-sha256",
    "cache-dir",
    "max-message-bytes",
    "max-image-pixels",
    "max-batch-images",
    "max-concurrent-decodes",
    "drain-delay-secs",
    "shutdown-timeout",
    "max-concurrent-streams",
    "max-connection-age",
    "metrics-listen",
    "auth-token-file",
    "request-timeout",
    "tls-cert",
    "tls-key",
    "tls-client-ca",
    "health-listen",
    "max-in-flight",
    "memory-budget",
    "message-timeout",
    "idle-timeout",
    "engine-hang-timeout",
    "no-reflection",
    "otlp-endpoint",
];

/// Every environment variable `serve` read before the rename.
const OLD_SERVE_ENV: &[&str] = &[
    "SWIN_SERVE_MODEL",
    "SWIN_SERVE_MODEL_NAME",
    "SWIN_SERVE_RANDOM_WEIGHTS",
    "SWIN_SERVE_LISTEN",
    "SWIN_SERVE_INSTANCES",
    "SWIN_SERVE_THREADS",
    "SWIN_SERVE_MAX_BATCH",
    "SWIN_SERVE_MAX_QUEUE_DELAY_SECS",
    "SWIN_SERVE_MAX_QUEUE_WAIT_SECS",
    "SWIN_SERVE_QUEUE_CAPACITY",
    "SWIN_SERVE_LABELS",
    "SWIN_SERVE_BACKEND",
    "SWIN_SERVE_PLUGIN_LIBS",
    "SWIN_SERVE_DEVICE",
    "SWIN_SERVE_IMG_SIZE",
    "SWIN_SERVE_WINDOW_SIZE",
    "SWIN_SERVE_MODEL_URL",
    "SWIN_SERVE_MODEL_SHA256",
    "SWIN_SERVE_CACHE",
    "SWIN_SERVE_MAX_MESSAGE_BYTES",
    "SWIN_SERVE_MAX_IMAGE_PIXELS",
    "SWIN_SERVE_MAX_BATCH_IMAGES",
    "SWIN_SERVE_MAX_CONCURRENT_DECODES",
    "SWIN_SERVE_DRAIN_DELAY_SECS",
    "SWIN_SERVE_SHUTDOWN_TIMEOUT_SECS",
    "SWIN_SERVE_MAX_CONCURRENT_STREAMS",
    "SWIN_SERVE_MAX_CONNECTION_AGE_SECS",
    "SWIN_SERVE_METRICS_LISTEN",
    "SWIN_SERVE_AUTH_TOKEN_FILE",
    "SWIN_SERVE_REQUEST_TIMEOUT_SECS",
    "SWIN_SERVE_TLS_CERT",
    "SWIN_SERVE_TLS_KEY",
    "SWIN_SERVE_TLS_CLIENT_CA",
    "SWIN_SERVE_HEALTH_LISTEN",
    "SWIN_SERVE_MAX_IN_FLIGHT",
    "SWIN_SERVE_MEMORY_BUDGET",
    "SWIN_SERVE_MESSAGE_TIMEOUT",
    "SWIN_SERVE_IDLE_TIMEOUT",
    "SWIN_SERVE_ENGINE_HANG_TIMEOUT_SECS",
    "SWIN_SERVE_NO_REFLECTION",
    "SWIN_SERVE_OTLP_ENDPOINT",
];

/// Old variable, the flag it sets, a value, and flags it needs to matter.
const RENAMED_ENV: &[(&str, &str, &str, &[&str])] = &[
    (
        "SWIN_SERVE_MAX_QUEUE_DELAY_SECS",
        "max-queue-delay",
        "0.25",
        &[],
    ),
    ("SWIN_SERVE_MAX_QUEUE_WAIT_SECS", "max-queue-wait", "3", &[]),
    ("SWIN_SERVE_DRAIN_DELAY_SECS", "drain-delay", "5", &[]),
    (
        "SWIN_SERVE_SHUTDOWN_TIMEOUT_SECS",
        "shutdown-timeout",
        "7.5",
        &[],
    ),
    (
        "SWIN_SERVE_MAX_CONNECTION_AGE_SECS",
        "max-connection-age",
        "600",
        &[],
    ),
    (
        "SWIN_SERVE_REQUEST_TIMEOUT_SECS",
        "request-timeout",
        "2",
        &[],
    ),
    (
        "SWIN_SERVE_ENGINE_HANG_TIMEOUT_SECS",
        "engine-hang-timeout",
        "45",
        &[],
    ),
    (
        "SWIN_SERVE_PLUGIN_LIBS",
        "plugin-lib",
        "a.so,b.so",
        &["--backend", "mlu", "--model", "m.magicmind"],
    ),
    ("SWIN_SERVE_CACHE", "cache-dir", "/tmp/swin-cache", &[]),
];

fn env_name_of(flag: &str) -> String {
    format!("SWIN_SERVE_{}", flag.to_uppercase().replace('-', "_"))
}

#[test]
fn every_old_serve_flag_is_still_accepted() {
    let serve = serve_command();
    for old in OLD_SERVE_FLAGS {
        let known = serve.get_arguments().any(|arg| {
            arg.get_long() == Some(old) || arg.get_all_aliases().is_some_and(|a| a.contains(old))
        });
        assert!(known, "--{old} is gone");
    }
}

#[test]
fn drain_delay_secs_is_drain_delay() {
    let old = serve_settings(&["serve", "--drain-delay-secs", "5"]);
    assert_eq!(old, serve_settings(&["serve", "--drain-delay", "5"]));
    assert_eq!(old, serve_settings(&["serve", "--drain-delay-secs=5"]));
    assert_ne!(old, serve_settings(&["serve"]));
    assert!(old.contains("drain_delay: 5s"), "{old}");
}

#[test]
fn max_connection_age_takes_integers_and_decimals() {
    let integer = serve_settings(&["serve", "--max-connection-age", "1800"]);
    assert!(
        integer.contains("max_connection_age: Some(1800s)"),
        "{integer}"
    );
    assert_eq!(
        integer,
        serve_settings(&["serve", "--max-connection-age", "1800.0"])
    );
    let decimal = serve_settings(&["serve", "--max-connection-age", "0.5"]);
    assert!(
        decimal.contains("max_connection_age: Some(500ms)"),
        "{decimal}"
    );
    let off = serve_settings(&["serve", "--max-connection-age", "0"]);
    assert!(off.contains("max_connection_age: None"), "{off}");
}

#[test]
fn every_serve_flag_reads_its_own_env_name() {
    for arg in serve_command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "log-format") {
            continue;
        }
        let env = arg.get_env().map(|e| e.to_str().unwrap().to_string());
        assert_eq!(env, Some(env_name_of(long)), "--{long}");
    }
}

#[test]
fn every_old_serve_env_name_is_still_read() {
    let aliased: Vec<&str> = ENV_ALIASES.iter().map(|a| a.old).collect();
    for old in OLD_SERVE_ENV {
        assert!(
            flag_reading(old).is_some() || aliased.contains(old),
            "{old} is no longer read"
        );
    }
}

#[test]
fn every_old_env_spelling_sets_what_the_new_one_does() {
    let mut covered: Vec<&str> = RENAMED_ENV.iter().map(|(old, ..)| *old).collect();
    let mut aliased: Vec<&str> = ENV_ALIASES.iter().map(|a| a.old).collect();
    covered.sort_unstable();
    aliased.sort_unstable();
    assert_eq!(covered, aliased, "every alias is tested");
    let default = serve_settings(&["serve"]);
    for &(old, flag, value, extra) in RENAMED_ENV {
        let new = env_name_of(flag);
        assert_eq!(flag_reading(&new).as_deref(), Some(flag), "{new}");
        let by_flag = {
            let mut args = vec!["serve".to_string(), format!("--{flag}={value}")];
            args.extend(extra.iter().map(|s| s.to_string()));
            serve_settings(&args.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let by_old = serve_with_env(&[(old, value)], extra);
        let by_new = serve_with_env(&[(&new, value)], extra);
        assert_eq!(by_old, by_new, "{old} vs {new}");
        assert_eq!(by_old, by_flag, "{old} vs --{flag}");
        let baseline = if extra.is_empty() {
            default.clone()
        } else {
            let mut args = vec!["serve"];
            args.extend_from_slice(extra);
            serve_settings(&args)
        };
        assert_ne!(by_old, baseline, "{old}={value} changed nothing");
    }
}

#[test]
fn the_new_env_name_wins_over_the_old() {
    let both = serve_with_env(
        &[
            ("SWIN_SERVE_DRAIN_DELAY_SECS", "5"),
            ("SWIN_SERVE_DRAIN_DELAY", "9"),
        ],
        &[],
    );
    assert_eq!(both, serve_settings(&["serve", "--drain-delay", "9"]));
}

#[test]
fn the_renamed_env_names_are_in_serve_help() {
    for alias in ENV_ALIASES {
        let line = SERVE_AFTER_HELP
            .lines()
            .find(|l| l.trim_start().starts_with(alias.old))
            .unwrap_or_else(|| panic!("{} missing from serve --help", alias.old));
        assert!(line.trim_end().ends_with(alias.new), "{line}");
    }
}

#[test]
fn every_duration_flag_says_what_0_means() {
    fn check(command: &clap::Command, path: &str) {
        for arg in command.get_arguments() {
            let seconds = arg
                .get_value_names()
                .is_some_and(|names| names.iter().any(|n| n == "SECONDS"));
            if seconds {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(
                    help.contains("0: ") || help.contains("more than 0"),
                    "{path} --{}: {help}",
                    arg.get_long().unwrap_or("?")
                );
            }
        }
        for sub in command.get_subcommands() {
            check(sub, &format!("{path} {}", sub.get_name()));
        }
    }
    check(&Cli::command(), "swin-serve");
}

#[test]
fn the_parser_is_consistent() {
    Cli::command().debug_assert();
}

fn bench(args: &[&str], env: &[(&str, &str)]) -> BenchMode {
    let mut argv = vec!["bench"];
    argv.extend_from_slice(args);
    match parse_env(&argv, env)
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
        .command
    {
        Command::Bench(b) => {
            assert!(b.legacy_flags.is_empty(), "{argv:?}: {:?}", b.legacy_flags);
            b.mode.unwrap_or_else(|| panic!("{argv:?}: no subcommand"))
        }
        _ => panic!("{argv:?} is not bench"),
    }
}

fn engine(args: &[&str]) -> BenchEngineArgs {
    match bench(args, &[]) {
        BenchMode::Engine(e) => e,
        other => panic!("{args:?}: {other:?}"),
    }
}

fn server(args: &[&str], env: &[(&str, &str)]) -> BenchServerArgs {
    match bench(args, env) {
        BenchMode::Server(s) => s,
        other => panic!("{args:?}: {other:?}"),
    }
}

#[test]
fn old_bench_without_server_is_bench_engine() {
    let e = engine(&[]);
    assert!(e.batch.is_empty() && !e.json && !e.profile);
    let e = engine(&[
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
        "1,8",
        "--json",
        "--profile",
    ]);
    assert_eq!(e.random_weights, Some(0));
    assert_eq!((e.img_size, e.window_size), (Some(64), Some(2)));
    assert_eq!((e.runs, e.warmup, e.threads), (Some(1), Some(0), Some(1)));
    assert_eq!(e.batch, [1, 8]);
    assert!(e.json && e.profile);
    assert_eq!(
        engine(&["--checkpoint", "m.pth"]).model,
        Some("m.pth".into())
    );
    assert_eq!(engine(&["--model", "m.pth"]).model, Some("m.pth".into()));
    // The explicit form reads the same.
    let explicit = engine(&["engine", "--batch", "1,8", "--json"]);
    assert_eq!(explicit.batch, [1, 8]);
    assert!(explicit.json);
}

#[test]
fn old_bench_with_server_is_bench_server() {
    let s = server(
        &[
            "--server",
            "http://127.0.0.1:1",
            "--rpc",
            "classify,model-infer",
            "--concurrency",
            "1,4",
            "--requests",
            "50",
            "--warmup",
            "2",
            "--image",
            "cat.png",
            "--rate",
            "20",
            "--token-file",
            "t",
            "--tls-ca",
            "ca.pem",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--timeout",
            "10",
        ],
        &[],
    );
    assert_eq!(s.connection.server.as_deref(), Some("http://127.0.0.1:1"));
    assert_eq!(s.rpc, [Rpc::Classify, Rpc::ModelInfer]);
    assert_eq!(s.concurrency, [1, 4]);
    assert_eq!(
        (s.requests, s.warmup, s.rate),
        (Some(50), Some(2), Some(20.0))
    );
    assert_eq!(s.image, Some("cat.png".into()));
    assert_eq!(s.connection.token_file, Some("t".into()));
    assert_eq!(
        s.connection.timeout.and_then(|t| t.limit()),
        Some(Duration::from_secs(10))
    );
    let s = server(
        &[
            "--server=http://h:1",
            "--duration",
            "1.5",
            "--rpc",
            "batch,stream",
        ],
        &[],
    );
    assert_eq!(
        s.duration.map(|d| d.duration()),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(s.rpc, [Rpc::Batch, Rpc::Stream]);
    // SWIN_SERVE_URL alone makes the old form a server benchmark.
    let s = server(&["--concurrency", "4"], &[("SWIN_SERVE_URL", "http://h:2")]);
    assert_eq!(s.concurrency, [4]);
    // The explicit form reads the same, and needs no --server (the default URL).
    let s = server(&["server", "--concurrency", "2"], &[]);
    assert_eq!((s.concurrency, s.connection.server), (vec![2], None));
}

#[test]
fn the_old_form_is_decided_by_server_or_its_env() {
    let flags = |f: &[&str]| f.iter().map(OsString::from).collect::<Vec<_>>();
    let none = lookup(&[]);
    assert_eq!(legacy_bench_mode(&flags(&[]), &none), LegacyBench::Engine);
    assert_eq!(
        legacy_bench_mode(&flags(&["--batch", "1"]), &none),
        LegacyBench::Engine
    );
    assert_eq!(
        legacy_bench_mode(&flags(&["--server", "u"]), &none),
        LegacyBench::Server
    );
    assert_eq!(
        legacy_bench_mode(&flags(&["--server=u"]), &none),
        LegacyBench::Server
    );
    let url = lookup(&[("SWIN_SERVE_URL", "")]);
    assert_eq!(legacy_bench_mode(&flags(&[]), &url), LegacyBench::Server);
}

#[test]
fn the_other_modes_flags_get_the_old_hint() {
    let err = parse(&["bench", "--concurrency", "4"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--concurrency"), "{err}");
    assert!(err.contains("give --server URL"), "{err}");
    let err = parse(&["bench", "--timeout=3"]).unwrap_err().to_string();
    assert!(err.contains("--timeout loads a server"), "{err}");
    let err = parse(&["bench", "--server", "http://h:1", "--batch", "1"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--batch is for the local engine benchmark"),
        "{err}"
    );
    let err = parse(&["bench", "--no-such-flag"]).unwrap_err().to_string();
    assert!(
        err.contains("--no-such-flag") && !err.contains("tip: --no"),
        "{err}"
    );
}

#[test]
fn global_flags_go_anywhere_in_the_old_form() {
    use crate::telemetry::LogFormat;
    for args in [
        &["--log-format", "json", "bench", "--runs", "1"][..],
        &["bench", "--runs", "1", "--log-format", "json"],
        &["bench", "--log-format=json", "--runs", "1"],
    ] {
        let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(cli.log_format, LogFormat::Json, "{args:?}");
        let Command::Bench(b) = cli.command else {
            panic!()
        };
        let Some(BenchMode::Engine(e)) = b.mode else {
            panic!("{args:?}")
        };
        assert_eq!(e.runs, Some(1));
    }
}

#[test]
fn client_subcommands_parse() {
    let cli = parse(&[
        "info",
        "--server",
        "https://h:443",
        "--json",
        "--timeout",
        "2",
    ])
    .unwrap();
    let Command::Info(info) = cli.command else {
        panic!()
    };
    assert!(info.json);
    assert_eq!(info.connection.server.as_deref(), Some("https://h:443"));
    let cli = parse(&["classify", "--top-k", "3", "a.jpg", "b.jpg"]).unwrap();
    let Command::Classify(c) = cli.command else {
        panic!()
    };
    assert_eq!((c.top_k, c.images.len()), (3, 2));
    let err = parse(&["info", "--timeout", "0"]).unwrap_err().to_string();
    assert!(err.contains("must be more than 0 seconds"), "{err}");
}

#[test]
fn the_otlp_endpoint_is_only_serves() {
    let cli = parse(&["serve", "--otlp-endpoint", "http://c:4317"]).unwrap();
    assert_eq!(cli.otlp_endpoint(), Some("http://c:4317"));
    assert_eq!(
        parse(&["serve", "--otlp-endpoint", ""])
            .unwrap()
            .otlp_endpoint(),
        None
    );
    assert_eq!(parse(&["info"]).unwrap().otlp_endpoint(), None);
}

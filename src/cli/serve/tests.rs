//! `serve`'s flags → [`ServeSettings`]: the defaults, and what 0 means for each duration.

use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

use super::*;
use crate::server::DEFAULT_LISTEN;

#[derive(Parser)]
struct ServeOnly {
    #[command(flatten)]
    serve: ServeArgs,
}

/// `serve ARGS` as settings, reading no environment variable.
fn settings(args: &[&str]) -> ServeSettings {
    try_settings(args).unwrap()
}

fn try_settings(args: &[&str]) -> Result<ServeSettings, ServeArgsError> {
    ServeSettings::try_from(serve_args(args).expect("flags parse"))
}

fn serve_args(args: &[&str]) -> Result<ServeArgs, clap::Error> {
    let command = ServeOnly::command().mut_args(|arg| arg.env(None));
    let mut matches =
        command.try_get_matches_from(std::iter::once("serve").chain(args.iter().copied()))?;
    Ok(ServeOnly::from_arg_matches_mut(&mut matches)?.serve)
}

#[test]
fn defaults_are_the_servers_own() {
    let s = settings(&[]);
    assert_eq!(s.listen, DEFAULT_LISTEN.parse().unwrap());
    assert_eq!(
        format!("{:?}", s.server),
        format!("{:?}", ServerConfig::default())
    );
    let expected = ModelOptions::new(s.model.backend.clone());
    assert_eq!(format!("{:?}", s.model), format!("{expected:?}"));
    // Without --model or --random-weights: the official checkpoint, downloaded.
    let BackendOptions::Cpu(cpu) = &s.model.backend else {
        panic!("default backend: {:?}", s.model.backend);
    };
    assert!(
        matches!(cpu.weights, WeightsSource::Download { .. }),
        "{:?}",
        cpu.weights
    );
    assert_eq!(cpu.instances, 1);
    assert!(cpu.threads >= 1);
}

#[test]
fn zero_means_off_for_limits() {
    let s = settings(&[
        "--max-queue-wait",
        "0",
        "--max-connection-age",
        "0",
        "--request-timeout",
        "0",
        "--message-timeout",
        "0",
        "--idle-timeout",
        "0",
        "--engine-hang-timeout",
        "0",
    ]);
    assert_eq!(s.model.max_queue_wait, None);
    assert_eq!(s.server.max_connection_age, None);
    assert_eq!(s.server.request_timeout, None);
    assert_eq!(s.server.message_timeout, None);
    assert_eq!(s.server.idle_timeout, None);
    assert_eq!(s.server.engine_hang_timeout, None);
}

#[test]
fn zero_means_immediately_for_delays() {
    let s = settings(&[
        "--max-queue-delay",
        "0",
        "--drain-delay",
        "0",
        "--shutdown-timeout",
        "0",
    ]);
    assert_eq!(s.model.max_queue_delay, Duration::ZERO);
    assert_eq!(s.server.drain_delay, Duration::ZERO);
    assert_eq!(s.server.shutdown_timeout, Duration::ZERO);
}

#[test]
fn durations_are_decimal_seconds() {
    let s = settings(&[
        "--max-queue-delay",
        "0.005",
        "--max-queue-wait",
        "2.5",
        "--drain-delay",
        "5",
        "--shutdown-timeout",
        "1.5",
        "--max-connection-age",
        "0.25",
        "--request-timeout",
        "3",
        "--message-timeout",
        "4",
        "--idle-timeout",
        "60",
        "--engine-hang-timeout",
        "90",
    ]);
    let ms = Duration::from_millis;
    assert_eq!(s.model.max_queue_delay, ms(5));
    assert_eq!(s.model.max_queue_wait, Some(ms(2500)));
    assert_eq!(s.server.drain_delay, ms(5000));
    assert_eq!(s.server.shutdown_timeout, ms(1500));
    assert_eq!(s.server.max_connection_age, Some(ms(250)));
    assert_eq!(s.server.request_timeout, Some(ms(3000)));
    assert_eq!(s.server.message_timeout, Some(ms(4000)));
    assert_eq!(s.server.idle_timeout, Some(ms(60_000)));
    assert_eq!(s.server.engine_hang_timeout, Some(ms(90_000)));
}

#[test]
fn bad_durations_are_refused_while_parsing() {
    for (flag, value) in [
        ("--drain-delay", "-1"),
        ("--max-queue-delay", "NaN"),
        ("--idle-timeout", "1e30"),
        ("--max-connection-age", "soon"),
        ("--request-timeout", "inf"),
    ] {
        let err = serve_args(&[&format!("{flag}={value}")]).unwrap_err();
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::ValueValidation,
            "{flag}"
        );
        assert!(err.to_string().contains(flag), "{err}");
    }
}

#[test]
fn the_other_flags_reach_their_fields() {
    let s = settings(&[
        "--random-weights",
        "3",
        "--img-size",
        "64",
        "--window-size",
        "4",
        "--instances",
        "2",
        "--threads",
        "3",
        "--max-batch",
        "4",
        "--queue-capacity",
        "9",
        "--max-image-pixels",
        "1000",
        "--model-name",
        "tiny",
        "--listen",
        "127.0.0.1:1234",
        "--max-message-bytes",
        "100",
        "--max-batch-images",
        "7",
        "--max-concurrent-decodes",
        "5",
        "--max-concurrent-streams",
        "6",
        "--max-in-flight",
        "8",
        "--memory-budget",
        "off",
        "--no-reflection",
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
        "--tls-client-ca",
        "ca.pem",
        "--auth-token-file",
        "tokens",
        "--metrics-listen",
        "127.0.0.1:9090",
        "--health-listen",
        "127.0.0.1:9091",
    ]);
    let BackendOptions::Cpu(cpu) = &s.model.backend else {
        panic!("{:?}", s.model.backend);
    };
    let WeightsSource::Random { seed, config } = &cpu.weights else {
        panic!("{:?}", cpu.weights);
    };
    assert_eq!((*seed, config.img_size, config.window_size), (3, 64, 4));
    assert_eq!((cpu.instances, cpu.threads, cpu.max_batch), (2, 3, 4));
    assert_eq!(s.model.queue_capacity, 9);
    assert_eq!(s.model.max_image_pixels, 1000);
    assert_eq!(s.model.model_name.as_deref(), Some("tiny"));
    assert_eq!(s.listen, "127.0.0.1:1234".parse().unwrap());
    assert_eq!(s.server.max_message_bytes, 100);
    assert_eq!(s.server.max_batch_images, 7);
    assert_eq!(s.server.max_concurrent_decodes, 5);
    assert_eq!(s.server.max_concurrent_streams, 6);
    assert_eq!(s.server.max_in_flight, 8);
    assert!(matches!(
        s.server.memory_budget,
        crate::server::memory_budget::BudgetSetting::Off
    ));
    assert!(!s.server.reflection);
    assert_eq!(
        s.server.tls,
        Some(TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            client_ca: Some("ca.pem".into()),
        })
    );
    assert_eq!(s.server.auth_token_file, Some("tokens".into()));
    assert_eq!(
        s.server.metrics_listen,
        Some("127.0.0.1:9090".parse().unwrap())
    );
    assert_eq!(
        s.server.health_listen,
        Some("127.0.0.1:9091".parse().unwrap())
    );
}

#[test]
fn the_mlu_backend_takes_its_model_and_plugins() {
    let s = settings(&[
        "--backend",
        "mlu",
        "--model",
        "swin.magicmind",
        "--plugin-lib",
        "a.so,b.so",
        "--device",
        "1",
    ]);
    let BackendOptions::Mlu(mlu) = &s.model.backend else {
        panic!("{:?}", s.model.backend);
    };
    assert_eq!(mlu.model_path, std::path::PathBuf::from("swin.magicmind"));
    assert_eq!(
        mlu.plugin_libs,
        ["a.so", "b.so"].map(std::path::PathBuf::from)
    );
    assert_eq!(mlu.device_id, 1);
}

#[test]
fn conversion_errors_name_the_flag() {
    let err = try_settings(&["--backend", "mlu"]).unwrap_err();
    assert!(matches!(err, ServeArgsError::MluNeedsModel), "{err}");
    assert!(
        err.to_string().starts_with("--backend mlu needs --model"),
        "{err}"
    );
    let err = try_settings(&["--model-name", "no spaces"]).unwrap_err();
    assert!(matches!(err, ServeArgsError::ModelName(_)), "{err}");
    assert!(err.to_string().starts_with("--model-name: "), "{err}");
}

#[test]
fn download_flags_make_the_download_source() {
    let s = settings(&[
        "--model-url",
        "https://example.invalid/m.pth",
        "--cache-dir",
        "/tmp/cache",
        "--model-sha256",
        &"ab".repeat(32),
    ]);
    let BackendOptions::Cpu(cpu) = &s.model.backend else {
        panic!("{:?}", s.model.backend);
    };
    let WeightsSource::Download {
        url,
        cache_dir,
        sha256,
    } = &cpu.weights
    else {
        panic!("{:?}", cpu.weights);
    };
    assert_eq!(url, "https://example.invalid/m.pth");
    assert_eq!(cache_dir, &std::path::PathBuf::from("/tmp/cache"));
    assert_eq!(sha256, &Some([0xab; 32]));
}

#[test]
fn preprocessing_flags_become_overrides() {
    use crate::preprocess::{CropMode, Interpolation, PreprocessOverrides};
    assert_eq!(
        settings(&[]).model.preprocess,
        PreprocessOverrides::default()
    );
    let s = settings(&[
        "--crop-pct",
        "0.9",
        "--crop-mode",
        "border",
        "--interpolation",
        "bilinear",
        "--mean",
        "0.5",
        "--std",
        "0.2,0.3,0.4",
    ]);
    assert_eq!(
        s.model.preprocess,
        PreprocessOverrides {
            resize_size: None,
            crop_pct: Some(0.9),
            crop_mode: Some(CropMode::Border),
            interpolation: Some(Interpolation::Bilinear),
            mean: Some([0.5; 3]),
            std: Some([0.2, 0.3, 0.4]),
        }
    );
    assert_eq!(
        settings(&["--resize-size", "300"])
            .model
            .preprocess
            .resize_size,
        Some(300)
    );
    for bad in [
        &["--resize-size", "300", "--crop-pct", "0.9"][..],
        &["--resize-size", "0"],
        &["--crop-pct", "0"],
        &["--crop-mode", "stretch"],
        &["--interpolation", "cubic"],
        &["--mean", "0.1,0.2"],
        &["--std", "nan"],
    ] {
        assert!(serve_args(bad).is_err(), "{bad:?}");
    }
}

//! Parsing the command line, the old `bench` form included: `bench [FLAGS]` without a
//! subcommand is parsed as `bench server [FLAGS]` when `--server` or `SWIN_SERVE_URL` is given,
//! else as `bench engine [FLAGS]`, and a flag of the other one is refused with the old hint.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches};

use super::args::{Cli, Command};
use super::bench_args::{BenchArgs, BenchEngineArgs, BenchServerArgs};

/// Which `bench` subcommand the old form means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyBench {
    Engine,
    Server,
}

impl LegacyBench {
    fn subcommand(self) -> &'static str {
        match self {
            LegacyBench::Engine => "engine",
            LegacyBench::Server => "server",
        }
    }

    /// The hint for `flag`, refused by this subcommand, when the other one takes it.
    fn hint_for(self, flag: &str) -> Option<String> {
        let (other, hint) = match self {
            LegacyBench::Engine => (
                BenchServerArgs::augment_args(clap::Command::new("server")),
                format!("{flag} loads a server: give --server URL (without it, bench measures the local CPU engine)"),
            ),
            LegacyBench::Server => (
                BenchEngineArgs::augment_args(clap::Command::new("engine")),
                format!("{flag} is for the local engine benchmark (bench without --server)"),
            ),
        };
        let name = flag.strip_prefix("--")?;
        let takes_it = other.get_arguments().any(|arg| {
            arg.get_long() == Some(name)
                || arg
                    .get_all_aliases()
                    .is_some_and(|aliases| aliases.contains(&name))
        });
        takes_it.then_some(hint)
    }
}

/// The subcommand the old form `bench FLAGS` means: `server` when the flags include `--server`
/// or `env` has `SWIN_SERVE_URL` (set, even empty), else `engine`.
pub fn legacy_bench_mode(
    flags: &[OsString],
    env: &impl Fn(&str) -> Option<OsString>,
) -> LegacyBench {
    let names_server = |flag: &OsString| {
        flag.to_str()
            .is_some_and(|f| f == "--server" || f.starts_with("--server="))
    };
    if flags.iter().any(names_server) || env("SWIN_SERVE_URL").is_some() {
        LegacyBench::Server
    } else {
        LegacyBench::Engine
    }
}

/// Parse `args` (the program name first). `env` is the environment the old `bench` form is
/// decided by ([`legacy_bench_mode`]); clap reads the flags' own variables from the process
/// environment. An error is clap's (`--help` and `--version` too): `Error::exit` prints it.
pub fn parse_command_line<I, T>(
    args: I,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    parse_with(&Cli::command(), args, env)
}

/// [`parse_command_line`] with `command` (`Cli::command()`, or in tests one that reads no
/// environment variables).
pub fn parse_with<I, T>(
    command: &clap::Command,
    args: I,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let parse = |args: &[OsString]| {
        let mut matches = command.clone().try_get_matches_from(args)?;
        Cli::from_arg_matches_mut(&mut matches)
    };
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = parse(&args)?;
    let Command::Bench(BenchArgs {
        mode: None,
        legacy_flags,
    }) = &cli.command
    else {
        return Ok(cli);
    };
    let mode = legacy_bench_mode(legacy_flags, &env);
    // The old flags take the rest of the command line; the subcommand goes right after `bench`
    // (only global flags, `--log-format`, can come between them).
    let flags_start = args.len() - legacy_flags.len();
    let at = args[..flags_start]
        .iter()
        .rposition(|a| a == "bench")
        .map_or(flags_start, |i| i + 1);
    let mut rewritten = args[..at].to_vec();
    rewritten.push(mode.subcommand().into());
    rewritten.extend_from_slice(&args[at..]);
    parse(&rewritten).map_err(|mut err| {
        if err.kind() == ErrorKind::UnknownArgument {
            let flag = match err.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(flag)) => flag.split('=').next().map(str::to_string),
                _ => None,
            };
            if let Some(hint) = flag.and_then(|f| mode.hint_for(&f)) {
                err.insert(
                    ContextKind::Suggested,
                    ContextValue::StyledStrs(vec![hint.into()]),
                );
            }
        }
        err
    })
}

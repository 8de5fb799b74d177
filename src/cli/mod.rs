//! The `swin-serve` command line, as a library: `main.rs` parses ([`parse_command_line`]), sets
//! up logging, and runs the subcommand ([`run_command`]).
//!
//! * [`args`]: the top level ([`Cli`], [`Command`]) and `classify` / `info`; [`serve_args`],
//!   [`bench_args`] and [`connection_args`]: the flags of `serve`, `bench engine` / `bench
//!   server`, and the clients' connection.
//! * [`seconds`]: the one value parser of every duration flag (decimal seconds; what 0 means is
//!   said per flag). [`env_aliases`]: old environment variable names still read.
//! * [`parse`]: the old `bench [FLAGS]` form, given its subcommand.
//! * [`serve`]: `serve`'s flags → [`ServeSettings`] (`ServerConfig` + `ModelOptions`), and
//!   serving. [`classify`], [`info`], [`bench`]: the client subcommands; [`output`]: what they
//!   print.
//!
//! The command runners return `anyhow::Result` (this is the binary's edge); conversions return
//! their own error types.

pub mod args;
pub mod bench;
pub mod bench_args;
pub mod classify;
pub mod connection_args;
pub mod convert;
pub mod dispatch;
pub mod env_aliases;
pub mod info;
pub mod output;
pub mod parse;
pub mod seconds;
pub mod serve;
pub mod serve_args;

#[cfg(test)]
mod tests;

pub use args::{Cli, Command};
pub use dispatch::run_command;
pub use env_aliases::{apply_env_aliases, warn_deprecated};
pub use parse::parse_command_line;
pub use serve::ServeSettings;

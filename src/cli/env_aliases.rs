//! Old environment variable names that keep working.
//!
//! Every `serve` flag reads `SWIN_SERVE_` + its name upper-cased with `-` → `_`
//! (`--drain-delay` ↔ `SWIN_SERVE_DRAIN_DELAY`), durations without a `_SECS` suffix. Clap reads
//! one variable per flag, so the older names in [`ENV_ALIASES`] are copied to their new names
//! before the command line is parsed ([`apply_env_aliases`]); where both are set, the new name
//! wins. Each old name in use is logged as deprecated once logging is up ([`warn_deprecated`]).

use std::ffi::OsString;

/// An environment variable renamed: `old` is still read, as `new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvAlias {
    /// The name deployments may still set.
    pub old: &'static str,
    /// The name the flag reads.
    pub new: &'static str,
}

/// Every renamed variable.
pub const ENV_ALIASES: &[EnvAlias] = &[
    alias(
        "SWIN_SERVE_MAX_QUEUE_DELAY_SECS",
        "SWIN_SERVE_MAX_QUEUE_DELAY",
    ),
    alias(
        "SWIN_SERVE_MAX_QUEUE_WAIT_SECS",
        "SWIN_SERVE_MAX_QUEUE_WAIT",
    ),
    alias("SWIN_SERVE_DRAIN_DELAY_SECS", "SWIN_SERVE_DRAIN_DELAY"),
    alias(
        "SWIN_SERVE_SHUTDOWN_TIMEOUT_SECS",
        "SWIN_SERVE_SHUTDOWN_TIMEOUT",
    ),
    alias(
        "SWIN_SERVE_MAX_CONNECTION_AGE_SECS",
        "SWIN_SERVE_MAX_CONNECTION_AGE",
    ),
    alias(
        "SWIN_SERVE_REQUEST_TIMEOUT_SECS",
        "SWIN_SERVE_REQUEST_TIMEOUT",
    ),
    alias(
        "SWIN_SERVE_ENGINE_HANG_TIMEOUT_SECS",
        "SWIN_SERVE_ENGINE_HANG_TIMEOUT",
    ),
    // `--plugin-lib` (repeatable; the variable holds a comma-separated list).
    alias("SWIN_SERVE_PLUGIN_LIBS", "SWIN_SERVE_PLUGIN_LIB"),
    // `--cache-dir`.
    alias("SWIN_SERVE_CACHE", "SWIN_SERVE_CACHE_DIR"),
];

const fn alias(old: &'static str, new: &'static str) -> EnvAlias {
    EnvAlias { old, new }
}

/// One old name found set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenamedEnv {
    pub alias: EnvAlias,
    /// The old variable's value.
    pub value: OsString,
    /// The new name is set too (and wins): the old one is ignored.
    pub shadowed: bool,
}

impl RenamedEnv {
    /// The value to give the new name before parsing (`None`: leave it, it is already set).
    pub fn copy(&self) -> Option<(&'static str, &OsString)> {
        (!self.shadowed).then_some((self.alias.new, &self.value))
    }
}

/// The old names set in the environment `lookup` reads (`std::env::var_os` for the process), in
/// [`ENV_ALIASES`] order.
pub fn renamed_env(lookup: impl Fn(&str) -> Option<OsString>) -> Vec<RenamedEnv> {
    ENV_ALIASES
        .iter()
        .filter_map(|&alias| {
            lookup(alias.old).map(|value| RenamedEnv {
                alias,
                value,
                shadowed: lookup(alias.new).is_some(),
            })
        })
        .collect()
}

/// Copy every old name set in the process environment to its new name (unless that is set).
///
/// Call at the very start of `main`, before any other thread runs (it changes the process
/// environment) and before the command line is parsed. Returns what it found, for
/// [`warn_deprecated`].
pub fn apply_env_aliases() -> Vec<RenamedEnv> {
    let renamed = renamed_env(|name| std::env::var_os(name));
    for (name, value) in renamed.iter().filter_map(RenamedEnv::copy) {
        std::env::set_var(name, value);
    }
    renamed
}

/// Log each old name in use as deprecated (once logging is set up).
pub fn warn_deprecated(renamed: &[RenamedEnv]) {
    for r in renamed {
        if r.shadowed {
            tracing::warn!(
                old = r.alias.old,
                new = r.alias.new,
                "{} is ignored: {} is set (and {} is its deprecated name)",
                r.alias.old,
                r.alias.new,
                r.alias.old
            );
        } else {
            tracing::warn!(
                old = r.alias.old,
                new = r.alias.new,
                "{} is deprecated: set {} instead",
                r.alias.old,
                r.alias.new
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn an_old_name_is_copied_to_the_new_one() {
        let renamed = renamed_env(env(&[("SWIN_SERVE_DRAIN_DELAY_SECS", "5")]));
        assert_eq!(renamed.len(), 1);
        assert_eq!(
            renamed[0].copy(),
            Some(("SWIN_SERVE_DRAIN_DELAY", &OsString::from("5")))
        );
    }

    #[test]
    fn the_new_name_wins_when_both_are_set() {
        let renamed = renamed_env(env(&[
            ("SWIN_SERVE_DRAIN_DELAY_SECS", "5"),
            ("SWIN_SERVE_DRAIN_DELAY", "7"),
        ]));
        assert_eq!(renamed.len(), 1);
        assert!(renamed[0].shadowed);
        assert_eq!(renamed[0].copy(), None);
    }

    #[test]
    fn nothing_to_do_without_old_names() {
        assert!(renamed_env(env(&[])).is_empty());
        assert!(renamed_env(env(&[("SWIN_SERVE_DRAIN_DELAY", "7")])).is_empty());
    }

    #[test]
    fn every_old_name_maps_to_its_new_name() {
        for alias in ENV_ALIASES {
            let renamed = renamed_env(env(&[(alias.old, "1")]));
            assert_eq!(renamed.len(), 1, "{alias:?}");
            assert_eq!(
                renamed[0].copy(),
                Some((alias.new, &OsString::from("1"))),
                "{alias:?}"
            );
        }
    }

    #[test]
    fn names_are_unique_and_follow_the_rule() {
        let mut names: Vec<&str> = ENV_ALIASES.iter().flat_map(|a| [a.old, a.new]).collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a name appears twice");
        for alias in ENV_ALIASES {
            assert!(alias.new.starts_with("SWIN_SERVE_"), "{alias:?}");
            assert!(!alias.new.ends_with("_SECS"), "{alias:?}");
        }
    }
}

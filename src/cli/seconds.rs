//! Durations on the command line: every duration flag takes seconds as a decimal number (`30`,
//! `0.005`, `1e-3`), parsed by [`seconds`], and says in its help what 0 means for it ([`Zero`]).

use std::fmt;
use std::time::Duration;

/// What 0 means for one duration flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zero {
    /// 0 turns the limit or feature off ([`Seconds::limit`] is `None`).
    Off,
    /// 0 is a duration like any other: do it immediately, wait for nothing.
    Immediately,
    /// 0 is refused: the flag needs more than 0 seconds.
    Refused,
}

/// A duration given as decimal seconds, and what 0 means for its flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds {
    duration: Duration,
    zero: Zero,
}

/// Why a text is not a number of seconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecondsError {
    #[error("not a number of seconds (decimal, e.g. 30 or 0.5)")]
    NotANumber(String),
    #[error("must not be negative")]
    Negative,
    #[error("must be a finite number of seconds")]
    NotFinite,
    #[error("more seconds than a duration can hold")]
    TooLarge,
    #[error("must be more than 0 seconds")]
    Zero,
}

impl Seconds {
    /// `duration` for a flag where 0 means `zero`.
    pub const fn new(duration: Duration, zero: Zero) -> Self {
        Self { duration, zero }
    }

    /// A default: `None` is written as 0 (for a flag where 0 means off).
    pub const fn off_when_none(duration: Option<Duration>) -> Self {
        match duration {
            Some(duration) => Self::new(duration, Zero::Off),
            None => Self::new(Duration::ZERO, Zero::Off),
        }
    }

    /// The duration: `None` when it is 0 on a flag where 0 means off. This is the one conversion
    /// every duration flag goes through.
    pub fn limit(self) -> Option<Duration> {
        (!(self.zero == Zero::Off && self.duration.is_zero())).then_some(self.duration)
    }

    /// The duration as given (0 included), for a flag where 0 means immediately.
    pub fn duration(self) -> Duration {
        self.duration
    }

    /// Parse `text` (decimal seconds) for a flag where 0 means `zero`.
    pub fn parse(text: &str, zero: Zero) -> Result<Self, SecondsError> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| SecondsError::NotANumber(text.to_string()))?;
        if value.is_nan() || value.is_infinite() {
            return Err(SecondsError::NotFinite);
        }
        if value < 0.0 {
            return Err(SecondsError::Negative);
        }
        let duration = Duration::try_from_secs_f64(value).map_err(|_| SecondsError::TooLarge)?;
        if zero == Zero::Refused && duration.is_zero() {
            return Err(SecondsError::Zero);
        }
        Ok(Self { duration, zero })
    }
}

impl fmt::Display for Seconds {
    /// Decimal seconds, as the flag takes them (shown as the flag's default in `--help`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.duration.as_secs_f64())
    }
}

impl From<Duration> for Seconds {
    /// A default for a flag where 0 means immediately.
    fn from(duration: Duration) -> Self {
        Self::new(duration, Zero::Immediately)
    }
}

/// The value parser of every duration flag: decimal seconds, not negative, finite; `zero` says
/// what 0 means for this flag (refused here, or kept for [`Seconds::limit`] to read). Clap reports
/// a refused value as `invalid value '-3' for '--flag <SECONDS>': must not be negative`.
pub fn seconds(
    zero: Zero,
) -> impl Fn(&str) -> Result<Seconds, SecondsError> + Clone + Send + Sync + 'static {
    move |text| Seconds::parse(text, zero)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, zero: Zero) -> Result<Seconds, SecondsError> {
        Seconds::parse(text, zero)
    }

    #[test]
    fn decimals_integers_and_exponents() {
        let d = |text| parse(text, Zero::Off).unwrap().duration();
        assert_eq!(d("30"), Duration::from_secs(30));
        assert_eq!(d("0.005"), Duration::from_millis(5));
        assert_eq!(d("1.5"), Duration::from_millis(1500));
        assert_eq!(d("1e-3"), Duration::from_millis(1));
        assert_eq!(d(" 2 "), Duration::from_secs(2));
        assert_eq!(d("1800"), Duration::from_secs(1800));
    }

    #[test]
    fn zero_means_what_the_flag_says() {
        assert_eq!(parse("0", Zero::Off).unwrap().limit(), None);
        assert_eq!(parse("0.0", Zero::Off).unwrap().limit(), None);
        assert_eq!(
            parse("0", Zero::Immediately).unwrap().limit(),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse("0", Zero::Immediately).unwrap().duration(),
            Duration::ZERO
        );
        assert_eq!(parse("0", Zero::Refused), Err(SecondsError::Zero));
        assert_eq!(
            parse("2", Zero::Off).unwrap().limit(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse("2", Zero::Refused).unwrap().limit(),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn negative_nan_infinite_huge_and_text_are_refused() {
        assert_eq!(parse("-1", Zero::Off), Err(SecondsError::Negative));
        assert_eq!(
            parse("-0.5", Zero::Immediately),
            Err(SecondsError::Negative)
        );
        assert_eq!(parse("NaN", Zero::Off), Err(SecondsError::NotFinite));
        assert_eq!(parse("inf", Zero::Off), Err(SecondsError::NotFinite));
        assert_eq!(parse("-inf", Zero::Off), Err(SecondsError::NotFinite));
        assert_eq!(parse("1e30", Zero::Off), Err(SecondsError::TooLarge));
        assert_eq!(
            parse("ten", Zero::Off),
            Err(SecondsError::NotANumber("ten".into()))
        );
        assert!(matches!(
            parse("", Zero::Off),
            Err(SecondsError::NotANumber(_))
        ));
        assert!(matches!(
            parse("5s", Zero::Off),
            Err(SecondsError::NotANumber(_))
        ));
    }

    #[test]
    fn display_round_trips_the_defaults() {
        for duration in [
            Duration::ZERO,
            Duration::from_millis(5),
            Duration::from_secs(20),
            Duration::from_secs(30 * 60),
        ] {
            let text = Seconds::from(duration).to_string();
            assert_eq!(
                parse(&text, Zero::Immediately).unwrap().duration(),
                duration,
                "{text}"
            );
        }
        assert_eq!(Seconds::off_when_none(None).to_string(), "0");
        assert_eq!(
            Seconds::off_when_none(Some(Duration::from_secs(300))).to_string(),
            "300"
        );
        assert_eq!(Seconds::from(Duration::from_millis(5)).to_string(), "0.005");
    }

    #[test]
    fn clap_reports_the_flag_and_the_reason() {
        let cmd = || {
            clap::Command::new("t").arg(
                clap::Arg::new("idle")
                    .long("idle-timeout")
                    .value_name("SECONDS")
                    .value_parser(seconds(Zero::Off)),
            )
        };
        let err = cmd()
            .try_get_matches_from(["t", "--idle-timeout=-3"])
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--idle-timeout"), "{text}");
        assert!(text.contains("must not be negative"), "{text}");
        let matches = cmd()
            .try_get_matches_from(["t", "--idle-timeout", "7"])
            .unwrap();
        assert_eq!(
            matches.get_one::<Seconds>("idle").unwrap().limit(),
            Some(Duration::from_secs(7))
        );
    }
}

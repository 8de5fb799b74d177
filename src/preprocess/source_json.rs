//! Typed reads of the keys of a checkpoint's preprocessing JSON (timm `pretrained_cfg`, Hugging
//! Face `preprocessor_config.json`), each refusing a value of the wrong type or out of range with
//! an error that names the file, the key and (shortened) the value.

use serde_json::{Map, Value};

use super::config::MAX_SIDE;
use super::PreprocessError;

/// Most characters of a bad value quoted in an error.
const QUOTED_VALUE_CHARS: usize = 60;

/// The keys of one JSON object, read for `origin`.
pub(super) struct Fields<'a> {
    origin: &'static str,
    object: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// `value` must be a JSON object.
    pub(super) fn new(origin: &'static str, value: &'a Value) -> Result<Self, PreprocessError> {
        match value {
            Value::Object(object) => Ok(Self { origin, object }),
            other => Err(PreprocessError::InvalidSource {
                origin,
                message: format!("expected a JSON object, found {}", quote(other)),
            }),
        }
    }

    /// An error about `key`.
    pub(super) fn error(&self, key: &str, message: impl std::fmt::Display) -> PreprocessError {
        PreprocessError::InvalidSource {
            origin: self.origin,
            message: format!("`{key}` {message}"),
        }
    }

    /// The value of `key`; `None` when absent or `null`.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    /// A boolean.
    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, PreprocessError> {
        self.get(key)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| self.error(key, format!("= {} must be true or false", quote(v))))
            })
            .transpose()
    }

    /// A string.
    pub(super) fn string(&self, key: &str) -> Result<Option<&'a str>, PreprocessError> {
        self.get(key)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.error(key, format!("= {} must be a string", quote(v))))
            })
            .transpose()
    }

    /// A finite number.
    pub(super) fn number(&self, key: &str) -> Result<Option<f64>, PreprocessError> {
        self.get(key).map(|v| self.number_value(key, v)).transpose()
    }

    /// `v` (found at `key`) as a finite number.
    pub(super) fn number_value(&self, key: &str, v: &Value) -> Result<f64, PreprocessError> {
        v.as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| self.error(key, format!("= {} must be a finite number", quote(v))))
    }

    /// `v` (found at `key`) as an image side: an integer from 1 to [`MAX_SIDE`].
    pub(super) fn side_value(&self, key: &str, v: &Value) -> Result<u32, PreprocessError> {
        v.as_u64()
            .filter(|&s| (1..=u64::from(MAX_SIDE)).contains(&s))
            .map(|s| s as u32)
            .ok_or_else(|| {
                self.error(
                    key,
                    format!("= {} must be an integer from 1 to {MAX_SIDE}", quote(v)),
                )
            })
    }

    /// Per-channel RGB values: a number for all three, or a list of three numbers (or of one,
    /// when `single_list` allows it), each finite in f32.
    pub(super) fn channels(
        &self,
        key: &str,
        single_list: bool,
    ) -> Result<Option<[f32; 3]>, PreprocessError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let bad = || {
            self.error(
                key,
                format!(
                    "= {} must be a number or a list of 3 numbers (RGB)",
                    quote(v)
                ),
            )
        };
        let as_f32 = |x: &Value| {
            x.as_f64()
                .map(|x| x as f32)
                .filter(|x| x.is_finite())
                .ok_or_else(bad)
        };
        match v {
            Value::Number(_) => Ok(Some([as_f32(v)?; 3])),
            Value::Array(items) if items.len() == 3 => Ok(Some([
                as_f32(&items[0])?,
                as_f32(&items[1])?,
                as_f32(&items[2])?,
            ])),
            Value::Array(items) if items.len() == 1 && single_list => {
                Ok(Some([as_f32(&items[0])?; 3]))
            }
            _ => Err(bad()),
        }
    }
}

/// `v` as compact JSON, shortened to [`QUOTED_VALUE_CHARS`] characters (control characters are
/// JSON escapes, so the text is safe in a log line).
pub(super) fn quote(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= QUOTED_VALUE_CHARS {
        text
    } else {
        let head: String = text.chars().take(QUOTED_VALUE_CHARS).collect();
        format!("{head}…")
    }
}

/// Python's truthiness of a JSON value (`null`, `false`, `0`, `""`, `[]`, `{}` are false): timm
/// reads `pretrained_cfg.get(key)` with `if value:`, falling back to its default on a false one.
pub(super) fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

//! Client-supplied text (request ids, header values, model and tensor names) as a log line or an
//! error message may hold it.

/// Most characters of a client-supplied string (request id, header value) written to a log line.
pub const LOG_TEXT_MAX_CHARS: usize = 128;

/// A client-supplied string as a log line may hold it: control characters and quotes escaped (no
/// forged log lines, no terminal escapes) and cut to [`LOG_TEXT_MAX_CHARS`] characters, with the
/// original length noted when cut.
pub fn untrusted(text: &str) -> String {
    let total = text.chars().count();
    let mut out: String = text
        .chars()
        .take(LOG_TEXT_MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if total > LOG_TEXT_MAX_CHARS {
        out.push_str(&format!("…({total} chars)"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::untrusted;

    #[test]
    fn untrusted_text_is_escaped_and_cut() {
        assert_eq!(untrusted("req-1"), "req-1");
        assert_eq!(
            untrusted("a\nINFO forged\u{1b}[2J"),
            "a\\nINFO forged\\u{1b}[2J"
        );
        let long = "x".repeat(10_000);
        let shown = untrusted(&long);
        assert!(shown.starts_with(&"x".repeat(128)) && shown.ends_with("…(10000 chars)"));
        assert!(shown.chars().count() < 150);
    }
}

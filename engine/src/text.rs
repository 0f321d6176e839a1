//! Free text people type (a mark's label, a silence's comment, a resource's name): what
//! it may contain. Text like this reaches the audit log, reports (HTML, CSV), alert
//! channels and terminals, so characters a reader cannot see are refused where it comes
//! in: control characters (NUL, ESC, …) and the invisible formatting characters that
//! change how text displays (soft hyphen, zero-width characters, line and paragraph
//! separators, bidirectional embeddings, overrides and isolates, the byte-order mark).
//!
//! Pure: compiled into the browser too, so a form can say the same thing the server says.

/// Invisible formatting characters: soft hyphen, zero-width space/joiners and direction
/// marks, line and paragraph separators, bidirectional embeddings and overrides, word
/// joiner and invisible operators, bidirectional isolates, the byte-order mark.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// The rule `value` breaks, without the field (for errors that add it themselves, such
/// as `EngineError::invalid`), or `None` when it is acceptable. `multiline` allows line
/// feeds and tabs (a silence's comment); a one-line label allows neither.
pub fn free_text_rule(value: &str, multiline: bool) -> Option<String> {
    let mut chars = value.chars().enumerate().peekable();
    let (at, c) = loop {
        let (at, c) = chars.next()?;
        // A form sends a line break as CR LF: the pair is a line break, a lone CR is not.
        let crlf = c == '\r' && chars.peek().is_some_and(|&(_, next)| next == '\n');
        let allowed = multiline && (c == '\n' || c == '\t' || crlf);
        if !allowed && (c.is_control() || is_invisible_format(c)) {
            break (at, c);
        }
    };
    let what = if c.is_control() {
        "a control character"
    } else {
        "an invisible formatting character"
    };
    let allowed = if multiline {
        " (line breaks and tabs are allowed)"
    } else {
        " (it is one line)"
    };
    Some(format!(
        "must not contain control characters or invisible formatting characters such as bidirectional overrides{allowed}; found {what}, U+{:04X}, at character {}",
        u32::from(c),
        at + 1
    ))
}

/// Refuses control characters (line breaks and tabs too) and invisible formatting
/// characters in a one-line text; the message names `field` and the rule.
pub fn check_free_text(field: &str, value: &str) -> Result<(), String> {
    match free_text_rule(value, false) {
        Some(rule) => Err(format!("{field}: {rule}")),
        None => Ok(()),
    }
}

/// [`check_free_text`] for a text of several lines (a comment): line breaks (LF or CR LF)
/// and tabs are allowed, every other control character (a lone CR included) is not.
pub fn check_free_text_multiline(field: &str, value: &str) -> Result<(), String> {
    match free_text_rule(value, true) {
        Some(rule) => Err(format!("{field}: {rule}")),
        None => Ok(()),
    }
}

/// `value` with every control character (except line feed, carriage return and tab) and
/// every invisible formatting character replaced by U+FFFD, the visible "�": for writing
/// text the rules above never saw (stored before them, or read from a monitored system)
/// into a document (a report's HTML or CSV).
pub fn visible(value: &str) -> std::borrow::Cow<'_, str> {
    let hidden =
        |c: char| !matches!(c, '\n' | '\r' | '\t') && (c.is_control() || is_invisible_format(c));
    if value.chars().any(hidden) {
        value
            .chars()
            .map(|c| if hidden(c) { '\u{FFFD}' } else { c })
            .collect::<String>()
            .into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_replaces_what_cannot_be_seen() {
        assert_eq!(visible("plain, text\nline"), "plain, text\nline");
        assert!(matches!(visible("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            visible("a\0b\u{1b}c\u{202E}d"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d"
        );
    }

    #[test]
    fn ordinary_text_passes() {
        for ok in [
            "deployed v2.3",
            "café — naïve 日本語",
            "a, \"quoted\" = 1",
            "",
        ] {
            assert_eq!(check_free_text("label", ok), Ok(()), "{ok:?}");
        }
        assert_eq!(
            check_free_text_multiline("comment", "line one\n\tline two\r\nthree"),
            Ok(())
        );
    }

    #[test]
    fn control_and_invisible_characters_are_refused_naming_the_field() {
        for bad in [
            "\0\0\0",
            "a\u{1b}[31mred",
            "two\nlines",
            "tab\there",
            "del\u{7f}",
            "c1\u{85}",
            "soft\u{00AD}hyphen",
            "zero\u{200B}width",
            "rtl\u{202E}txt.exe",
            "isolate\u{2066}x",
            "\u{FEFF}bom",
            "line\u{2028}sep",
        ] {
            let err = check_free_text("label", bad).unwrap_err();
            assert!(
                err.starts_with("label: must not contain control"),
                "{bad:?}: {err}"
            );
        }
        let err = check_free_text("label", "ab\0").unwrap_err();
        assert!(err.contains("U+0000, at character 3"), "{err}");
        let err = check_free_text("label", "x\u{202E}").unwrap_err();
        assert!(
            err.contains("invisible formatting character, U+202E"),
            "{err}"
        );
        // A comment may have lines, but not a lone carriage return, NUL or an override.
        for bad in ["a\rb", "end\r", "nul\0", "x\u{202E}y"] {
            assert!(
                check_free_text_multiline("comment", bad)
                    .unwrap_err()
                    .starts_with("comment: "),
                "{bad:?}"
            );
        }
    }
}

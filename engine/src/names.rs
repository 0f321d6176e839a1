//! The one rule for the names configured resources are known by: a database, a cache, a
//! load balancer, a fleet (`database:<name>`, `cache:<name>`, `lb:<name>`,
//! `fleet:<name>`), and the group keys that join them (`group`).
//!
//! A name is part of a resource id, of URLs (`/resources/database:orders`), of file names
//! (a stored password: `<data-dir>/secrets/database-orders.password`), of Prometheus
//! labels and of audit lines, so it is kept to what all of those read the same way:
//! `[a-z0-9][a-z0-9_.-]{0,62}` — a lowercase ASCII letter or digit, then up to 62
//! lowercase letters, digits, `_`, `.` or `-`. No slash, no space, no uppercase, nothing a
//! terminal, a spreadsheet or a bidirectional renderer reads differently (`=cmd`, `%s`,
//! U+202E, a byte-order mark).
//!
//! A resource's name may also not be one of [`RESERVED`]: the built-in resource type words
//! (`cpu`, `memory`, `disk`, `network` are the host's own resources, shown by the same
//! word; `database`, `cache`, `lb`, `fleet`, `custom` are the id prefixes) and words number
//! parsers read as a number (`nan`, `inf`, `infinity`). Group keys are not resources and
//! only follow the character rule.
//!
//! Checked where a change comes in (the API, the Settings forms, the configuration file),
//! never when stored configuration is read back: a name accepted before this rule keeps
//! working until it is changed.
//!
//! Pure: compiled into the browser too.

/// The longest name: 63 characters.
pub const MAX_NAME_LEN: usize = 63;

/// Names a configured resource may not have (see the module's documentation).
pub const RESERVED: &[&str] = &[
    "cpu", "memory", "disk", "network", "database", "cache", "lb", "fleet", "custom", "nan", "inf",
    "infinity",
];

/// The rule, in words, for messages and forms.
pub const NAME_RULE: &str = "must be 1–63 characters: a lowercase letter or digit first, then lowercase letters, digits, `_`, `.` or `-` (such as orders, app-1, db.main)";

/// The character rule `name` breaks (without the field), or `None` when it follows it.
pub fn name_rule(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    let length_ok = name.chars().count() <= MAX_NAME_LEN;
    if first_ok && rest_ok && length_ok {
        return None;
    }
    Some(format!("{NAME_RULE}, got {}", shown(name)))
}

/// The rule a configured resource's `name` breaks (the character rule, then [`RESERVED`]),
/// or `None` when it is acceptable.
pub fn resource_name_rule(name: &str) -> Option<String> {
    if let Some(rule) = name_rule(name) {
        return Some(rule);
    }
    RESERVED.contains(&name).then(|| {
        format!(
            "must not be {name:?}: the word is reserved for built-in resources and types, or reads as a number ({})",
            RESERVED.join(", ")
        )
    })
}

/// Checks a configured resource's name; the message names `field` and the rule.
pub fn check_resource_name(field: &str, name: &str) -> Result<(), String> {
    match resource_name_rule(name) {
        Some(rule) => Err(format!("{field}: {rule}")),
        None => Ok(()),
    }
}

/// Checks a group key (`group`): the character rule of names; the message names `field`.
pub fn check_group(field: &str, group: &str) -> Result<(), String> {
    match name_rule(group) {
        Some(rule) => Err(format!("{field}: {rule}")),
        None => Ok(()),
    }
}

/// `value` as a message may quote it: in quotes, every character outside printable ASCII
/// written as `\u{…}` (so an override or a control character is seen, not obeyed), at most
/// 64 characters.
pub fn shown(value: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in value.chars().enumerate() {
        if i == 64 {
            out.push('…');
            break;
        }
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_accepted() {
        let longest = "a".repeat(63);
        for ok in [
            "orders",
            "app-1",
            "db.main",
            "0",
            "shard_2",
            "sessions",
            longest.as_str(),
        ] {
            assert_eq!(check_resource_name("name", ok), Ok(()), "{ok:?}");
            assert_eq!(check_group("group", ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn names_outside_the_rule_are_refused_naming_the_field_and_the_rule() {
        let too_long = "a".repeat(64);
        for bad in [
            "",
            "a/b",
            "A",
            "Orders",
            "-x",
            "_x",
            ".x",
            "=cmd",
            "%s%n",
            "NaN",
            "a b",
            "\u{202e}gnp.exe",
            "x\u{202e}",
            "\u{feff}x",
            "zero\u{200b}width",
            "tab\tx",
            "café",
            "db:main",
            too_long.as_str(),
        ] {
            let err = check_resource_name("name", bad).unwrap_err();
            assert!(
                err.starts_with("name: must be 1–63 characters"),
                "{bad:?}: {err}"
            );
            assert!(
                check_group("group", bad)
                    .unwrap_err()
                    .starts_with("group: "),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn reserved_words_are_refused_for_resources_only() {
        for word in ["cpu", "memory", "disk", "network", "nan", "inf", "lb"] {
            let err = check_resource_name("name", word).unwrap_err();
            assert!(err.contains("reserved"), "{word}: {err}");
            assert_eq!(check_group("group", word), Ok(()), "{word}");
        }
        // Only the whole word: names that contain one are fine.
        assert_eq!(check_resource_name("name", "cpu-heavy"), Ok(()));
        assert_eq!(check_resource_name("name", "nano"), Ok(()));
    }

    #[test]
    fn a_refused_name_is_quoted_without_obeying_it() {
        let err = check_resource_name("name", "\u{202e}exe.txt\u{feff}").unwrap_err();
        assert!(err.ends_with(r#"got "\u{202e}exe.txt\u{feff}""#), "{err}");
        assert!(
            !err.contains('\u{202e}') && !err.contains('\u{feff}'),
            "{err}"
        );
        let long = check_resource_name("name", &"x".repeat(100)).unwrap_err();
        assert!(long.ends_with("…\""), "{long}");
    }
}

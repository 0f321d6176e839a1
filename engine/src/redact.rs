//! Credentials out of messages. A refusal or a source's error often quotes what it was
//! given: a URL, a DSN, a header. Every message that can carry one passes through
//! [`redact`] before it is answered, shown on a card, audited or logged, so a password is
//! refused without being echoed.
//!
//! What is masked (with [`MASK`]):
//! - the password of URL userinfo: `scheme://user:pass@host` → `scheme://user:***@host`
//!   (a user alone is kept), and the same without a scheme (`user:pass@host:11211`);
//! - the value of secret keys in key/value text and query strings: `password=…`,
//!   `sslpassword=…`, `token=…`, `access_token=…`, `client_secret=…`, `api_key=…`,
//!   `sig=…` (quoted values too);
//! - header values: `Authorization: Bearer …` → `Authorization: Bearer ***`, `X-Api-Key:`;
//! - a bearer token standing alone: `Bearer eyJhbGciOi…` → `Bearer ***`.
//!
//! Plain string code (no URL parser), so it reads half-broken URLs the same way, is pure
//! and also compiles for the browser. It errs towards masking: a password that is not a
//! valid URL part (an unencoded `/`) may be cut where the URL rules cut it.

/// What a credential is replaced with.
pub const MASK: &str = "***";

/// `text` with every credential it carries masked; text without one comes back unchanged.
/// Masking twice changes nothing more.
pub fn redact(text: &str) -> String {
    let text = userinfo(text);
    let text = key_values(&text);
    let text = headers(&text);
    bearer(&text)
}

/// Ends a run that may hold `user:pass@host`.
fn ends_run(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'`' | b'<' | b'>' | b'/' | b'\\')
}

/// URL userinfo: in each run of characters a URL authority can hold, the password between
/// the first `:` and the last `@`.
fn userinfo(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut start = 0;
    while start <= bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| ends_run(b))
            .map_or(bytes.len(), |k| start + k);
        if let Some((colon, at)) = password_span(text, start, end) {
            out.push_str(&text[copied..=colon]);
            out.push_str(MASK);
            copied = at;
        }
        start = end + 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// Where the password of the run `text[start..end]` is: (its `:`, its `@`).
fn password_span(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let run = &text[start..end];
    let at = start + run.rfind('@')?;
    let colon = start + text[start..at].find(':')?;
    let password = &text[colon + 1..at];
    if password.is_empty() || password == MASK {
        return None;
    }
    let host = bytes.get(at + 1).copied();
    if !host.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'[') {
        return None;
    }
    let after_scheme = start >= 2 && bytes[start - 1] == b'/' && bytes[start - 2] == b'/';
    if !after_scheme {
        // Without `scheme://`: a run standing alone (not a path segment) with a user.
        let in_path = start >= 1 && bytes[start - 1] == b'/';
        if in_path || colon == start {
            return None;
        }
    }
    Some((colon, at))
}

/// A key whose value is a credential (`password`, `sslpassword`, `token`, `api_key`, …).
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(key.as_str(), "pass" | "pwd" | "sig" | "auth")
        || [
            "password",
            "passwd",
            "passphrase",
            "secret",
            "token",
            "apikey",
            "api_key",
            "api-key",
            "access_key",
            "private_key",
            "signature",
            "credential",
            "credentials",
            "authorization",
        ]
        .iter()
        .any(|suffix| key.ends_with(suffix))
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// The value that starts at `from` (after `=`): quoted up to its closing quote, else up to
/// whitespace or a separator.
fn value_span(bytes: &[u8], from: usize) -> (usize, usize) {
    match bytes.get(from) {
        Some(&quote @ (b'\'' | b'"')) => {
            let mut j = from + 1;
            while j < bytes.len() && bytes[j] != quote {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            (from + 1, j.min(bytes.len()))
        }
        _ => {
            let end = bytes[from.min(bytes.len())..]
                .iter()
                .position(|&b| {
                    b.is_ascii_whitespace()
                        || matches!(
                            b,
                            b'&' | b';' | b',' | b'"' | b'\'' | b')' | b']' | b'}' | b'>' | b'`'
                        )
                })
                .map_or(bytes.len(), |k| from + k);
            (from, end)
        }
    }
}

/// `key=value` pairs (DSNs, query strings) whose key names a credential.
fn key_values(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(k) = bytes[i..].iter().position(|&b| b == b'=') {
        let eq = i + k;
        i = eq + 1;
        let key_start = bytes[..eq]
            .iter()
            .rposition(|&b| !is_key_byte(b))
            .map_or(0, |p| p + 1);
        if key_start < copied || key_start == eq || !is_secret_key(&text[key_start..eq]) {
            continue;
        }
        let (from, to) = value_span(bytes, eq + 1);
        if to <= from || &text[from..to] == MASK {
            continue;
        }
        out.push_str(&text[copied..from]);
        out.push_str(MASK);
        copied = to;
        i = to;
    }
    out.push_str(&text[copied..]);
    out
}

/// The schemes of an `Authorization` value, kept in front of the mask.
fn is_auth_scheme(word: &str) -> bool {
    ["bearer", "basic", "digest", "token", "negotiate", "apikey"]
        .iter()
        .any(|scheme| word.eq_ignore_ascii_case(scheme))
}

/// Header values: `Authorization: <scheme> <credentials>`, `X-Api-Key: <key>`.
fn headers(text: &str) -> String {
    let bytes = text.as_bytes();
    // ASCII lowercasing keeps every byte where it is.
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    loop {
        let next = ["authorization", "x-api-key"]
            .iter()
            .filter_map(|name| lower[from..].find(name).map(|k| (from + k, name.len())))
            .min();
        let Some((pos, len)) = next else { break };
        let mut j = pos + len;
        from = j;
        while bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        if bytes.get(j) != Some(&b':') {
            continue;
        }
        j += 1;
        while bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        let line_end = bytes[j..]
            .iter()
            .position(|&b| {
                matches!(
                    b,
                    b'\r' | b'\n' | b'"' | b'\'' | b'`' | b',' | b';' | b')' | b']' | b'}'
                )
            })
            .map_or(bytes.len(), |k| j + k);
        let value = text[j..line_end].trim_end();
        let mut secret_from = match value.split_once(' ') {
            Some((scheme, _)) if is_auth_scheme(scheme) => j + scheme.len() + 1,
            // Only the scheme's name ("accepted as `Authorization: Bearer`"): no credential.
            None if is_auth_scheme(value) => continue,
            _ => j,
        };
        while secret_from < line_end && bytes[secret_from] == b' ' {
            secret_from += 1;
        }
        // The credential is one word; what follows it is the message's.
        let end = bytes[secret_from..line_end]
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .map_or(line_end, |k| secret_from + k);
        let secret = &text[secret_from..end];
        if secret.is_empty() || secret == MASK {
            continue;
        }
        out.push_str(&text[copied..secret_from]);
        out.push_str(MASK);
        copied = end;
        from = end;
    }
    out.push_str(&text[copied..]);
    out
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// `Bearer <token>` outside a header. A word after "bearer" is taken for a token when it
/// is at least 8 characters and not only lowercase letters, so prose ("a bearer token",
/// "bearer authentication") stays as it is.
fn bearer(text: &str) -> String {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(k) = lower[from..].find("bearer") {
        let pos = from + k;
        from = pos + "bearer".len();
        if pos > 0 && bytes[pos - 1].is_ascii_alphanumeric() {
            continue;
        }
        let mut j = from;
        while bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        if j == from {
            continue;
        }
        let end = bytes[j..]
            .iter()
            .position(|&b| !is_token_byte(b))
            .map_or(bytes.len(), |n| j + n);
        let token = &text[j..end];
        if token.len() < 8 || token.bytes().all(|b| b.is_ascii_lowercase()) {
            continue;
        }
        out.push_str(&text[copied..j]);
        out.push_str(MASK);
        copied = end;
        from = end;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked_and_users_kept() {
        assert_eq!(
            redact(
                r#"url: not a usable base URL (no user:password@, no query string): "http://perf:SECRET@127.0.0.1:9090""#
            ),
            r#"url: not a usable base URL (no user:password@, no query string): "http://perf:***@127.0.0.1:9090""#
        );
        assert_eq!(
            redact(
                "cannot connect to postgresql://perf:s3cr:et@db.internal:5432/app?sslmode=require"
            ),
            "cannot connect to postgresql://perf:***@db.internal:5432/app?sslmode=require"
        );
        assert_eq!(
            redact("redis://:SECRET@127.0.0.1:6379/0 refused"),
            "redis://:***@127.0.0.1:6379/0 refused"
        );
        // An `@` in the password: the userinfo ends at the last one.
        assert_eq!(
            redact("https://u:p@ss@[::1]:8443/x"),
            "https://u:***@[::1]:8443/x"
        );
        // Without a scheme (a memcached or Redis address typed with credentials).
        assert_eq!(
            redact("address: must be host:port, got \"perf:SECRET@cache:11211\""),
            "address: must be host:port, got \"perf:***@cache:11211\""
        );
        // A user alone is not a secret.
        assert_eq!(
            redact("postgresql://perf@db:5432/app"),
            "postgresql://perf@db:5432/app"
        );
    }

    #[test]
    fn key_value_secrets_are_masked() {
        assert_eq!(
            redact("host=db user=perf password=hunter2 dbname=app"),
            "host=db user=perf password=*** dbname=app"
        );
        assert_eq!(
            redact("host=db password='two words' sslpassword=x"),
            "host=db password='***' sslpassword=***"
        );
        assert_eq!(
            redact("POST http://127.0.0.1:1/hook?token=SECRET&x=1: refused"),
            "POST http://127.0.0.1:1/hook?token=***&x=1: refused"
        );
        assert_eq!(
            redact("GET /q?access_token=abc.def&Client_Secret=zz"),
            "GET /q?access_token=***&Client_Secret=***"
        );
        // Where a password is kept is not a secret.
        assert_eq!(
            redact("password_file=/etc/perfpilot/pg.password"),
            "password_file=/etc/perfpilot/pg.password"
        );
    }

    #[test]
    fn bearer_tokens_and_authorization_headers_are_masked() {
        assert_eq!(
            redact("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"),
            "Authorization: Bearer ***"
        );
        assert_eq!(
            redact("sent authorization: Basic cGVyZjpTRUNSRVQ=\nnext line"),
            "sent authorization: Basic ***\nnext line"
        );
        assert_eq!(redact("X-Api-Key: k-123456"), "X-Api-Key: ***");
        assert_eq!(
            redact("store answered 401 to Bearer pp_9f8e7d6c5b4a"),
            "store answered 401 to Bearer ***"
        );
    }

    #[test]
    fn plain_messages_are_unchanged() {
        for plain in [
            "",
            "connection refused",
            "url: not a usable base URL (no user:password@, no query string)",
            "bearer_token: send a bearer token or a password, not both",
            "password: memcached's text protocol has no authentication; leave the password empty",
            "to: \"ops@example.com\" is not an email address",
            "password_env: the environment variable PG_PASSWORD is not set",
            "target.value: utilization must be within 0–100 %, got 140",
            "auth mode local; API tokens are accepted as `Authorization: Bearer`",
            "name: must be 1–63 characters, got \"a/b\"",
            "selector: up{job=\"node\"} matches no series",
            "café — naïve 日本語 @ 10:30",
        ] {
            assert_eq!(redact(plain), plain);
        }
    }

    #[test]
    fn masking_twice_changes_nothing_more() {
        let text = "http://u:p@h/?token=t Authorization: Bearer abcdefgh123 password='x y'";
        let once = redact(text);
        assert!(
            !once.contains("p@h") && !once.contains("abcdefgh123"),
            "{once}"
        );
        assert_eq!(redact(&once), once);
    }
}

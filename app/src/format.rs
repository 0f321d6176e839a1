//! Human formatting of readings: the same rules on the server and in the browser, so the
//! hydrated page never disagrees with the server-rendered one.

/// "42.5 %", "1.2 MiB/s", "3.4 GiB", "0.52", "0.004 ms": below 1 a reading keeps two
/// significant digits ([`engine::model::format_number`]), so a small one never shows as
/// "0.0".
pub fn reading(value: f64, unit: &str) -> String {
    if value != 0.0 && value.abs() < 1.0 && !matches!(unit, "bytes" | "bytes/s") {
        let number = engine::model::format_number(value);
        return if unit.is_empty() {
            number
        } else {
            format!("{number} {unit}")
        };
    }
    match unit {
        "%" => format!("{value:.1} %"),
        "bytes" => bytes(value),
        "bytes/s" => format!("{}/s", bytes(value)),
        "ms" => format!("{value:.1} ms"),
        // A plain count or level (a pushed queue depth): "42", "42.5", not "42.00".
        "" => engine::model::format_number(value),
        other => format!("{value:.2} {other}"),
    }
}

/// "45 s", "12 min", "3 h 5 min".
pub fn duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s % 3600 / 60 == 0 => format!("{} h", s / 3600),
        s => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

pub use engine::model::{utc_iso, utc_time};

/// Percent-encodes a query value (resource ids contain ':' and '/').
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn bytes(value: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut scaled = value;
    let mut unit = 0;
    while scaled.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{scaled:.0} B")
    } else {
        format!("{scaled:.1} {}", UNITS[unit])
    }
}

/// "2 anomalies in the last hour, 0.4 % of the time" (`span` says over what); `None` for
/// none. A muted series says so instead of a count that stopped.
pub fn anomaly_rate(rate: &engine::anomaly::Rate, span: &str) -> Option<String> {
    if rate.muted {
        return Some(format!(
            "too many anomalies {span} (more than 6 in an hour): muted as noisy"
        ));
    }
    match rate.count {
        0 => None,
        n => Some(format!(
            "{n} {} {span}, {:.1} % of the time",
            if n == 1 { "anomaly" } else { "anomalies" },
            f64::from(rate.share) * 100.0
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::reading;

    #[test]
    fn utc_times_are_calendar_correct() {
        assert_eq!(super::utc_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc_time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(super::utc_time(1_795_734_245_000), "2026-11-26 23:04:05");
        assert_eq!(super::utc_time(1_709_251_199_999), "2024-02-29 23:59:59");
        assert_eq!(super::utc_time(-1), "1969-12-31 23:59:59");
        assert_eq!(super::utc_iso(1_741_064_767_000), "2025-03-04T05:06:07Z");
    }

    #[test]
    fn readings_are_human() {
        assert_eq!(reading(42.04, "%"), "42.0 %");
        assert_eq!(reading(512.0, "bytes/s"), "512 B/s");
        assert_eq!(reading(1536.0, "bytes/s"), "1.5 KiB/s");
        assert_eq!(reading(3.5 * 1024.0 * 1024.0 * 1024.0, "bytes"), "3.5 GiB");
        assert_eq!(reading(0.5234, "tasks"), "0.52 tasks");
        assert_eq!(reading(81.25, "ms"), "81.2 ms");
        assert_eq!(reading(42.0, ""), "42");
        assert_eq!(reading(42.46, ""), "42.5");
    }

    #[test]
    fn small_readings_keep_their_precision() {
        assert_eq!(reading(0.01, "ms"), "0.01 ms");
        assert_eq!(reading(0.004, "ms"), "0.004 ms");
        assert_eq!(reading(0.5, "ms"), "0.5 ms");
        assert_eq!(reading(0.04, "%"), "0.04 %");
        assert_eq!(reading(f64::from(0.02f32), "ms"), "0.02 ms");
        assert_eq!(reading(0.004, ""), "0.004");
        assert_eq!(reading(0.0, "ms"), "0.0 ms");
        assert_eq!(reading(12.34, "ms"), "12.3 ms");
        assert_eq!(reading(0.4, "bytes"), "0 B");
    }
}

//! Human formatting of readings: the same rules on the server and in the browser, so the
//! hydrated page never disagrees with the server-rendered one.

/// "42.5 %", "1.2 MiB/s", "3.4 GiB", "0.52".
pub fn reading(value: f64, unit: &str) -> String {
    match unit {
        "%" => format!("{value:.1} %"),
        "bytes" => bytes(value),
        "bytes/s" => format!("{}/s", bytes(value)),
        "ms" => format!("{value:.1} ms"),
        "" => format!("{value:.2}"),
        other => format!("{value:.2} {other}"),
    }
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

#[cfg(test)]
mod tests {
    use super::reading;

    #[test]
    fn readings_are_human() {
        assert_eq!(reading(42.04, "%"), "42.0 %");
        assert_eq!(reading(512.0, "bytes/s"), "512 B/s");
        assert_eq!(reading(1536.0, "bytes/s"), "1.5 KiB/s");
        assert_eq!(reading(3.5 * 1024.0 * 1024.0 * 1024.0, "bytes"), "3.5 GiB");
        assert_eq!(reading(0.5234, "tasks"), "0.52 tasks");
        assert_eq!(reading(81.25, "ms"), "81.2 ms");
    }
}

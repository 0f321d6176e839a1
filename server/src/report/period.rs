//! A report's period: `[from, to)` in unix ms, parsed and checked from the query (named
//! spans or `from`/`to`, at most [`MAX_PERIOD_MS`]).

/// The longest period a report covers.
pub const MAX_PERIOD_MS: i64 = crate::state::alerting::MAX_REPORT_PERIOD_MS;

/// A period, `[from, to)` in unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Period {
    pub fn last(span_ms: i64, now_ms: i64) -> Period {
        Period {
            from_ms: now_ms - span_ms,
            to_ms: now_ms,
        }
    }

    /// From the query: `period=24h|7d`, or `from`/`to` (unix ms or `2026-11-30T08:00:00Z`).
    /// Errors name the field and the rule.
    pub fn from_query(
        period: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        now_ms: i64,
    ) -> Result<Period, (&'static str, String)> {
        let time = |field: &'static str, text: &str| {
            parse_time(text).ok_or((
                field,
                format!("must be unix milliseconds or a UTC time like 2026-11-30T08:00:00Z, got {text:?}"),
            ))
        };
        let period = match (period, from, to) {
            (Some(p), None, None) => {
                let span = match p {
                    "24h" | "1d" => 86_400_000,
                    "7d" => 7 * 86_400_000,
                    "30d" => 30 * 86_400_000,
                    _ => return Err(("period", format!("must be 24h, 7d or 30d, got {p:?}"))),
                };
                Period::last(span, now_ms)
            }
            (None, None, None) => Period::last(86_400_000, now_ms),
            (None, Some(from), to) => Period {
                from_ms: time("from", from)?,
                to_ms: match to {
                    Some(to) => time("to", to)?,
                    None => now_ms,
                },
            },
            (None, None, Some(_)) => return Err(("from", "is needed with to".into())),
            (Some(_), _, _) => {
                return Err(("period", "give either period or from/to, not both".into()))
            }
        };
        if period.from_ms > now_ms {
            return Err(("from", "must not be in the future".into()));
        }
        if period.to_ms <= period.from_ms {
            return Err(("to", "must be after from".into()));
        }
        // Checked: unix ms near i64's ends would overflow a plain subtraction.
        match period.to_ms.checked_sub(period.from_ms) {
            Some(span) if span <= MAX_PERIOD_MS => Ok(period),
            _ => Err(("from", "a report covers at most 31 days".into())),
        }
    }

    pub fn span_ms(&self) -> i64 {
        self.to_ms - self.from_ms
    }

    /// "2026-11-29 08:00 – 2026-11-30 08:00 UTC"
    pub fn describe(&self) -> String {
        format!(
            "{} – {} UTC",
            &app::format::utc_time(self.from_ms)[..16],
            &app::format::utc_time(self.to_ms)[..16]
        )
    }
}

/// Unix ms, or `YYYY-MM-DDTHH:MM[:SS]Z` (also with a space, without the `Z`).
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    // Years 1970–9999 only: anything else is a typo, and bounds keep the arithmetic exact.
    const LAST_MS: i64 = 253_402_300_800_000; // 10000-01-01T00:00:00Z
    if let Ok(ms) = text.parse::<i64>() {
        return (0..LAST_MS).contains(&ms).then_some(ms);
    }
    let text = text.trim_end_matches('Z').replace(' ', "T");
    let (date, time) = text.split_once('T').unwrap_or((&text, "00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm) = (t.next()??, t.next()??);
    let ss = t.next().flatten().unwrap_or(0);
    if d.next().is_some()
        || !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || hh > 23
        || mm > 59
        || ss > 59
    {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_from_the_query_name_the_field() {
        let now = 1_764_489_600_000; // 2025-11-30T08:00:00Z
        assert_eq!(
            Period::from_query(None, None, None, now),
            Ok(Period::last(86_400_000, now))
        );
        assert_eq!(
            Period::from_query(Some("7d"), None, None, now)
                .unwrap()
                .span_ms(),
            7 * 86_400_000
        );
        let p = Period::from_query(
            None,
            Some("2025-11-29T08:00:00Z"),
            Some("2025-11-30 08:00"),
            now,
        )
        .unwrap();
        assert_eq!((p.from_ms, p.to_ms), (now - 86_400_000, now));
        assert_eq!(p.describe(), "2025-11-29 08:00 – 2025-11-30 08:00 UTC");
        let field = |p, f, t| Period::from_query(p, f, t, now).unwrap_err().0;
        assert_eq!(field(Some("2w"), None, None), "period");
        assert_eq!(field(None, Some("yesterday"), None), "from");
        assert_eq!(
            field(
                None,
                Some("2025-11-30T07:00:00Z"),
                Some("2025-11-30T06:00:00Z")
            ),
            "to"
        );
        assert_eq!(field(None, Some("2025-11-30T09:00:00Z"), None), "from");
        assert_eq!(
            field(None, Some("0"), Some("9223372036854775807")),
            "to",
            "past year 9999"
        );
        assert_eq!(field(None, Some("-9223372036854775808"), None), "from");
        assert_eq!(field(None, Some("2025-01-01T00:00:00Z"), None), "from");
        assert_eq!(field(None, None, Some("1")), "from");
    }

    #[test]
    fn times_parse_as_utc() {
        assert_eq!(parse_time("0"), Some(0));
        assert_eq!(parse_time("1970-01-02T00:00:00Z"), Some(86_400_000));
        assert_eq!(parse_time("2000-03-01T12:30"), Some(951_913_800_000));
        assert_eq!(parse_time("2000-13-01T00:00"), None);
        assert_eq!(parse_time("soon"), None);
    }
}

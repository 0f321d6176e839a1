//! Top statements from `performance_schema.events_statements_summary_by_digest`: the
//! statements (normalized by the server, `?` for constants) that took the most time
//! between two readings, from deltas of `COUNT_STAR` and `SUM_TIMER_WAIT` (picoseconds),
//! never lifetime totals; reported in the shape PostgreSQL's top queries have
//! ([`engine::database::TopQueries`]), so the Queries panel shows either.
//!
//! When the URL names a database, only statements run with it as the default schema are
//! counted (as PostgreSQL counts only its own database). The summary has no user column,
//! so perfpilot's own statements are told apart by their text ([`is_own`]); the
//! `probe_query` stays in, as it stands for the application's work.

use std::collections::HashMap;
use std::time::Instant;

use engine::database::{Advice, QueryStat, TopQueries};
use engine::series::UnixMillis;
use mysql_async::Row;

use super::{number, text, Failed, Session};

/// Statements in the top list.
const TOP_QUERIES: usize = 10;
/// `SUM_TIMER_WAIT` is in picoseconds.
const PICOSECONDS_PER_MS: f64 = 1e9;

/// Why there are no top statements on a server started without the instrumentation.
pub(super) const PERFORMANCE_SCHEMA_OFF: &str = "performance_schema is off: top statements unavailable (start the server with performance_schema=ON; it cannot be switched on while the server runs)";

/// perfpilot's own statements as the digest writes them, compared without case, spaces
/// and backquotes (MariaDB and MySQL space and quote differently): the tick's reads, the
/// client's and the session's set-up at connect, and the check's privilege read.
const OWN_PREFIXES: &[&str] = &[
    "showglobalstatus",
    "showreplicastatus",
    "showslavestatus",
    "showwarnings",
    "select@@global.",
    "selectversion()",
    "select@@max_allowed_packet",
    "select@@socket",
    "setsessionmax_statement_time",
    "setsessionmax_execution_time",
    "selectprivilege_typefrominformation_schema.user_privileges",
];

/// Whether a digest's text is one of perfpilot's own statements (the canary `SELECT 1` is
/// `SELECT ?`).
pub(super) fn is_own(statement: &str) -> bool {
    let squeezed: String = statement
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '`')
        .flat_map(char::to_lowercase)
        .collect();
    squeezed == "select?"
        || squeezed.contains("events_statements_summary_by_digest")
        || OWN_PREFIXES.iter().any(|own| squeezed.starts_with(own))
}

/// One digest's lifetime totals at a reading.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Digest {
    pub calls: u64,
    pub total_ms: f64,
    pub text: String,
}

/// A reading, by schema and digest (the summary's key).
pub(super) type Reading = HashMap<(Option<String>, String), Digest>;

/// The digest summary's readings on one connection.
pub(super) struct Digests {
    sql: String,
    user: String,
    /// The user may not read performance_schema (found on this connection).
    denied: bool,
    last: Option<(Instant, Reading)>,
}

impl Digests {
    pub(super) fn new(db: Option<&str>, user: &str) -> Digests {
        // The name as a hex literal: nothing in it can end the string.
        let schema = db
            .filter(|db| !db.is_empty())
            .map(|db| {
                format!(
                    " AND SCHEMA_NAME = CONVERT(X'{}' USING utf8mb4)",
                    hex::encode(db)
                )
            })
            .unwrap_or_default();
        Digests {
            sql: format!(
                "SELECT SCHEMA_NAME, DIGEST, LEFT(DIGEST_TEXT, 500), COUNT_STAR, SUM_TIMER_WAIT \
                 FROM performance_schema.events_statements_summary_by_digest \
                 WHERE DIGEST IS NOT NULL{schema} ORDER BY SUM_TIMER_WAIT DESC LIMIT 500"
            ),
            user: user.to_owned(),
            denied: false,
            last: None,
        }
    }

    /// Forgets what the last connection found: a new one may have other privileges, and
    /// another server behind the same address other totals.
    pub(super) fn forget(&mut self) {
        self.denied = false;
        self.last = None;
    }

    fn denied_reason(&self) -> String {
        format!(
            "user \"{}\" may not read performance_schema: top statements unavailable (GRANT SELECT ON performance_schema.* TO it)",
            self.user
        )
    }

    /// Reads the summary and reports the statements that took the most time since the
    /// last reading (none on the first), with `advice`; or why there are none.
    pub(super) async fn read(
        &mut self,
        session: &mut Session,
        at: UnixMillis,
        performance_schema: bool,
        advice: Vec<Advice>,
    ) -> Result<TopQueries, Failed> {
        let mut report = TopQueries {
            at_unix_ms: at,
            advice,
            ..Default::default()
        };
        if !performance_schema {
            self.last = None;
            report.unavailable = Some(PERFORMANCE_SCHEMA_OFF.to_owned());
            return Ok(report);
        }
        if self.denied {
            report.unavailable = Some(self.denied_reason());
            return Ok(report);
        }
        let rows = match session.rows(&self.sql).await {
            Ok(rows) => rows,
            Err(err) if err.denied() => {
                self.denied = true;
                report.unavailable = Some(self.denied_reason());
                return Ok(report);
            }
            Err(err) => return Err(err),
        };
        let now = Instant::now();
        let reading = reading(&rows);
        if let Some((then, before)) = &self.last {
            let secs = now.duration_since(*then).as_secs_f64().max(0.001);
            report.window_s = secs;
            report.top = top(before, &reading, secs);
        }
        self.last = Some((now, reading));
        Ok(report)
    }
}

/// The summary's rows less perfpilot's own statements and the overflow row (no digest).
fn reading(rows: &[Row]) -> Reading {
    rows.iter()
        .filter_map(|row| {
            let digest = text(row, 1)?;
            let statement = text(row, 2)?;
            if is_own(&statement) {
                return None;
            }
            let calls = text(row, 3)?.trim().parse().ok()?;
            let total_ms = number(row, 4)? / PICOSECONDS_PER_MS;
            Some((
                (text(row, 0), digest),
                Digest {
                    calls,
                    total_ms,
                    text: statement,
                },
            ))
        })
        .collect()
}

/// The statements that took the most time between two readings `secs` apart. A digest
/// whose totals went backwards (the summary was truncated) sits this window out.
pub(super) fn top(before: &Reading, now: &Reading, secs: f64) -> Vec<QueryStat> {
    let mut deltas: Vec<(&str, f64, f64)> = now
        .iter()
        .filter_map(|(key, digest)| {
            let (calls0, total0) = before
                .get(key)
                .map_or((0, 0.0), |then| (then.calls, then.total_ms));
            let calls = digest.calls.checked_sub(calls0)? as f64;
            let total = digest.total_ms - total0;
            (calls > 0.0 && total >= 0.0).then_some((digest.text.as_str(), calls, total))
        })
        .collect();
    let all: f64 = deltas.iter().map(|d| d.2).sum();
    deltas.sort_by(|a, b| b.2.total_cmp(&a.2));
    deltas
        .into_iter()
        .take(TOP_QUERIES)
        .map(|(query, calls, total)| QueryStat {
            query: query.to_owned(),
            calls_per_s: calls / secs,
            mean_ms: total / calls,
            total_ms: total,
            share_pct: if all > 0.0 { total / all * 100.0 } else { 0.0 },
        })
        .collect()
}

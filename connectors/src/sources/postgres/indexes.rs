//! Index advice with evidence, never applied by itself.
//!
//! - **Missing indexes**: for the probe query and the slowest concrete queries (no `$n`
//!   parameters: their plans can be asked as they are), every sequential scan with a filter
//!   suggests an index on the filter's columns; HypoPG creates it hypothetically in this
//!   session only, `EXPLAIN` is asked again, and a cost drop of at least half makes a
//!   recommendation, with both costs. Only plain `SELECT`s from tables are examined
//!   (`skip_reason`): a statement that calls a function, reads no table, locks rows,
//!   changes data or is several statements is skipped and named with why; one that fails
//!   is named with its error.
//! - **Unused indexes**: no scan since statistics were reset, not unique, not primary, not
//!   backing a constraint.
//! - **Duplicate indexes**: the same table, columns, operator classes, expressions and
//!   predicate.
//!
//! An admin applies a recommendation (`CREATE INDEX CONCURRENTLY`, only one this advice
//! named) and can roll it back (`DROP INDEX CONCURRENTLY`, only an index perfpilot made).

use engine::database::{IndexAdvice, IndexCandidate, UnusedIndex};
use tokio_postgres::{Client, SimpleQueryMessage};

/// A recommendation needs the estimated cost to drop by at least this share.
const MIN_DROP: f64 = 0.5;
/// Queries examined per round.
const QUERIES: usize = 5;
/// Prefix of every index perfpilot creates (and the only ones it drops).
pub const PREFIX: &str = "perfpilot_";

/// One advice round on `client` for `queries` (the probe query first).
pub async fn advise(client: &Client, queries: &[String]) -> IndexAdvice {
    let mut advice = IndexAdvice::default();
    match unused(client).await {
        Ok(list) => advice.unused = list,
        Err(err) => advice.unavailable.push(format!("unused indexes: {err}")),
    }
    match duplicates(client).await {
        Ok(list) => advice.duplicate = list,
        Err(err) => advice.unavailable.push(format!("duplicate indexes: {err}")),
    }
    let hypopg = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg')",
            &[],
        )
        .await
        .map(|row| row.get::<_, bool>(0))
        .unwrap_or(false);
    if !hypopg {
        advice.unavailable.push(
            "missing indexes: unavailable: HypoPG is not installed in this database (apt install postgresql-15-hypopg; CREATE EXTENSION hypopg as a superuser)".into(),
        );
        return advice;
    }
    // Only plain SELECTs from tables whose plan can be asked as they are (`skip_reason`):
    // even a plain EXPLAIN checks the EXECUTE privilege of every function in the
    // statement (the executor is initialized), so another role's
    // `SELECT pg_stat_statements_reset()` would fail with "permission denied".
    let mut seen: Vec<&str> = Vec::new();
    let mut examined = 0;
    for query in queries {
        if seen.contains(&query.as_str()) {
            continue;
        }
        seen.push(query.as_str());
        if let Some(why) = skip_reason(query) {
            advice
                .skipped
                .push(format!("skipped `{}`: {why}", shown(query)));
            continue;
        }
        if examined == QUERIES {
            continue;
        }
        examined += 1;
        match candidates(client, query).await {
            Ok(Some(found)) => {
                for candidate in found {
                    if !advice.missing.iter().any(|c: &IndexCandidate| {
                        c.table == candidate.table && c.columns == candidate.columns
                    }) {
                        advice.missing.push(candidate);
                    }
                }
            }
            Ok(None) => advice.skipped.push(format!(
                "skipped `{}`: its plan reads no table",
                shown(query)
            )),
            Err(err) => advice
                .unavailable
                .push(format!("could not examine `{}`: {err}", shown(query))),
        }
    }
    let _ = client.simple_query("SELECT hypopg_reset()").await;
    advice
}

/// The plan's total cost, its filtered sequential scans (table, filter), and whether any
/// of its nodes reads a relation (a plan of `Result` or `Function Scan` nodes only does
/// not).
async fn explain(
    client: &Client,
    query: &str,
) -> Result<(f64, Vec<(String, String)>, bool), String> {
    let messages = client
        .simple_query(&format!("EXPLAIN (FORMAT JSON) {query}"))
        .await
        .map_err(|err| message(&err))?;
    let text = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .ok_or("EXPLAIN gave no plan")?;
    let plan: serde_json::Value = serde_json::from_str(&text).map_err(|err| err.to_string())?;
    let root = &plan[0]["Plan"];
    let cost = root["Total Cost"].as_f64().ok_or("the plan has no cost")?;
    let mut scans = Vec::new();
    collect_scans(root, &mut scans);
    Ok((cost, scans, reads_relation(root)))
}

/// Whether `node` or a node below it scans a relation (it names one).
fn reads_relation(node: &serde_json::Value) -> bool {
    node["Relation Name"].is_string()
        || node["Plans"]
            .as_array()
            .is_some_and(|plans| plans.iter().any(reads_relation))
}

fn collect_scans(node: &serde_json::Value, out: &mut Vec<(String, String)>) {
    if node["Node Type"] == "Seq Scan" {
        if let (Some(table), Some(filter)) =
            (node["Relation Name"].as_str(), node["Filter"].as_str())
        {
            let schema = node["Schema"].as_str().unwrap_or("public");
            out.push((format!("{schema}.{table}"), filter.to_owned()));
        }
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        collect_scans(child, out);
    }
}

/// The columns of `table` that `filter` compares for equality (`(customer_id = 42)`), in
/// the order they appear.
fn equality_columns(filter: &str, columns: &[String]) -> Vec<String> {
    let mut found: Vec<(usize, String)> = columns
        .iter()
        .filter_map(|column| {
            let position = filter.match_indices(column.as_str()).find(|(i, _)| {
                let before = filter[..*i].chars().next_back();
                let after = filter[i + column.len()..].trim_start();
                before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
                    && after.starts_with('=')
                    && !after.starts_with("=>")
            })?;
            Some((position.0, column.clone()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, c)| c).take(2).collect()
}

/// `query` for a message: whitespace made single spaces, cut to about 80 characters.
fn shown(query: &str) -> String {
    let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= 80 {
        flat
    } else {
        let mut cut: String = flat.chars().take(79).collect();
        cut.push('…');
        cut
    }
}

/// Functions a statement may call and still be examined: aggregates and plain built-in
/// scalar functions (unqualified, so PostgreSQL's own; anyone may execute them).
const SAFE_FUNCTIONS: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "bool_and",
    "bool_or",
    "every",
    "array_agg",
    "string_agg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "lower",
    "upper",
    "length",
    "abs",
    "round",
    "floor",
    "ceil",
    "date_trunc",
];

/// Keywords a parenthesis may follow without a function being called.
const NOT_CALLS: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "between",
    "by",
    "case",
    "cast",
    "distinct",
    "else",
    "except",
    "exists",
    "filter",
    "from",
    "group",
    "having",
    "ilike",
    "in",
    "intersect",
    "is",
    "join",
    "lateral",
    "like",
    "limit",
    "not",
    "offset",
    "on",
    "only",
    "or",
    "over",
    "row",
    "select",
    "similar",
    "some",
    "then",
    "to",
    "union",
    "using",
    "values",
    "when",
    "where",
    "within",
];

/// A piece of a statement, as much as deciding whether to examine it needs: comments are
/// dropped, literals are opaque.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A keyword or an unquoted identifier, lowercased.
    Word(String),
    /// A double-quoted identifier.
    Quoted(String),
    /// A string or a number.
    Literal,
    /// `$1`: a parameter.
    Param,
    /// Any other character: `(`, `)`, `,`, `;`, `.`, `:`, `*` …
    Punct(char),
}

/// The index just past the literal or quoted identifier opened at `chars[start]`; a
/// doubled quote stands for itself, and in an `E'…'` string a backslash escapes.
fn closing(chars: &[char], start: usize, backslash: bool) -> Option<usize> {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if backslash && c == '\\' {
            i += 2;
        } else if c == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return Some(i + 1);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// The tokens of `sql`, or why it cannot be read (said as a reason to skip it).
fn tokens(sql: &str) -> Result<Vec<Token>, &'static str> {
    const UNTERMINATED: &str = "ends inside a comment, a string or a quoted name";
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments nest in PostgreSQL.
            let mut depth = 0usize;
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (Some('/'), Some('*')) => {
                        depth += 1;
                        i += 2;
                    }
                    (Some('*'), Some('/')) => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    }
                    (Some(_), _) => i += 1,
                    (None, _) => return Err(UNTERMINATED),
                }
            }
        } else if c == '\'' {
            i = closing(&chars, i, false).ok_or(UNTERMINATED)?;
            out.push(Token::Literal);
        } else if c == '"' {
            let end = closing(&chars, i, false).ok_or(UNTERMINATED)?;
            let name: String = chars[i + 1..end - 1].iter().collect();
            out.push(Token::Quoted(name.replace("\"\"", "\"")));
            i = end;
        } else if c == '$' {
            if !next.is_some_and(|n| n.is_ascii_digit()) {
                return Err("has a dollar-quoted string");
            }
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Token::Param);
        } else if c.is_ascii_digit() {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
            out.push(Token::Literal);
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            if word == "e" && chars.get(i) == Some(&'\'') {
                i = closing(&chars, i, true).ok_or(UNTERMINATED)?;
                out.push(Token::Literal);
            } else {
                out.push(Token::Word(word));
            }
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    Ok(out)
}

/// Why the missing-index search leaves `query` alone, or `None` when it is a plain
/// `SELECT` from tables whose plan can be asked as it is. Conservative: one statement, no
/// `$n` parameters, no function besides aggregates and a few built-in scalar ones (a
/// plain EXPLAIN checks the privilege to execute each function, and the planner runs
/// immutable ones on constants), no row locks, no `INTO`, a table after a `FROM`.
fn skip_reason(query: &str) -> Option<String> {
    if query.chars().count() >= 500 {
        return Some("cut short at 500 characters in the statistics".into());
    }
    let mut tokens = match tokens(query) {
        Ok(tokens) => tokens,
        Err(why) => return Some(why.into()),
    };
    while tokens.last() == Some(&Token::Punct(';')) {
        tokens.pop();
    }
    if tokens.contains(&Token::Punct(';')) {
        return Some("holds several statements".into());
    }
    fn word(token: Option<&Token>) -> Option<&str> {
        match token {
            Some(Token::Word(w)) => Some(w.as_str()),
            _ => None,
        }
    }
    match word(tokens.first()) {
        Some("select") => {}
        Some("with") => {
            return Some("a WITH query (it may change data), not a plain SELECT".into())
        }
        Some(w @ ("insert" | "update" | "delete" | "merge")) => {
            return Some(format!("changes data ({}), not a SELECT", w.to_uppercase()))
        }
        Some(w) => return Some(format!("not a SELECT ({})", w.to_uppercase())),
        None => return Some("not a plain SELECT".into()),
    }
    if tokens.contains(&Token::Param) {
        return Some("has parameters ($1 …): its plan cannot be asked without their values".into());
    }
    for (i, token) in tokens.iter().enumerate() {
        let (name, quoted) = match token {
            Token::Word(w) => (w.as_str(), false),
            Token::Quoted(q) => (q.as_str(), true),
            _ => continue,
        };
        if !quoted && name == "for" {
            return Some("locks rows (FOR UPDATE/SHARE)".into());
        }
        if !quoted && name == "into" {
            return Some("SELECT … INTO creates a table".into());
        }
        if tokens.get(i + 1) != Some(&Token::Punct('(')) {
            continue;
        }
        let before = i.checked_sub(1).and_then(|j| tokens.get(j));
        // `x::numeric(10, 2)`, `CAST(x AS numeric(10, 2))`, `AS t(a, b)`: no call.
        if before == Some(&Token::Punct(':')) || word(before) == Some("as") {
            continue;
        }
        let qualified = before == Some(&Token::Punct('.'));
        let allowed =
            !quoted && !qualified && (NOT_CALLS.contains(&name) || SAFE_FUNCTIONS.contains(&name));
        if !allowed {
            return Some(format!(
                "calls a function ({name}), not a plain table query"
            ));
        }
    }
    let reads_table = tokens.windows(2).any(|pair| {
        word(Some(&pair[0])) == Some("from")
            && match &pair[1] {
                Token::Quoted(_) => true,
                Token::Word(w) => !matches!(w.as_str(), "lateral" | "select"),
                _ => false,
            }
    });
    if !reads_table {
        return Some("reads no table (no FROM a table)".into());
    }
    None
}

/// The indexes that would make `query` cheaper; `None` when its plan reads no table.
async fn candidates(client: &Client, query: &str) -> Result<Option<Vec<IndexCandidate>>, String> {
    let (before, scans, reads_table) = explain(client, query).await?;
    if !reads_table {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (table, filter) in scans {
        let rows = client
            .query(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
                &[&table],
            )
            .await
            .map_err(|err| message(&err))?;
        let columns: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let wanted = equality_columns(&filter, &columns);
        if wanted.is_empty() {
            continue;
        }
        let definition = format!("CREATE INDEX ON {table} ({})", wanted.join(", "));
        client
            .query(
                "SELECT indexrelid FROM hypopg_create_index($1)",
                &[&definition],
            )
            .await
            .map_err(|err| message(&err))?;
        let (after, _, _) = explain(client, query).await?;
        let _ = client.simple_query("SELECT hypopg_reset()").await;
        if before > 0.0 && after <= before * (1.0 - MIN_DROP) {
            out.push(IndexCandidate {
                table: table.clone(),
                columns: wanted,
                query: query.chars().take(500).collect(),
                cost_before: before,
                cost_after: after,
                drop_pct: (before - after) / before * 100.0,
            });
        }
    }
    Ok(Some(out))
}

async fn unused(client: &Client) -> Result<Vec<UnusedIndex>, String> {
    let rows = client
        .query(
            "SELECT s.schemaname || '.' || s.relname, s.indexrelname::text, pg_relation_size(s.indexrelid)::int8 \
             FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid \
             WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid) \
             ORDER BY 3 DESC LIMIT 20",
            &[],
        )
        .await
        .map_err(|err| message(&err))?;
    Ok(rows
        .iter()
        .map(|r| UnusedIndex {
            table: r.get(0),
            index: r.get(1),
            bytes: r.get::<_, i64>(2).max(0) as u64,
            duplicate_of: None,
        })
        .collect())
}

async fn duplicates(client: &Client) -> Result<Vec<UnusedIndex>, String> {
    let rows = client
        .query(
            "SELECT i.indrelid::regclass::text, array_agg(i.indexrelid::regclass::text ORDER BY i.indexrelid), \
                    sum(pg_relation_size(i.indexrelid))::int8 \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
             GROUP BY i.indrelid, i.indkey::text, i.indclass::text, i.indcollation::text, i.indoption::text, \
                      coalesce(pg_get_expr(i.indexprs, i.indrelid), ''), coalesce(pg_get_expr(i.indpred, i.indrelid), '') \
             HAVING count(*) > 1",
            &[],
        )
        .await
        .map_err(|err| message(&err))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let indexes: Vec<String> = r.get(1);
            let (keep, rest) = indexes.split_first()?;
            Some(UnusedIndex {
                table: r.get(0),
                index: rest.join(", "),
                bytes: r.get::<_, i64>(2).max(0) as u64,
                duplicate_of: Some(keep.clone()),
            })
        })
        .collect())
}

/// The name perfpilot gives the index of `candidate`.
pub fn index_name(table: &str, columns: &[String]) -> String {
    let table = table.rsplit('.').next().unwrap_or(table);
    let mut name = format!("{PREFIX}{table}_{}_idx", columns.join("_"));
    name.truncate(63);
    name
}

/// Builds the index of `candidate` without blocking writes: `CREATE INDEX CONCURRENTLY`
/// (one statement, outside any transaction); returns its name.
pub async fn create(client: &Client, table: &str, columns: &[String]) -> Result<String, String> {
    let name = index_name(table, columns);
    client
        .simple_query("SET statement_timeout = 0")
        .await
        .map_err(|err| message(&err))?;
    client
        .simple_query(&format!(
            "CREATE INDEX CONCURRENTLY {name} ON {table} ({})",
            columns.join(", ")
        ))
        .await
        .map_err(|err| message(&err))?;
    Ok(name)
}

/// Drops an index perfpilot made, without blocking writes.
pub async fn drop(client: &Client, schema_table: &str, name: &str) -> Result<(), String> {
    if !name.starts_with(PREFIX) || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "index: {name:?} was not made by perfpilot; it drops only its own"
        ));
    }
    let schema = schema_table.split_once('.').map_or("public", |(s, _)| s);
    client
        .simple_query(&format!("DROP INDEX CONCURRENTLY {schema}.{name}"))
        .await
        .map_err(|err| message(&err))?;
    Ok(())
}

fn message(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_columns_are_read_from_a_filter() {
        let columns = vec![
            "id".to_owned(),
            "customer_id".to_owned(),
            "amount".to_owned(),
        ];
        assert_eq!(
            equality_columns("(customer_id = 42)", &columns),
            ["customer_id"]
        );
        assert_eq!(
            equality_columns(
                "((amount > 5) AND (customer_id = 42) AND (id = 7))",
                &columns
            ),
            ["customer_id", "id"]
        );
        assert!(equality_columns("(amount > 5)", &columns).is_empty());
        assert_eq!(
            index_name("public.orders", &["customer_id".into()]),
            "perfpilot_orders_customer_id_idx"
        );
    }

    #[test]
    fn only_plain_selects_from_tables_are_examined() {
        for examined in [
            "SELECT sum(amount) FROM orders WHERE customer_id = 42",
            "SELECT count(*) FROM pgbench_accounts WHERE bid = 1",
            "select * from public.orders where customer_id = 42;",
            "/* app: checkout */ SELECT id FROM orders WHERE customer_id = 7",
            "-- the report\nSELECT id\n  FROM orders\n WHERE customer_id = 7",
            "SELECT id FROM orders WHERE note = 'a; b $1 now() for update' AND id IN (SELECT order_id FROM lines)",
            "SELECT amount::numeric(10, 2) FROM \"Orders\" o WHERE o.customer_id = 42",
        ] {
            assert_eq!(skip_reason(examined), None, "{examined}");
        }
        for (skipped, why) in [
            (
                "SELECT pg_stat_statements_reset()",
                "calls a function (pg_stat_statements_reset)",
            ),
            ("SELECT now()", "calls a function (now)"),
            ("SELECT pg_sleep(1)", "calls a function (pg_sleep)"),
            (
                "SELECT set_config('work_mem', '64MB', false)",
                "calls a function (set_config)",
            ),
            (
                "SELECT * FROM generate_series(1, 10) g",
                "calls a function (generate_series)",
            ),
            (
                "SELECT id FROM orders WHERE customer_id = public.lookup(42)",
                "calls a function (lookup)",
            ),
            ("SELECT 1", "reads no table"),
            (
                "SELECT id FROM orders WHERE id = 1 FOR UPDATE",
                "locks rows",
            ),
            ("SELECT id INTO copy FROM orders WHERE id = 1", "INTO"),
            (
                "INSERT INTO orders VALUES (1, 2, 3)",
                "changes data (INSERT)",
            ),
            (
                "UPDATE orders SET amount = 0 WHERE id = 1",
                "changes data (UPDATE)",
            ),
            (
                "WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone",
                "WITH",
            ),
            (
                "SELECT id FROM orders; DELETE FROM orders",
                "several statements",
            ),
            (
                "SELECT id FROM orders WHERE customer_id = $1",
                "has parameters",
            ),
            ("SET work_mem = '64MB'", "not a SELECT (SET)"),
            ("SHOW work_mem", "not a SELECT (SHOW)"),
            (
                "EXPLAIN SELECT id FROM orders WHERE id = 1",
                "not a SELECT (EXPLAIN)",
            ),
            ("COPY orders TO STDOUT", "not a SELECT (COPY)"),
            (
                "/* nested /* comment */ still */ SELECT now()",
                "calls a function (now)",
            ),
            (
                "-- a comment\nSELECT pg_stat_statements_reset()",
                "calls a function",
            ),
            ("SELECT id FROM orders WHERE note = 'cut sh", "ends inside"),
        ] {
            let reason = skip_reason(skipped).unwrap_or_else(|| panic!("examined: {skipped}"));
            assert!(reason.contains(why), "{skipped}: {reason}");
        }
        assert!(skip_reason(&format!(
            "SELECT id FROM orders WHERE note = '{}'",
            "x".repeat(500)
        ))
        .is_some());
    }

    #[test]
    fn messages_name_the_statement_on_one_short_line() {
        assert_eq!(
            shown("SELECT id\n   FROM orders\tWHERE id = 1"),
            "SELECT id FROM orders WHERE id = 1"
        );
        let long = shown(&format!("SELECT {} FROM orders", "amount, ".repeat(40)));
        assert_eq!(long.chars().count(), 80);
        assert!(long.ends_with('…'), "{long}");
    }

    #[test]
    fn a_plan_without_a_relation_reads_no_table() {
        let plan = |text: &str| -> serde_json::Value { serde_json::from_str(text).unwrap() };
        assert!(!reads_relation(&plan(
            r#"{"Node Type": "Result", "Total Cost": 0.01}"#
        )));
        assert!(!reads_relation(&plan(
            r#"{"Node Type": "Aggregate", "Plans": [{"Node Type": "Function Scan", "Function Name": "generate_series"}]}"#
        )));
        assert!(reads_relation(&plan(
            r#"{"Node Type": "Aggregate", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "public"}]}"#
        )));
    }
}

//! Index advice with evidence, never applied by itself.
//!
//! - **Missing indexes**: for the probe query and the slowest concrete queries (no `$n`
//!   parameters: their plans can be asked as they are), every sequential scan with a filter
//!   suggests an index on the filter's columns; HypoPG creates it hypothetically in this
//!   session only, `EXPLAIN` is asked again, and a cost drop of at least half makes a
//!   recommendation, with both costs.
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
    // Only plain SELECTs whose plan can be asked as they are (no `$n` parameters, not cut
    // short by the 500-character limit of the statistics).
    let askable = queries.iter().filter(|q| {
        !q.contains('$')
            && !q.contains(';')
            && q.len() < 500
            && q.trim_start().to_ascii_lowercase().starts_with("select")
    });
    for query in askable.take(QUERIES) {
        match candidates(client, query).await {
            Ok(found) => {
                for candidate in found {
                    if !advice.missing.iter().any(|c: &IndexCandidate| {
                        c.table == candidate.table && c.columns == candidate.columns
                    }) {
                        advice.missing.push(candidate);
                    }
                }
            }
            Err(err) => advice
                .unavailable
                .push(format!("missing indexes for one query: {err}")),
        }
    }
    let _ = client.simple_query("SELECT hypopg_reset()").await;
    advice
}

/// The plan's total cost and its filtered sequential scans: (table, filter).
async fn explain(client: &Client, query: &str) -> Result<(f64, Vec<(String, String)>), String> {
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
    Ok((cost, scans))
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

async fn candidates(client: &Client, query: &str) -> Result<Vec<IndexCandidate>, String> {
    let (before, scans) = explain(client, query).await?;
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
        let (after, _) = explain(client, query).await?;
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
    Ok(out)
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
}

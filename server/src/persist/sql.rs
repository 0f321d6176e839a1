//! The one SQL surface the durable state is written through, over either store: SQLite
//! (the embedded default, one file per replica) or PostgreSQL (`--database-url`, shared by
//! replicas). The statements are the same text for both; the few places the dialects
//! differ ask [`Dialect`]. Parameters are written `?1`, `?2`…; PostgreSQL gets `$1`, `$2`….
//!
//! Values are only what the tables hold: whole numbers, text and NULL. JSON travels as
//! text, so neither store's JSON type is needed.

use std::collections::HashMap;

use rusqlite::Connection;

/// A value bound to, or read from, a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v as i64)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Binds a list of values: `args![a, b]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::persist::sql::Value::from($value)),*][..]
    };
}
pub(crate) use args;

/// A failed statement, or a value that is not what its column should hold.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SqlError(pub String);

impl From<rusqlite::Error> for SqlError {
    fn from(err: rusqlite::Error) -> Self {
        SqlError(err.to_string())
    }
}

impl From<tokio_postgres::Error> for SqlError {
    fn from(err: tokio_postgres::Error) -> Self {
        // The server's own message when there is one: "duplicate key value violates…".
        match err.as_db_error() {
            Some(db) => SqlError(format!("PostgreSQL: {}", db.message())),
            None => SqlError(format!("PostgreSQL: {err}")),
        }
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value, SqlError> {
        self.0
            .get(i)
            .ok_or_else(|| SqlError(format!("column {i} is missing")))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, SqlError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            Value::Text(t) => Err(SqlError(format!(
                "column {i} holds the text {t:?}, not a number"
            ))),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, SqlError> {
        self.opt_int(i)?
            .ok_or_else(|| SqlError(format!("column {i} is NULL, not a number")))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, SqlError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(t) => Ok(Some(t.clone())),
            Value::Int(v) => Ok(Some(v.to_string())),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, SqlError> {
        self.opt_text(i)?
            .ok_or_else(|| SqlError(format!("column {i} is NULL, not text")))
    }
}

/// Which store a statement runs on, for the few phrases that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `position > 0` of `needle` (a parameter) in `haystack`.
    pub fn contains(self, haystack: &str, needle: &str) -> String {
        match self {
            Dialect::Sqlite => format!("instr({haystack}, {needle}) > 0"),
            Dialect::Postgres => format!("strpos({haystack}, {needle}) > 0"),
        }
    }

    /// The largest of `values` (SQLite's `max` of several arguments).
    pub fn greatest(self, values: &[&str]) -> String {
        match self {
            Dialect::Sqlite => format!("max({})", values.join(", ")),
            Dialect::Postgres => format!("GREATEST({})", values.join(", ")),
        }
    }

    /// The smallest of `values`.
    pub fn least(self, values: &[&str]) -> String {
        match self {
            Dialect::Sqlite => format!("min({})", values.join(", ")),
            Dialect::Postgres => format!("LEAST({})", values.join(", ")),
        }
    }

    /// The whole numbers of a JSON array parameter, as a subquery.
    pub fn json_integers(self, param: &str) -> String {
        match self {
            Dialect::Sqlite => format!("SELECT value FROM json_each({param})"),
            Dialect::Postgres => {
                format!("SELECT jsonb_array_elements_text({param}::text::jsonb)::bigint")
            }
        }
    }
}

/// A connection to either store. Transactions are `batch("BEGIN")` … `batch("COMMIT")`.
pub trait Sql: Send {
    fn dialect(&self) -> Dialect;
    /// Runs one statement; answers how many rows it changed.
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, SqlError>;
    /// Runs one statement and reads every row it returns.
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, SqlError>;
    /// Runs statements separated by `;`, without parameters (schema, transactions).
    fn batch(&mut self, sql: &str) -> Result<(), SqlError>;

    /// The first row, if any.
    fn query_opt(&mut self, sql: &str, args: &[Value]) -> Result<Option<Row>, SqlError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The first row, which must exist.
    fn query_one(&mut self, sql: &str, args: &[Value]) -> Result<Row, SqlError> {
        self.query_opt(sql, args)?
            .ok_or_else(|| SqlError(format!("no row from {sql:?}")))
    }
}

/// The embedded store.
pub struct Sqlite(pub Connection);

fn to_sqlite(value: &Value) -> rusqlite::types::Value {
    match value {
        Value::Null => rusqlite::types::Value::Null,
        Value::Int(v) => rusqlite::types::Value::Integer(*v),
        Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
    }
}

impl Sql for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, SqlError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(args.iter().map(to_sqlite)))? as u64)
    }

    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, SqlError> {
        use rusqlite::types::ValueRef;
        let mut stmt = self.0.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter().map(to_sqlite)))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Int(v as i64),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Value::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), SqlError> {
        Ok(self.0.execute_batch(sql)?)
    }
}

/// The shared store: a blocking handle over one tokio-postgres connection. The connection
/// lives on a thread of its own with its own runtime, and each call is a message to it,
/// so the handle can be used from any thread, a runtime worker included (it blocks there
/// like a SQLite call does).
pub struct Postgres {
    requests: std::sync::mpsc::Sender<Request>,
}

type Reply<T> = std::sync::mpsc::SyncSender<Result<T, SqlError>>;

enum Request {
    Execute(String, Vec<Value>, Reply<u64>),
    Query(String, Vec<Value>, Reply<Vec<Row>>),
    Batch(String, Reply<()>),
}

/// The connection's own thread: its runtime, client and prepared statements.
struct PgConnection {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    statements: HashMap<String, tokio_postgres::Statement>,
    settings: connectors::sources::postgres::PostgresSettings,
    /// Between a `BEGIN` and its `COMMIT` or `ROLLBACK`: a connection lost in there is
    /// not made again until the transaction is ended, so no statement of a half-done
    /// batch runs outside it.
    in_transaction: bool,
}

impl Postgres {
    /// Connects with `settings` (URL without a password; the password from its file or
    /// environment variable) on a new thread, and answers once connected.
    pub fn connect(
        settings: &connectors::sources::postgres::PostgresSettings,
    ) -> Result<Postgres, SqlError> {
        let (requests, incoming) = std::sync::mpsc::channel::<Request>();
        let (connected_tx, connected) = std::sync::mpsc::sync_channel(1);
        let settings = settings.clone();
        std::thread::Builder::new()
            .name("perfpilot-postgres".into())
            .spawn(move || {
                let opened = (|| -> Result<PgConnection, SqlError> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|err| {
                            SqlError(format!("cannot start the database runtime: {err}"))
                        })?;
                    let client = runtime
                        .block_on(connectors::sources::postgres::connect_fresh(&settings))
                        .map_err(SqlError)?;
                    Ok(PgConnection {
                        runtime,
                        client,
                        statements: HashMap::new(),
                        settings,
                        in_transaction: false,
                    })
                })();
                let mut connection = match opened {
                    Ok(connection) => {
                        let _ = connected_tx.send(Ok(()));
                        connection
                    }
                    Err(err) => {
                        let _ = connected_tx.send(Err(err));
                        return;
                    }
                };
                while let Ok(request) = incoming.recv() {
                    connection.reconnect_if_lost();
                    match request {
                        Request::Execute(sql, args, reply) => {
                            let _ = reply.send(connection.execute(&sql, &args));
                        }
                        Request::Query(sql, args, reply) => {
                            let _ = reply.send(connection.query(&sql, &args));
                        }
                        Request::Batch(sql, reply) => {
                            let _ = reply.send(connection.batch(&sql));
                        }
                    }
                }
            })
            .map_err(|err| SqlError(format!("cannot start the database thread: {err}")))?;
        connected
            .recv()
            .map_err(|_| SqlError("the database thread stopped while connecting".into()))??;
        Ok(Postgres { requests })
    }

    fn ask<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, SqlError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.requests
            .send(request(reply))
            .map_err(|_| SqlError("the database connection has stopped".into()))?;
        answer
            .recv()
            .map_err(|_| SqlError("the database connection has stopped".into()))?
    }
}

impl PgConnection {
    fn statement(&mut self, sql: &str) -> Result<tokio_postgres::Statement, SqlError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let text = numbered_params(sql);
        let statement = self.runtime.block_on(self.client.prepare(&text))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn bind(
        &mut self,
        sql: &str,
        args: &[Value],
    ) -> Result<(tokio_postgres::Statement, Vec<PgParam>), SqlError> {
        let statement = self.statement(sql)?;
        if statement.params().len() != args.len() {
            return Err(SqlError(format!(
                "{sql:?} takes {} parameters, {} given",
                statement.params().len(),
                args.len()
            )));
        }
        let params = args
            .iter()
            .zip(statement.params())
            .map(|(value, ty)| to_postgres(value, ty))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((statement, params))
    }

    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, SqlError> {
        let (statement, params) = self.bind(sql, args)?;
        let refs = as_refs(&params);
        Ok(self
            .runtime
            .block_on(self.client.execute(&statement, &refs))?)
    }

    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, SqlError> {
        let (statement, params) = self.bind(sql, args)?;
        let refs = as_refs(&params);
        let rows = self
            .runtime
            .block_on(self.client.query(&statement, &refs))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| from_postgres(row, i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), SqlError> {
        let statement = sql.trim().to_ascii_uppercase();
        if statement.starts_with("COMMIT") || statement.starts_with("ROLLBACK") {
            self.in_transaction = false;
        }
        self.runtime.block_on(self.client.batch_execute(sql))?;
        if statement == "BEGIN" {
            self.in_transaction = true;
        }
        Ok(())
    }

    /// A server restart or a dropped connection closes the client for good; the next
    /// statement outside a transaction gets a new one (and fails with the reason if the
    /// server is still away), so the store carries on once PostgreSQL is back.
    fn reconnect_if_lost(&mut self) {
        if !self.client.is_closed() || self.in_transaction {
            return;
        }
        let connected = self.runtime.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(5),
                connectors::sources::postgres::connect_fresh(&self.settings),
            )
            .await
        });
        match connected {
            Ok(Ok(client)) => {
                tracing::info!("Connected to the shared database again");
                self.client = client;
                self.statements.clear();
            }
            Ok(Err(err)) => tracing::warn!(%err, "The shared database cannot be reached"),
            Err(_) => tracing::warn!("The shared database did not answer within 5 s"),
        }
    }
}

impl Sql for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, SqlError> {
        let (sql, args) = (sql.to_owned(), args.to_vec());
        self.ask(|reply| Request::Execute(sql, args, reply))
    }

    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, SqlError> {
        let (sql, args) = (sql.to_owned(), args.to_vec());
        self.ask(|reply| Request::Query(sql, args, reply))
    }

    fn batch(&mut self, sql: &str) -> Result<(), SqlError> {
        let sql = sql.to_owned();
        self.ask(|reply| Request::Batch(sql, reply))
    }
}

/// `?1` → `$1`: SQLite accepts both spellings of a numbered parameter, PostgreSQL only the
/// second. No statement of ours has a `?` inside a string literal.
fn numbered_params(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

type PgParam = Box<dyn tokio_postgres::types::ToSql + Sync + Send>;

/// Binds `value` as the type PostgreSQL inferred for the parameter.
fn to_postgres(value: &Value, ty: &tokio_postgres::types::Type) -> Result<PgParam, SqlError> {
    use tokio_postgres::types::Type;
    let wrong = || SqlError(format!("{value:?} cannot be bound as {ty}"));
    Ok(match (*ty == Type::INT8, *ty == Type::INT4, value) {
        (true, _, Value::Null) => Box::new(None::<i64>),
        (true, _, Value::Int(v)) => Box::new(*v),
        (_, true, Value::Null) => Box::new(None::<i32>),
        (_, true, Value::Int(v)) => Box::new(i32::try_from(*v).map_err(|_| wrong())?),
        (true, _, Value::Text(_)) | (_, true, Value::Text(_)) => return Err(wrong()),
        (_, _, Value::Null) => Box::new(None::<String>),
        (_, _, Value::Int(v)) => Box::new(v.to_string()),
        (_, _, Value::Text(t)) => Box::new(t.clone()),
    })
}

fn from_postgres(row: &tokio_postgres::Row, i: usize) -> Result<Value, SqlError> {
    use tokio_postgres::types::Type;
    let ty = row.columns()[i].type_();
    let value = if *ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
    } else if *ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)?
            .map(|v| Value::Int(i64::from(v)))
    } else if *ty == Type::INT2 {
        row.try_get::<_, Option<i16>>(i)?
            .map(|v| Value::Int(i64::from(v)))
    } else if *ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(i)?
            .map(|v| Value::Int(i64::from(v)))
    } else {
        row.try_get::<_, Option<String>>(i)?.map(Value::Text)
    };
    Ok(value.unwrap_or(Value::Null))
}

fn as_refs(params: &[PgParam]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| &**p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_params_become_dollars_and_nothing_else_moves() {
        assert_eq!(
            numbered_params("SELECT a FROM t WHERE b = ?1 AND c IN (?2, ?12) AND d = '?'"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $12) AND d = '?'"
        );
    }

    #[test]
    fn sqlite_round_trips_every_value_kind() {
        let mut db = Sqlite(Connection::open_in_memory().unwrap());
        db.batch("CREATE TABLE t (a INTEGER, b TEXT)").unwrap();
        db.execute("INSERT INTO t VALUES (?1, ?2)", args![7_i64, "x"])
            .unwrap();
        db.execute(
            "INSERT INTO t VALUES (?1, ?2)",
            args![None::<i64>, None::<String>],
        )
        .unwrap();
        let rows = db.query("SELECT a, b FROM t ORDER BY a", &[]).unwrap();
        assert_eq!(rows[0].opt_int(0).unwrap(), None);
        assert_eq!(rows[0].opt_text(1).unwrap(), None);
        assert_eq!(rows[1].int(0).unwrap(), 7);
        assert_eq!(rows[1].text(1).unwrap(), "x");
        assert!(rows[1].int(1).is_err(), "text is not a number");
    }
}

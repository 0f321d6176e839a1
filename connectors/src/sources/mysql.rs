//! MySQL and MariaDB as a source: one server watched at 1 Hz over one connection.
//!
//! Each tick: a canary `SELECT 1` and the user's optional `probe_query`, timed on the
//! client (the server keeps no per-statement latency a client would recognise), then
//! `SHOW GLOBAL STATUS` for the counters, `max_connections`, and the replication lag when
//! the server is a replica. Counters become rates over a window of several seconds, like
//! PostgreSQL's. Every 10th tick the statements that took the most time since the last
//! reading, from `performance_schema.events_statements_summary_by_digest` deltas
//! ([`statements`]), are reported as the source's details.
//!
//! MySQL and MariaDB speak the same protocol and keep the same counters; where they differ
//! (the statement timeout's variable, `SHOW REPLICA STATUS`, `SET PERSIST`) the server's
//! [`Flavor`] decides. A server is a `database:<name>` resource like a PostgreSQL database:
//! [`engine::model::ResourceType::Database`] is what it is to targets, alerts and the Queries panel, and
//! the source spec's `kind` says which client reads it.
//!
//! The password is never part of the configuration: `password_file` or `password_env`
//! say where it is, and it is read when the source (re)connects.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::database::Advice;
use engine::model::{MetricKind, Resource, ResourceId, ResourceSettings, SourceSpec};
use engine::series::{SeriesInfo, Tick, UnixMillis};
use engine::source::runtime::Polled;
use engine::source::{BoxFuture, Poll, Schedule, SourceError, SourceInfo};
use mysql_async::prelude::{ColumnIndex, Queryable};
use mysql_async::{Conn, Opts, OptsBuilder, Row};
use serde::{Deserialize, Serialize};

use super::kind::{self, ConfiguredKind, KindEntry, TableEntry};
use super::{Checked, MetricDef};
use crate::Refusal;

mod statements;
#[cfg(test)]
mod tests;

/// The kind name in a resource's [`SourceSpec`].
pub const KIND: &str = "mysql";
/// The kind in [`super::KINDS`]: specs of [`KIND`], the `[[mysql]]` table.
pub const ENTRY: KindEntry = KindEntry {
    kind: KIND,
    title: "MySQL/MariaDB",
    family: engine::source::SourceFamily::Database,
    settle: engine::verdict::Settle {
        secs: 2,
        why: "global status counters become rates over one poll, then probed",
    },
    toml_table: "mysql",
    from_spec: kind::decode::<MysqlSettings>,
    from_toml: kind::table::<MysqlEntry>,
};
/// Longest a connection attempt (socket, handshake, authentication) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Probes kept for the client-side percentiles (a minute at 1 Hz).
const PROBE_WINDOW: usize = 60;
/// Counter snapshots kept: rates are taken over up to this many seconds.
const RATE_WINDOW: usize = 6;
/// Ticks between two readings of the digest summary (its cost grows with the number of
/// digests; the top statements do not change every second).
const STATEMENTS_EVERY: u32 = 10;
/// Statements one tick may run (canary, probe, status, variables, replica, digests): the
/// tick's timeout allows each its `statement_timeout_ms`.
const STATEMENTS_PER_TICK: u32 = 6;
/// Connections used above which pooling or a higher `max_connections` is recommended, %.
const CONNECTIONS_WARN_PCT: f64 = 80.0;
/// Buffer pool hit ratio below which a larger buffer pool is recommended, %, when the
/// window saw at least [`POOL_ADVICE_MIN_REQUESTS`] page requests (an idle server's
/// handful of reads says nothing about its working set).
const POOL_HIT_WARN_PCT: f64 = 95.0;
const POOL_ADVICE_MIN_REQUESTS: f64 = 1000.0;

/// MySQL's error numbers perfpilot tells apart (MariaDB uses the same).
mod code {
    pub const DB_ACCESS_DENIED: u16 = 1044;
    pub const ACCESS_DENIED: u16 = 1045;
    pub const BAD_DB: u16 = 1049;
    pub const SHUTDOWN: u16 = 1053;
    pub const PARSE: u16 = 1064;
    pub const TOO_MANY_CONNECTIONS: u16 = 1040;
    pub const HOST_BLOCKED: u16 = 1129;
    pub const HOST_NOT_ALLOWED: u16 = 1130;
    pub const TABLE_ACCESS_DENIED: u16 = 1142;
    pub const COLUMN_ACCESS_DENIED: u16 = 1143;
    pub const USER_LIMIT: u16 = 1203;
    pub const SPECIFIC_ACCESS_DENIED: u16 = 1227;
    pub const UNKNOWN_VARIABLE: u16 = 1193;
    pub const INTERRUPTED: u16 = 1317;
    pub const PROC_ACCESS_DENIED: u16 = 1370;
    pub const ACCESS_DENIED_NO_PASSWORD: u16 = 1698;
    /// MariaDB's `max_statement_time` exceeded.
    pub const STATEMENT_TIMEOUT: u16 = 1969;
    /// MySQL's `max_execution_time` exceeded.
    pub const QUERY_TIMEOUT: u16 = 3024;
}

/// A server's source settings: the `[[mysql]]` table of the configuration file less its
/// `name`, and what a resource's source spec holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    /// `mysql://user@host:port/db`; without a password.
    pub url: String,
    /// A file holding the password (its first line), readable by perfpilot only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A query that stands for the application's work, timed every tick (`SELECT 1` when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_query: Option<String>,
    /// Servers with the same group are shards of one logical database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Longest any statement perfpilot runs may take, in ms (the server's own limit too:
    /// `max_statement_time` on MariaDB, `max_execution_time` on MySQL).
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u32,
}

fn default_statement_timeout_ms() -> u32 {
    2_000
}

/// One `[[mysql]]` entry of the configuration file: a name and the settings (written out
/// rather than flattened, so an unknown key is still an error naming its line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlEntry {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub probe_query: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u32,
}

impl TableEntry for MysqlEntry {
    type Settings = MysqlSettings;

    fn name(&self) -> &str {
        &self.name
    }

    fn settings(&self) -> MysqlSettings {
        MysqlSettings {
            url: self.url.clone(),
            password_file: self.password_file.clone(),
            password_env: self.password_env.clone(),
            probe_query: self.probe_query.clone(),
            group: self.group.clone(),
            statement_timeout_ms: self.statement_timeout_ms,
        }
    }
}

impl MysqlSettings {
    /// Checks everything that can be checked without connecting; the refusal names the
    /// field and the rule, and never quotes a password.
    pub fn validate(&self) -> Result<Opts, Refusal> {
        const NO_PASSWORD: &str = "must not contain a password (it would end up in snapshots and the audit log); use password_file or password_env";
        // Before parsing: whatever else is wrong with the URL, a password in it is the
        // refusal that matters (and the parser's message must not get to quote it).
        if url_has_password(&self.url) {
            return Err(Refusal::new("url", NO_PASSWORD));
        }
        let opts = Opts::from_url(&self.url).map_err(|err| {
            Refusal::new(
                "url",
                engine::redact::redact(&format!(
                    "is not a MySQL connection URL like mysql://perf@db.internal:3306/app ({err})"
                )),
            )
        })?;
        if opts.pass().is_some() {
            return Err(Refusal::new("url", NO_PASSWORD));
        }
        if opts.user().is_none_or(str::is_empty) {
            return Err(Refusal::new(
                "url",
                "must name a user, e.g. mysql://perf@127.0.0.1:3306/app",
            ));
        }
        if opts.ssl_opts().is_some() {
            return Err(Refusal::new("url", "require_ssl is not supported: this perfpilot's MySQL client has no TLS (reach the server over a private network or a tunnel)"));
        }
        if opts.enable_cleartext_plugin() {
            return Err(Refusal::new(
                "url",
                "enable_cleartext_plugin would send the password unencrypted; leave it off",
            ));
        }
        super::secret::validate(&self.password_file, &self.password_env)?;
        if let Some(query) = &self.probe_query {
            if query.trim().is_empty() || query.len() > 4096 {
                return Err(Refusal::new(
                    "probe_query",
                    "must be a query of 1–4096 characters",
                ));
            }
        }
        super::secret::validate_group(&self.group)?;
        if !(100..=60_000).contains(&self.statement_timeout_ms) {
            return Err(Refusal::new(
                "statement_timeout_ms",
                format!(
                    "must be between 100 and 60000, got {}",
                    self.statement_timeout_ms
                ),
            ));
        }
        Ok(opts)
    }

    /// The password, read now from where the settings say it is (off the async runtime,
    /// capped: see [`super::secret::read`]). MySQL's authentication hashes it a few times
    /// only, so no bound beyond the file's is needed.
    pub async fn password(&self) -> Result<Option<String>, String> {
        super::secret::read(&self.password_file, &self.password_env).await
    }

    pub fn spec(&self) -> SourceSpec {
        super::spec_of(KIND, self)
    }

    pub fn from_spec(spec: &SourceSpec) -> Result<MysqlSettings, Refusal> {
        super::settings_of(spec)
    }
}

impl ConfiguredKind for MysqlSettings {
    /// A database setting, tuned with `SET PERSIST` on this server.
    fn actuator(
        &self,
        action: &engine::model::ActionConfig,
        _: &crate::Registries,
    ) -> Option<Result<Arc<dyn engine::actuator::Actuator>, Refusal>> {
        let engine::model::ActionConfig::DatabaseSetting(setting) = action else {
            return None;
        };
        Some(
            crate::actuators::mysql_setting::validate(setting).map(|()| {
                Arc::new(crate::actuators::mysql_setting::MysqlSetting::new(
                    setting.clone(),
                    Ok(self.clone()),
                )) as Arc<dyn engine::actuator::Actuator>
            }),
        )
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    fn noun(&self) -> &'static str {
        "database"
    }

    fn spec(&self) -> SourceSpec {
        MysqlSettings::spec(self)
    }

    fn validate(&self) -> Result<(), Refusal> {
        MysqlSettings::validate(self).map(drop)
    }

    fn resource_id(&self, name: &str) -> Result<ResourceId, Refusal> {
        resource_id(name)
    }

    fn resource(&self, name: &str, defaults: &ResourceSettings) -> Result<Resource, Refusal> {
        resource(name, self, defaults)
    }

    fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    fn check(&self, password: Option<String>) -> BoxFuture<'_, Result<Checked, Refusal>> {
        Box::pin(async move {
            let report = check_with(self, password).await?;
            Ok(Checked {
                server_version: report.server_version,
                statements: Some(report.statements),
                tuning_unavailable: report.tuning_unavailable,
            })
        })
    }

    fn source(
        &self,
        resource: &Resource,
        interval: Duration,
        _: &crate::Registries,
    ) -> Result<Box<dyn engine::source::runtime::Source>, String> {
        Ok(Box::new(source(resource, self.clone(), interval)?))
    }

    fn takes_password(&self) -> bool {
        true
    }

    fn password_location(&self) -> (Option<&PathBuf>, Option<&String>) {
        (self.password_file.as_ref(), self.password_env.as_ref())
    }

    fn keep_password_in(&mut self, path: PathBuf) {
        self.password_file = Some(path);
        self.password_env = None;
    }
}

/// Whether `url`'s authority carries a password (`user:secret@host`, an empty one too).
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The resource id of a server: `database:<name>`, the one namespace of databases
/// whatever their kind (a PostgreSQL and a MySQL database cannot share a name).
pub fn resource_id(name: &str) -> Result<ResourceId, Refusal> {
    super::postgres::resource_id(name)
}

const METRICS: &[MetricDef] = &[
    MetricDef::new("latency", Some(MetricKind::Latency), "ms"),
    MetricDef::new("latency_p50", Some(MetricKind::Latency), "ms"),
    MetricDef::new("latency_p95", Some(MetricKind::Latency), "ms"),
    MetricDef::new("latency_p99", Some(MetricKind::Latency), "ms"),
    MetricDef::new("canary_ms", Some(MetricKind::Latency), "ms"),
    MetricDef::new("queries", Some(MetricKind::Throughput), "/s"),
    MetricDef::new("slow_queries_per_s", Some(MetricKind::Throughput), "/s"),
    MetricDef::new("connections_pct", Some(MetricKind::Utilization), "%"),
    MetricDef::new("buffer_pool_hit_pct", Some(MetricKind::Utilization), "%"),
    MetricDef::new("connections", None, "connections"),
    MetricDef::new("threads_running", None, "threads"),
    MetricDef::new("replication_lag_s", None, "s"),
];

/// The resource a server is, with the seed's default target for databases (probe latency
/// p95 ≤ 80 ms) and `defaults` as settings.
pub fn resource(
    name: &str,
    settings: &MysqlSettings,
    defaults: &ResourceSettings,
) -> Result<Resource, Refusal> {
    super::database::resource(resource_id(name)?, name, METRICS, settings.spec(), defaults)
}

/// The source of `resource` (whose spec holds `settings`), polled every `interval`.
pub fn source(
    resource: &Resource,
    settings: MysqlSettings,
    interval: Duration,
) -> Result<Polled<MysqlPoll>, String> {
    let statement_timeout_ms = settings.statement_timeout_ms;
    let poll = poll(resource, settings)?;
    let info = SourceInfo {
        id: resource.id.to_string(),
        kind: KIND.to_owned(),
        resources: vec![resource.clone()],
        owns: Vec::new(),
    };
    let mut schedule = Schedule::every(interval);
    // Connecting and each statement have their own timeouts; this only stops a tick that
    // hangs as a whole.
    schedule.timeout = CONNECT_TIMEOUT
        + Duration::from_millis(u64::from(statement_timeout_ms) * u64::from(STATEMENTS_PER_TICK));
    Ok(Polled::new(info, schedule, poll))
}

/// The polled part of [`source`], on its own so it can be driven tick by tick.
pub fn poll(resource: &Resource, settings: MysqlSettings) -> Result<MysqlPoll, String> {
    let opts = settings.validate()?;
    Ok(MysqlPoll {
        statements: statements::Digests::new(opts.db_name(), opts.user().unwrap_or_default()),
        settings,
        opts,
        series: MetricDef::series(METRICS, resource),
        session: None,
        probes: VecDeque::with_capacity(PROBE_WINDOW),
        counters: VecDeque::with_capacity(RATE_WINDOW),
        replica: Replica::Unknown,
        ticks: 0,
        details: None,
    })
}

/// Which server it is, from `VERSION()` (`10.11.6-MariaDB-0+deb12u1`, `8.0.36`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Mariadb,
    Mysql,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub flavor: Flavor,
    /// `10.11.6`, `8.0.36`: the version without its build suffix.
    pub version: String,
    pub major: u32,
}

impl Server {
    pub fn of(version: &str) -> Server {
        let flavor = if version.contains("MariaDB") {
            Flavor::Mariadb
        } else {
            Flavor::Mysql
        };
        let number = version.split('-').next().unwrap_or_default().trim();
        let major = number
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        Server {
            flavor,
            version: number.to_owned(),
            major,
        }
    }

    /// `MariaDB 10.11.6`, `MySQL 8.0.36`.
    pub fn name(&self) -> String {
        match self.flavor {
            Flavor::Mariadb => format!("MariaDB {}", self.version),
            Flavor::Mysql => format!("MySQL {}", self.version),
        }
    }

    /// `SET PERSIST` exists (MySQL 8.0 and later; no MariaDB has it).
    pub fn has_set_persist(&self) -> bool {
        self.flavor == Flavor::Mysql && self.major >= 8
    }
}

/// A statement that did not work: the server's error number when it refused it, and what
/// went wrong in words (never a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub code: Option<u16>,
    pub message: String,
}

impl Failed {
    /// The user lacks a privilege the statement needs.
    pub fn denied(&self) -> bool {
        matches!(
            self.code,
            Some(
                code::DB_ACCESS_DENIED
                    | code::TABLE_ACCESS_DENIED
                    | code::COLUMN_ACCESS_DENIED
                    | code::SPECIFIC_ACCESS_DENIED
                    | code::PROC_ACCESS_DENIED
            )
        )
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A connection, the server it reached, and how many statements perfpilot sent on it.
pub struct Session {
    conn: Conn,
    opts: Opts,
    pub server: Server,
    timeout: Duration,
    /// Statements sent since connecting: perfpilot's own share of the server's `Questions`.
    sent: u64,
}

impl Session {
    /// Runs `sql` (text protocol) and returns its first result set's rows, within the
    /// statement timeout.
    pub async fn rows(&mut self, sql: &str) -> Result<Vec<Row>, Failed> {
        self.sent += 1;
        let timeout = self.timeout;
        let result = tokio::time::timeout(timeout, self.conn.query::<Row, _>(sql)).await;
        match result {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(err)) => Err(self.failed(&err)),
            Err(_) => Err(Failed {
                code: None,
                message: format!(
                    "a statement took longer than statement_timeout_ms ({} ms)",
                    timeout.as_millis()
                ),
            }),
        }
    }

    /// Runs `sql` and drops what it returns, within the statement timeout.
    pub async fn run(&mut self, sql: &str) -> Result<(), Failed> {
        self.sent += 1;
        let timeout = self.timeout;
        let result = tokio::time::timeout(timeout, self.conn.query_drop(sql)).await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(self.failed(&err)),
            Err(_) => Err(Failed {
                code: None,
                message: format!(
                    "a statement took longer than statement_timeout_ms ({} ms)",
                    timeout.as_millis()
                ),
            }),
        }
    }

    /// Warnings of the last statement (`SHOW WARNINGS`), when it had any.
    pub async fn warnings(&mut self) -> Result<Vec<String>, Failed> {
        if self.conn.get_warnings() == 0 {
            return Ok(Vec::new());
        }
        let rows = self.rows("SHOW WARNINGS").await?;
        Ok(rows.iter().filter_map(|row| text(row, 2)).collect())
    }

    fn failed(&self, err: &mysql_async::Error) -> Failed {
        let code = match err {
            mysql_async::Error::Server(server) => Some(server.code),
            _ => None,
        };
        Failed {
            code,
            message: describe(err, &self.opts),
        }
    }
}

/// A new connection with the source's settings and password (the actuator's: changes are
/// verified on connections that did not exist before them).
pub async fn connect_fresh(settings: &MysqlSettings) -> Result<Session, String> {
    let opts = settings.validate()?;
    let password = settings.password().await?;
    connect(&opts, password.as_deref(), settings.statement_timeout_ms).await
}

/// A connection within [`CONNECT_TIMEOUT`], its server known and the server's own
/// statement limit set. The client is async through and through (the handshake's hashing
/// is a few SHA rounds), so nothing here holds a runtime worker.
async fn connect(
    opts: &Opts,
    password: Option<&str>,
    statement_timeout_ms: u32,
) -> Result<Session, String> {
    // TCP to the address the URL names: the client would otherwise switch to the socket
    // the server reports when the address is loopback, logging in as another account
    // (`user@localhost` instead of `user@127.0.0.1`).
    let builder = OptsBuilder::from_opts(opts.clone())
        .pass(password)
        .prefer_socket(false);
    let conn = match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(builder)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => return Err(describe(&err, opts)),
        Err(_) => {
            return Err(format!(
                "cannot reach the server at {}: no answer within {} s",
                address(opts),
                CONNECT_TIMEOUT.as_secs()
            ))
        }
    };
    let mut session = Session {
        conn,
        opts: opts.clone(),
        server: Server::of(""),
        timeout: Duration::from_millis(u64::from(statement_timeout_ms)),
        sent: 0,
    };
    let rows = session
        .rows("SELECT VERSION()")
        .await
        .map_err(|err| err.message)?;
    session.server = Server::of(&rows.first().and_then(|r| text(r, 0)).unwrap_or_default());
    let limit = match session.server.flavor {
        Flavor::Mariadb => format!(
            "SET SESSION max_statement_time = {:.3}",
            f64::from(statement_timeout_ms) / 1000.0
        ),
        Flavor::Mysql => format!("SET SESSION max_execution_time = {statement_timeout_ms}"),
    };
    match session.run(&limit).await {
        Ok(()) => {}
        // MySQL before 5.7.8 has no max_execution_time: the client's timeout still bounds
        // every statement.
        Err(err) if err.code == Some(code::UNKNOWN_VARIABLE) => {
            tracing::debug!(server = %session.server.name(), "no server-side statement limit");
        }
        Err(err) => return Err(err.message),
    }
    Ok(session)
}

/// Where `opts` connects, for messages.
fn address(opts: &Opts) -> String {
    match opts.socket() {
        Some(socket) => socket.to_owned(),
        None => format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port()),
    }
}

/// A client error in words a person reads, never a password.
pub fn describe(err: &mysql_async::Error, opts: &Opts) -> String {
    let user = opts.user().unwrap_or_default();
    let db = opts.db_name().unwrap_or_default();
    let text = match err {
        mysql_async::Error::Server(server) => {
            let message = &server.message;
            match server.code {
                code::ACCESS_DENIED | code::ACCESS_DENIED_NO_PASSWORD => format!(
                    "the server refused our credentials for user \"{user}\" (wrong password, or no such user for this host): {message}"
                ),
                code::DB_ACCESS_DENIED => {
                    format!("user \"{user}\" may not use database \"{db}\": {message}")
                }
                code::BAD_DB => format!("database \"{db}\" does not exist"),
                code::TOO_MANY_CONNECTIONS | code::USER_LIMIT => {
                    format!("the server has too many connections: {message}")
                }
                code::HOST_BLOCKED => format!(
                    "the server blocks this host after too many failed connections (FLUSH HOSTS unblocks it): {message}"
                ),
                code::HOST_NOT_ALLOWED => {
                    format!("the server does not let this host connect: {message}")
                }
                code::TABLE_ACCESS_DENIED
                | code::COLUMN_ACCESS_DENIED
                | code::SPECIFIC_ACCESS_DENIED
                | code::PROC_ACCESS_DENIED => format!("permission denied: {message}"),
                code::STATEMENT_TIMEOUT | code::QUERY_TIMEOUT | code::INTERRUPTED => {
                    format!("a statement took longer than statement_timeout_ms: {message}")
                }
                code::SHUTDOWN => format!("the server is shutting down: {message}"),
                other => format!("{message} (error {other})"),
            }
        }
        mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => {
            "the connection to the server was lost".to_owned()
        }
        _ => match io_error(err) {
            Some(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => format!(
                    "cannot reach the server at {}: connection refused (is MySQL/MariaDB running and listening there?)",
                    address(opts)
                ),
                std::io::ErrorKind::TimedOut => format!(
                    "cannot reach the server at {}: no answer within {} s",
                    address(opts),
                    CONNECT_TIMEOUT.as_secs()
                ),
                std::io::ErrorKind::NotFound if opts.socket().is_some() => {
                    format!("no MySQL socket at {}", address(opts))
                }
                std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe => {
                    "the connection to the server was lost".to_owned()
                }
                _ => format!("cannot reach the server at {}: {io}", address(opts)),
            },
            None => err.to_string(),
        },
    };
    engine::redact::redact(&text)
}

/// The I/O error at the root of `err`, if that is what it is.
fn io_error(err: &mysql_async::Error) -> Option<&std::io::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = current.source();
    }
    None
}

/// A column as text (the text protocol sends every value as bytes); `None` for NULL.
fn text<I: ColumnIndex>(row: &Row, index: I) -> Option<String> {
    row.get_opt::<Option<String>, I>(index)
        .and_then(Result::ok)
        .flatten()
}

/// A column as a number.
fn number<I: ColumnIndex>(row: &Row, index: I) -> Option<f64> {
    text(row, index).and_then(|t| t.trim().parse().ok())
}

/// What a check of a server found (for adding one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// `MariaDB 10.11.6`, `MySQL 8.0.36`.
    pub server_version: String,
    /// Top statements will be read: `performance_schema` is on and readable.
    pub statements: bool,
    /// Why tuning will be refused (no privilege to `SET GLOBAL`).
    pub tuning_unavailable: Option<String>,
    /// Everything that will not work, in words (top statements, replication lag, tuning).
    pub unavailable: Vec<String>,
}

/// Connects once and runs what the source runs, so a server is refused with the reason
/// before it is added (unreachable, credentials refused, database missing) and what will
/// not work is said (performance_schema off or unreadable, replication status not
/// readable, no privilege to tune). With the password read from where the settings say,
/// whose refusal is text: so is this one (`field: rule`).
pub async fn check(settings: &MysqlSettings) -> Result<CheckReport, String> {
    check_with(settings, settings.password().await?)
        .await
        .map_err(String::from)
}

/// [`check`] with a password given rather than read from where the settings say; the
/// refusal is on `probe_query` when the server refuses it, else on `url` (the server, and
/// the user the URL names).
pub async fn check_with(
    settings: &MysqlSettings,
    password: Option<String>,
) -> Result<CheckReport, Refusal> {
    let at_url = |reason: String| Refusal::new("url", reason);
    let failed = |err: Failed| at_url(err.message);
    let opts = settings.validate()?;
    let mut session = connect(&opts, password.as_deref(), settings.statement_timeout_ms)
        .await
        .map_err(at_url)?;
    let user = opts.user().unwrap_or_default().to_owned();
    let status = Status::read(&mut session).await.map_err(failed)?;
    if let Some(query) = &settings.probe_query {
        session
            .run(query)
            .await
            .map_err(|err| Refusal::new("probe_query", err.message))?;
    }
    let mut unavailable = Vec::new();
    let mut digests = statements::Digests::new(opts.db_name(), &user);
    let report = digests
        .read(&mut session, 0, status.performance_schema, Vec::new())
        .await
        .map_err(failed)?;
    let statements = report.unavailable.is_none();
    unavailable.extend(report.unavailable);
    let mut replica = Replica::Unknown;
    replica.lag(&mut session).await.map_err(failed)?;
    if replica == Replica::Denied {
        unavailable.push(format!(
            "user \"{user}\" may not read the replication status: replication lag unavailable (GRANT REPLICATION CLIENT on MySQL, SLAVE MONITOR on MariaDB)"
        ));
    }
    let tuning_unavailable = tuning_unavailable(&mut session, &user)
        .await
        .map_err(failed)?;
    unavailable.extend(
        tuning_unavailable
            .as_ref()
            .map(|why| format!("tuning {why}")),
    );
    Ok(CheckReport {
        server_version: session.server.name(),
        statements,
        tuning_unavailable,
        unavailable,
    })
}

/// Why `SET GLOBAL` will be refused, judged from the privileges granted to the user
/// itself (`information_schema.USER_PRIVILEGES`): SUPER, or MySQL 8's
/// SYSTEM_VARIABLES_ADMIN.
async fn tuning_unavailable(session: &mut Session, user: &str) -> Result<Option<String>, Failed> {
    let rows = session
        .rows(
            r"SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES
              WHERE GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''',
                                     SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
        )
        .await?;
    let can = rows
        .iter()
        .filter_map(|row| text(row, 0))
        .any(|p| p == "SUPER" || p == "SYSTEM_VARIABLES_ADMIN");
    Ok((!can).then(|| {
        format!(
            "unavailable: user \"{user}\" holds neither SUPER nor SYSTEM_VARIABLES_ADMIN (granted to it directly), so SET GLOBAL will be refused"
        )
    }))
}

/// `SHOW GLOBAL STATUS` and the variables a tick needs.
#[derive(Debug, Clone, Copy)]
struct Status {
    questions: u64,
    threads_connected: u64,
    threads_running: u64,
    slow_queries: u64,
    /// `Innodb_buffer_pool_read_requests` and `Innodb_buffer_pool_reads` (a server without
    /// InnoDB has neither).
    pool: Option<(u64, u64)>,
    max_connections: u64,
    performance_schema: bool,
    /// Statements perfpilot had sent on the connection when the status was read.
    sent: u64,
}

const STATUS: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN \
     ('Questions', 'Threads_connected', 'Threads_running', 'Slow_queries', \
      'Innodb_buffer_pool_read_requests', 'Innodb_buffer_pool_reads')";
const VARIABLES: &str = "SELECT @@GLOBAL.max_connections, @@GLOBAL.performance_schema";

impl Status {
    async fn read(session: &mut Session) -> Result<Status, Failed> {
        let rows = session.rows(STATUS).await?;
        let sent = session.sent;
        let values: HashMap<String, u64> = rows
            .iter()
            .filter_map(|row| {
                let value = text(row, 1)?.trim().parse().ok()?;
                Some((text(row, 0)?.to_ascii_lowercase(), value))
            })
            .collect();
        let get = |name: &str| values.get(&name.to_ascii_lowercase()).copied();
        let missing = |name: &str| Failed {
            code: None,
            message: format!("SHOW GLOBAL STATUS has no {name}"),
        };
        let variables = session.rows(VARIABLES).await?;
        let row = variables
            .first()
            .ok_or_else(|| missing("max_connections"))?;
        Ok(Status {
            questions: get("Questions").ok_or_else(|| missing("Questions"))?,
            threads_connected: get("Threads_connected")
                .ok_or_else(|| missing("Threads_connected"))?,
            threads_running: get("Threads_running").unwrap_or(0),
            slow_queries: get("Slow_queries").unwrap_or(0),
            pool: get("Innodb_buffer_pool_read_requests").zip(get("Innodb_buffer_pool_reads")),
            max_connections: number(row, 0).map_or(0, |n| n as u64),
            performance_schema: matches!(
                text(row, 1).as_deref().map(str::trim),
                Some("1" | "ON" | "on")
            ),
            sent,
        })
    }
}

/// How this connection reads the replication status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replica {
    /// Not asked yet on this connection.
    Unknown,
    /// The statement the server understood.
    Statement(&'static str),
    /// The user may not read it: the lag stays a gap.
    Denied,
    /// The server understands neither statement.
    Unsupported,
}

/// MySQL 8.0.22+ and MariaDB 10.5.1+ say `REPLICA`; older servers only `SLAVE`.
const REPLICA_STATEMENTS: [&str; 2] = ["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"];

impl Replica {
    /// Seconds the replica is behind its source; `None` (a gap, not 0) when the server is
    /// no replica, its SQL thread is not running, or the status cannot be read.
    async fn lag(&mut self, session: &mut Session) -> Result<Option<f64>, Failed> {
        let rows = match *self {
            Replica::Denied | Replica::Unsupported => return Ok(None),
            Replica::Statement(sql) => session.rows(sql).await?,
            Replica::Unknown => {
                let mut found = None;
                for sql in REPLICA_STATEMENTS {
                    match session.rows(sql).await {
                        Ok(rows) => {
                            *self = Replica::Statement(sql);
                            found = Some(rows);
                            break;
                        }
                        Err(err) if err.code == Some(code::PARSE) => continue,
                        Err(err) if err.denied() => {
                            *self = Replica::Denied;
                            return Ok(None);
                        }
                        Err(err) => return Err(err),
                    }
                }
                match found {
                    Some(rows) => rows,
                    None => {
                        *self = Replica::Unsupported;
                        return Ok(None);
                    }
                }
            }
        };
        Ok(rows.first().and_then(|row| {
            number(row, "Seconds_Behind_Source").or_else(|| number(row, "Seconds_Behind_Master"))
        }))
    }
}

/// Cumulative counters at one instant.
#[derive(Debug, Clone, Copy)]
struct Counters {
    at: Instant,
    questions: u64,
    /// perfpilot's own statements on its connection, to leave out of `Questions`.
    own: u64,
    slow: u64,
    pool: Option<(u64, u64)>,
}

/// Rates between two counter snapshots; `None` when the counters went backwards (a
/// `FLUSH STATUS`, or another server behind the same address).
#[derive(Debug, Clone, Copy)]
struct Rates {
    secs: f64,
    queries_per_s: f64,
    slow_queries_per_s: f64,
    /// Page requests and those read from disk over the window.
    pool: Option<(f64, f64)>,
}

impl Rates {
    fn between(then: &Counters, now: &Counters) -> Option<Rates> {
        let secs = now.at.duration_since(then.at).as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let delta = |a: u64, b: u64| b.checked_sub(a).map(|d| d as f64);
        let questions = delta(then.questions, now.questions)?;
        let own = delta(then.own, now.own)?;
        let slow = delta(then.slow, now.slow)?;
        let pool = match (then.pool, now.pool) {
            (Some((requests0, reads0)), Some((requests1, reads1))) => {
                delta(requests0, requests1).zip(delta(reads0, reads1))
            }
            _ => None,
        };
        Some(Rates {
            secs,
            queries_per_s: (questions - own).max(0.0) / secs,
            slow_queries_per_s: slow / secs,
            pool,
        })
    }

    /// Share of page requests the buffer pool served, %; `None` without requests.
    fn buffer_pool_hit_pct(&self) -> Option<f64> {
        let (requests, reads) = self.pool?;
        (requests > 0.0).then(|| ((requests - reads) / requests * 100.0).clamp(0.0, 100.0))
    }
}

/// Recommendations from a tick's numbers, each with the numbers behind it.
fn advice(status: &Status, rates: Option<&Rates>) -> Vec<Advice> {
    let mut out = Vec::new();
    if status.max_connections > 0 {
        let pct = status.threads_connected as f64 / status.max_connections as f64 * 100.0;
        if pct >= CONNECTIONS_WARN_PCT {
            out.push(Advice {
                title: "Pool connections, or raise max_connections".into(),
                evidence: format!(
                    "{} of max_connections {} in use ({pct:.0} %). max_connections is dynamic: the action \"Tune a database setting\" raises it with rollback; every connection costs a thread and its per-session buffers, so a pool in the application (or ProxySQL, MaxScale) serves more clients for less.",
                    status.threads_connected, status.max_connections
                ),
            });
        }
    }
    if let Some(rates) = rates {
        if let (Some(hit), Some((requests, reads))) = (rates.buffer_pool_hit_pct(), rates.pool) {
            if hit < POOL_HIT_WARN_PCT && requests >= POOL_ADVICE_MIN_REQUESTS {
                out.push(Advice {
                    title: "Raise innodb_buffer_pool_size".into(),
                    evidence: format!(
                        "{hit:.1} % of InnoDB page requests were served from the buffer pool over the last {:.0} s ({reads:.0} of {requests:.0} read from disk): the working set does not fit. The pool resizes online in chunks, in the background; perfpilot leaves that change to you.",
                        rates.secs
                    ),
                });
            }
        }
    }
    out
}

/// The source's state between ticks (the runtime never runs two collects at once).
pub struct MysqlPoll {
    settings: MysqlSettings,
    /// `settings.url` parsed once (the settings were validated when the source was made).
    opts: Opts,
    series: Arc<[SeriesInfo]>,
    /// Out of here while a tick uses it: a tick that fails or is abandoned by its timeout
    /// drops it, so the next tick starts on a new connection, never on one left
    /// mid-statement.
    session: Option<Session>,
    /// The latest probe latencies, ms.
    probes: VecDeque<f64>,
    counters: VecDeque<Counters>,
    replica: Replica,
    statements: statements::Digests,
    ticks: u32,
    details: Option<serde_json::Value>,
}

impl MysqlPoll {
    async fn connect(&mut self) -> Result<Session, SourceError> {
        let password = self.settings.password().await.map_err(SourceError::new)?;
        let session = connect(
            &self.opts,
            password.as_deref(),
            self.settings.statement_timeout_ms,
        )
        .await
        .map_err(SourceError::new)?;
        // perfpilot's own statement count starts again with the connection.
        self.counters.clear();
        self.replica = Replica::Unknown;
        self.statements.forget();
        Ok(session)
    }

    async fn tick(&mut self, at: UnixMillis) -> Result<Tick, SourceError> {
        let mut session = match self.session.take() {
            Some(session) => session,
            None => self.connect().await?,
        };
        let tick = self.read(&mut session, at).await?;
        self.session = Some(session);
        Ok(tick)
    }

    async fn read(&mut self, session: &mut Session, at: UnixMillis) -> Result<Tick, SourceError> {
        let failed = |err: Failed| SourceError::new(err.message);
        let started = Instant::now();
        session.run("SELECT 1").await.map_err(failed)?;
        let canary = started.elapsed().as_secs_f64() * 1000.0;
        let probe = match &self.settings.probe_query {
            Some(query) => {
                let started = Instant::now();
                session
                    .run(query)
                    .await
                    .map_err(|err| SourceError::new(format!("probe_query: {err}")))?;
                started.elapsed().as_secs_f64() * 1000.0
            }
            None => canary,
        };
        let status = Status::read(session).await.map_err(failed)?;
        let lag = self.replica.lag(session).await.map_err(failed)?;
        let counters = Counters {
            at: Instant::now(),
            questions: status.questions,
            own: status.sent,
            slow: status.slow_queries,
            pool: status.pool,
        };

        if self.probes.len() == PROBE_WINDOW {
            self.probes.pop_front();
        }
        self.probes.push_back(probe);
        let oldest = self.counters.front().copied();
        if self.counters.len() == RATE_WINDOW {
            self.counters.pop_front();
        }
        self.counters.push_back(counters);
        let rates = oldest.and_then(|then| Rates::between(&then, &counters));
        let probes = self.probes.make_contiguous();
        let percentile = |p: f64| engine::stats::percentile(probes, p);
        let (p50, p95, p99) = (percentile(50.0), percentile(95.0), percentile(99.0));
        let values: Vec<Option<f64>> = vec![
            Some(probe),
            p50,
            p95,
            p99,
            Some(canary),
            rates.map(|r| r.queries_per_s),
            rates.map(|r| r.slow_queries_per_s),
            (status.max_connections > 0)
                .then(|| status.threads_connected as f64 / status.max_connections as f64 * 100.0),
            rates.and_then(|r| r.buffer_pool_hit_pct()),
            Some(status.threads_connected as f64),
            Some(status.threads_running as f64),
            lag,
        ];
        debug_assert_eq!(values.len(), METRICS.len());
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % STATEMENTS_EVERY == 1 {
            let advice = advice(&status, rates.as_ref());
            let report = self
                .statements
                .read(session, at, status.performance_schema, advice)
                .await
                .map_err(failed)?;
            self.details = serde_json::to_value(&report).ok();
        }
        Ok(Tick {
            at,
            series: self.series.clone(),
            values: values.into_iter().map(|v| v.map(|v| v as f32)).collect(),
            top_processes: None,
        })
    }
}

impl Poll for MysqlPoll {
    fn details(&mut self) -> Option<serde_json::Value> {
        self.details.take()
    }

    fn collect(&mut self, at: UnixMillis) -> BoxFuture<'_, Result<Tick, SourceError>> {
        Box::pin(self.tick(at))
    }
}

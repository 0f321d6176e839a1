//! PostgreSQL as a source: one database watched at 1 Hz over one connection.
//!
//! Each tick: an active probe (a canary `SELECT 1` and the user's optional
//! `probe_query`, each under a `statement_timeout`) timed on the client, so percentiles
//! come from what a client really waits (pg_stat_statements has none), and one statement
//! reading `pg_stat_database`, `pg_stat_activity`, `max_connections` and replication lag.
//! Counters become rates over a window of several seconds: PostgreSQL flushes backend
//! statistics about once a second, so one-second deltas alias (0, then twice the rate).
//!
//! `pg_monitor` is enough for everything here. The password is never part of the
//! configuration: `password_file` or `password_env` say where it is, and it is read when
//! the source (re)connects.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::model::{MetricKind, Resource, ResourceId, ResourceSettings, SourceSpec};
use engine::series::{SeriesInfo, Tick, UnixMillis};
use engine::source::runtime::Polled;
use engine::source::{BoxFuture, Poll, Schedule, SourceError, SourceInfo};

use super::kind::{self, ConfiguredKind, KindEntry, TableEntry};
use super::{Checked, MetricDef};
use crate::Refusal;
use serde::{Deserialize, Serialize};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

pub mod indexes;

/// The kind name in a resource's [`SourceSpec`].
pub const KIND: &str = "postgres";
/// The kind in [`super::KINDS`]: specs of [`KIND`], the `[[postgres]]` table.
pub const ENTRY: KindEntry = KindEntry {
    kind: KIND,
    title: "PostgreSQL",
    family: engine::source::SourceFamily::Database,
    settle: engine::verdict::Settle {
        secs: 2,
        why: "cumulative statistics are flushed about once a second, then probed",
    },
    toml_table: "postgres",
    from_spec: kind::decode::<PostgresSettings>,
    from_toml: kind::table::<PostgresEntry>,
};
/// Longest a connection attempt (socket, TLS-less startup, authentication) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Probes kept for the client-side percentiles (a minute at 1 Hz).
const PROBE_WINDOW: usize = 60;
/// Counter snapshots kept: rates are taken over up to this many seconds.
const RATE_WINDOW: usize = 6;
/// Ticks between two readings of `pg_stat_statements` (its cost grows with the number of
/// statements; the top queries do not change every second).
const STATEMENTS_EVERY: u32 = 10;
/// Queries in the top list.
const TOP_QUERIES: usize = 10;
/// Ticks between two rounds of index advice.
const INDEXES_EVERY: u32 = 15;

const STATEMENTS: &str = "SELECT queryid, left(query, 500), calls, total_exec_time \
     FROM pg_stat_statements \
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND toplevel \
       AND userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user) \
     ORDER BY total_exec_time DESC LIMIT 500";

/// A database's source settings: the `[[postgres]]` table of the configuration file less
/// its `name`, and what a resource's source spec holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// `postgresql://user@host:port/db` (or `host=… user=…`); without a password.
    pub url: String,
    /// A file holding the password (its first line), readable by perfpilot only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A query that stands for the application's work; timed every tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_query: Option<String>,
    /// Databases with the same group are shards of one logical database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `statement_timeout` of every query perfpilot runs, in ms.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u32,
    /// Sessions idle in a transaction longer than this are worth a recommendation, s.
    #[serde(default = "default_idle_in_transaction_limit_s")]
    pub idle_in_transaction_limit_s: u32,
}

fn default_statement_timeout_ms() -> u32 {
    2_000
}

fn default_idle_in_transaction_limit_s() -> u32 {
    60
}

/// A tick's numbers the recommendations are made from.
#[derive(Debug, Clone, Copy)]
struct Load {
    clients: i64,
    max_connections: i64,
    idle_in_tx: i64,
    oldest_idle_in_tx_s: f64,
}

/// Connections used above which a pooler is recommended, % of `max_connections`.
const CONNECTIONS_WARN_PCT: f64 = 80.0;

/// Recommendations about transactions and pooling, each with the numbers behind it.
fn advice(settings: &PostgresSettings, load: Load) -> Vec<engine::database::Advice> {
    let mut out = Vec::new();
    let limit = f64::from(settings.idle_in_transaction_limit_s);
    if load.idle_in_tx > 0 && load.oldest_idle_in_tx_s > limit {
        out.push(engine::database::Advice {
            title: format!(
                "Set idle_in_transaction_session_timeout (for example '{}s')",
                settings.idle_in_transaction_limit_s
            ),
            evidence: format!(
                "{} session(s) idle in a transaction, the oldest for {:.0} s (limit {:.0} s): they hold locks and block vacuum. The action \"Tune a database setting\" applies the timeout with rollback.",
                load.idle_in_tx, load.oldest_idle_in_tx_s, limit
            ),
        });
    }
    if load.max_connections > 0 {
        let pct = load.clients as f64 / load.max_connections as f64 * 100.0;
        if pct >= CONNECTIONS_WARN_PCT {
            out.push(engine::database::Advice {
                title: "Put a connection pooler in front (PgBouncer, transaction mode)".into(),
                evidence: format!(
                    "{} of max_connections {} in use ({pct:.0} %). A pool of about 2–4 server connections per CPU core of the database host serves many more clients; raising max_connections needs a restart and costs memory per connection.",
                    load.clients, load.max_connections
                ),
            });
        }
    }
    out
}

/// One `[[postgres]]` entry of the configuration file: a name and the settings (written
/// out rather than flattened, so an unknown key is still an error naming its line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresEntry {
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
    #[serde(default = "default_idle_in_transaction_limit_s")]
    pub idle_in_transaction_limit_s: u32,
}

impl TableEntry for PostgresEntry {
    type Settings = PostgresSettings;

    fn name(&self) -> &str {
        &self.name
    }

    fn settings(&self) -> PostgresSettings {
        PostgresSettings {
            url: self.url.clone(),
            password_file: self.password_file.clone(),
            password_env: self.password_env.clone(),
            probe_query: self.probe_query.clone(),
            group: self.group.clone(),
            statement_timeout_ms: self.statement_timeout_ms,
            idle_in_transaction_limit_s: self.idle_in_transaction_limit_s,
        }
    }
}

impl PostgresSettings {
    /// Checks everything that can be checked without connecting; the refusal names the
    /// field and the rule.
    pub fn validate(&self) -> Result<Config, Refusal> {
        let config = Config::from_str(&self.url).map_err(|err| {
            Refusal::new("url", format!("is not a PostgreSQL connection URL ({err})"))
        })?;
        if config.get_password().is_some() {
            return Err(Refusal::new("url", "must not contain a password (it would end up in snapshots and the audit log); use password_file or password_env"));
        }
        if config.get_user().is_none() {
            return Err(Refusal::new(
                "url",
                "must name a user, e.g. postgresql://perf@host:5432/app",
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
        if !(1..=86_400).contains(&self.idle_in_transaction_limit_s) {
            return Err(Refusal::new(
                "idle_in_transaction_limit_s",
                format!(
                    "must be between 1 and 86400, got {}",
                    self.idle_in_transaction_limit_s
                ),
            ));
        }
        if !(100..=60_000).contains(&self.statement_timeout_ms) {
            return Err(Refusal::new(
                "statement_timeout_ms",
                format!(
                    "must be between 100 and 60000, got {}",
                    self.statement_timeout_ms
                ),
            ));
        }
        Ok(config)
    }

    /// The password, read now from where the settings say it is (off the async runtime),
    /// refused naming its location when it is longer than [`MAX_PASSWORD_BYTES`].
    pub async fn password(&self) -> Result<Option<String>, String> {
        let password = super::secret::read(&self.password_file, &self.password_env).await?;
        if let Some(password) = &password {
            if password.len() > MAX_PASSWORD_BYTES {
                let field = if self.password_file.is_some() {
                    "password_file: the password (its first line)"
                } else {
                    "password_env: the password"
                };
                return Err(format!(
                    "{field} must be at most {MAX_PASSWORD_BYTES} bytes (SCRAM authentication hashes it thousands of times on every connection), got {} bytes",
                    password.len()
                ));
            }
        }
        Ok(password)
    }

    pub fn spec(&self) -> SourceSpec {
        super::spec_of(KIND, self)
    }

    pub fn from_spec(spec: &SourceSpec) -> Result<PostgresSettings, Refusal> {
        super::settings_of(spec)
    }
}

impl ConfiguredKind for PostgresSettings {
    /// A database setting, tuned with `ALTER SYSTEM` on this server.
    fn actuator(
        &self,
        action: &engine::model::ActionConfig,
        _: &crate::Registries,
    ) -> Option<Result<Arc<dyn engine::actuator::Actuator>, Refusal>> {
        let engine::model::ActionConfig::DatabaseSetting(setting) = action else {
            return None;
        };
        Some(
            crate::actuators::postgres_setting::validate(setting).map(|()| {
                Arc::new(crate::actuators::postgres_setting::PostgresSetting::new(
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
        PostgresSettings::spec(self)
    }

    fn validate(&self) -> Result<(), Refusal> {
        PostgresSettings::validate(self).map(drop)
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
                server_version: format!("PostgreSQL {}", report.server_version),
                statements: Some(report.statements),
                tuning_unavailable: None,
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

    /// With PostgreSQL's own rule (its length, for SCRAM).
    fn password(&self) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(PostgresSettings::password(self))
    }

    fn keep_password_in(&mut self, path: PathBuf) {
        self.password_file = Some(path);
        self.password_env = None;
    }
}

/// The resource id of a database: `database:<name>`.
pub fn resource_id(name: &str) -> Result<ResourceId, Refusal> {
    ResourceId::new(&format!("database:{name}"))
        .map_err(|err| Refusal::new("name", err.to_string()))
}

const METRICS: &[MetricDef] = &[
    MetricDef::new("latency", Some(MetricKind::Latency), "ms"),
    MetricDef::new("latency_p50", Some(MetricKind::Latency), "ms"),
    MetricDef::new("latency_p95", Some(MetricKind::Latency), "ms"),
    MetricDef::new("latency_p99", Some(MetricKind::Latency), "ms"),
    MetricDef::new("canary_ms", Some(MetricKind::Latency), "ms"),
    MetricDef::new("tps", Some(MetricKind::Throughput), "/s"),
    MetricDef::new("rollback_pct", Some(MetricKind::Utilization), "%"),
    MetricDef::new("cache_hit_pct", Some(MetricKind::Utilization), "%"),
    MetricDef::new("connections_pct", Some(MetricKind::Utilization), "%"),
    MetricDef::new("deadlocks_per_min", Some(MetricKind::Throughput), "/min"),
    MetricDef::new("temp_bytes_per_s", Some(MetricKind::Throughput), "bytes/s"),
    MetricDef::new("connections", None, "connections"),
    MetricDef::new("idle_in_transaction", None, "sessions"),
    MetricDef::new("oldest_xact_s", None, "s"),
    MetricDef::new("replication_lag_s", None, "s"),
];

/// The resource a database is, with the seed's default target (probe latency p95 ≤ 80 ms)
/// and `defaults` as settings.
pub fn resource(
    name: &str,
    settings: &PostgresSettings,
    defaults: &ResourceSettings,
) -> Result<Resource, Refusal> {
    super::database::resource(resource_id(name)?, name, METRICS, settings.spec(), defaults)
}

/// The source of `resource` (whose spec holds `settings`), polled every `interval`.
pub fn source(
    resource: &Resource,
    settings: PostgresSettings,
    interval: Duration,
) -> Result<Polled<PostgresPoll>, String> {
    let config = settings.validate()?;
    let info = SourceInfo {
        id: resource.id.to_string(),
        kind: KIND.to_owned(),
        resources: vec![resource.clone()],
        owns: Vec::new(),
    };
    let mut schedule = Schedule::every(interval);
    // Connecting and the three statements each have their own timeouts; this only stops a
    // tick that hangs as a whole.
    schedule.timeout =
        CONNECT_TIMEOUT + Duration::from_millis(u64::from(settings.statement_timeout_ms) * 3);
    Ok(Polled::new(
        info,
        schedule,
        PostgresPoll {
            settings,
            config,
            series: MetricDef::series(METRICS, resource),
            client: None,
            probes: VecDeque::with_capacity(PROBE_WINDOW),
            counters: VecDeque::with_capacity(RATE_WINDOW),
            statements: None,
            last_statements: None,
            ticks: 0,
            details: None,
            advice: Vec::new(),
            report: engine::database::TopQueries::default(),
            slowest: Vec::new(),
        },
    ))
}

/// What a check of a database found (for adding one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub server_version: String,
    /// Whether the role can read every session's statistics (`pg_monitor`).
    pub monitor: bool,
    /// `pg_stat_statements` is installed in this database.
    pub statements: bool,
}

/// Connects once and reads what the source needs, so a database is refused with the
/// reason before it is added: unreachable, authentication failed, database missing, role
/// without `pg_monitor` (all but the first are the server's own words). With the password
/// read from where the settings say, whose refusal is text: so is this one
/// (`field: rule`).
pub async fn check(settings: &PostgresSettings) -> Result<CheckReport, String> {
    check_with(settings, settings.password().await?)
        .await
        .map_err(String::from)
}

/// [`check`] with a password given rather than read from where the settings say; the
/// refusal is on `password` (too long for SCRAM) or `url` (everything the server says,
/// the role being the URL's user).
pub async fn check_with(
    settings: &PostgresSettings,
    password: Option<String>,
) -> Result<CheckReport, Refusal> {
    let config = settings.validate()?;
    let client = connect(&config, password.as_deref(), settings.statement_timeout_ms).await?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), \
                    pg_has_role(current_user, 'pg_monitor', 'MEMBER') \
                      OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
                    EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')",
            &[],
        )
        .await
        .map_err(|err| Refusal::new("url", describe(&err, &config)))?;
    let report = CheckReport {
        server_version: row.get(0),
        monitor: row.get::<_, Option<bool>>(1).unwrap_or(false),
        statements: row.get(2),
    };
    if !report.monitor {
        let user = config.get_user().unwrap_or_default();
        return Err(Refusal::new(
            "url",
            format!(
                "role \"{user}\" lacks pg_monitor: it cannot read other sessions' statistics; run GRANT pg_monitor TO \"{user}\""
            ),
        ));
    }
    Ok(report)
}

/// Creates the index `candidate` names on the database of `settings` (a fresh connection,
/// `CREATE INDEX CONCURRENTLY`); returns its name.
pub async fn create_index(
    settings: &PostgresSettings,
    table: &str,
    columns: &[String],
) -> Result<String, String> {
    let client = connect_fresh(settings).await?;
    indexes::create(&client, table, columns).await
}

/// Drops an index perfpilot created (`DROP INDEX CONCURRENTLY`).
pub async fn drop_index(
    settings: &PostgresSettings,
    table: &str,
    name: &str,
) -> Result<(), String> {
    let client = connect_fresh(settings).await?;
    indexes::drop(&client, table, name).await
}

/// A new connection with the source's settings and password (the actuator's: changes are
/// verified on connections that did not exist before them).
pub async fn connect_fresh(settings: &PostgresSettings) -> Result<Client, String> {
    let config = settings.validate()?;
    let password = settings.password().await?;
    connect(&config, password.as_deref(), settings.statement_timeout_ms)
        .await
        .map_err(|refusal| refusal.reason("url"))
}

/// Longest password sent to PostgreSQL, in bytes. SCRAM-SHA-256 derives its key on the
/// client: 4,096 rounds (or the server's `scram_iterations`) of HMAC-SHA-256 keyed by the
/// whole password, and tokio-postgres hashes a long key again every round, so a 4 MB
/// password is 16 GiB of hashing (minutes of CPU) before the server answers.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A connection with `statement_timeout` set, its driver on its own task.
///
/// The attempt (socket, startup, SCRAM authentication, which is CPU work done inside the
/// connect future without yielding) runs on the blocking pool, so it never holds a
/// runtime worker (one held worker stalled every request, `/healthz` too), and the caller
/// is answered within `CONNECT_TIMEOUT` and a second whatever the attempt does. Refused
/// on `password` when it is too long for SCRAM, else on `url`.
async fn connect(
    config: &Config,
    password: Option<&str>,
    statement_timeout_ms: u32,
) -> Result<Client, Refusal> {
    if let Some(password) = password {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Refusal::new(
                "password",
                format!(
                    "must be at most {MAX_PASSWORD_BYTES} bytes (SCRAM authentication hashes it thousands of times on every connection), got {} bytes",
                    password.len()
                ),
            ));
        }
    }
    let mut config = config.clone();
    if let Some(password) = password {
        config.password(password);
    }
    config
        .application_name("perfpilot")
        .connect_timeout(CONNECT_TIMEOUT)
        .options(format!("-c statement_timeout={statement_timeout_ms}"));
    let at_url = |reason: String| Refusal::new("url", reason);
    let no_answer = || {
        at_url(format!(
            "no answer from {} within {} s",
            address(&config),
            CONNECT_TIMEOUT.as_secs()
        ))
    };
    let attempt = {
        let config = config.clone();
        let runtime = tokio::runtime::Handle::current();
        // The socket registers with this runtime's driver; only the polling (and the
        // key derivation in it) happens on the blocking thread.
        tokio::task::spawn_blocking(move || {
            runtime.block_on(tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls)))
        })
    };
    let (client, connection) =
        match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), attempt).await {
            Ok(Ok(Ok(connected))) => connected.map_err(|err| at_url(describe(&err, &config)))?,
            Ok(Ok(Err(_))) | Err(_) => return Err(no_answer()),
            Ok(Err(err)) => {
                return Err(at_url(format!(
                    "connecting to {} failed: {err}",
                    address(&config)
                )))
            }
        };
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Where `config` connects, for messages.
fn address(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) => format!("{host}:{port}"),
        Some(Host::Unix(path)) => format!("{}/.s.PGSQL.{port}", path.display()),
        None => format!("localhost:{port}"),
    }
}

/// A client error in words a person reads, never a password.
pub fn describe(err: &tokio_postgres::Error, config: &Config) -> String {
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    let server = err.as_db_error().map(|e| e.message().to_owned());
    if let Some(code) = err.code() {
        let message = server.unwrap_or_default();
        return match *code {
            SqlState::INVALID_PASSWORD => format!(
                "authentication failed for user \"{user}\" (wrong password, or no such user)"
            ),
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                format!("the server refused the login of \"{user}\": {message}")
            }
            SqlState::INVALID_CATALOG_NAME => format!("database \"{db}\" does not exist"),
            SqlState::INSUFFICIENT_PRIVILEGE => format!("permission denied: {message}"),
            SqlState::TOO_MANY_CONNECTIONS => {
                format!("the server has too many connections: {message}")
            }
            SqlState::CANNOT_CONNECT_NOW | SqlState::ADMIN_SHUTDOWN => {
                format!("the server is starting up or shutting down: {message}")
            }
            SqlState::QUERY_CANCELED => {
                format!("a query took longer than statement_timeout: {message}")
            }
            _ => format!("{message} (SQLSTATE {})", code.code()),
        };
    }
    let io = std::error::Error::source(err).and_then(|s| s.downcast_ref::<std::io::Error>());
    match io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => format!(
            "connection refused at {} (is PostgreSQL running and listening there?)",
            address(config)
        ),
        Some(std::io::ErrorKind::TimedOut) => format!(
            "no answer from {} within {} s",
            address(config),
            CONNECT_TIMEOUT.as_secs()
        ),
        Some(std::io::ErrorKind::NotFound) => {
            format!("no PostgreSQL socket at {}", address(config))
        }
        _ if err.is_closed() => "the connection to the server was lost".to_owned(),
        _ => match io {
            Some(io) => format!("{} ({io})", address(config)),
            None => format!("{err}"),
        },
    }
}

/// Cumulative counters at one instant.
#[derive(Debug, Clone, Copy)]
struct Counters {
    at: Instant,
    xacts: i64,
    rollbacks: i64,
    blks_hit: i64,
    blks_read: i64,
    deadlocks: i64,
    temp_bytes: i64,
}

/// The source's state between ticks (the runtime never runs two collects at once).
pub struct PostgresPoll {
    settings: PostgresSettings,
    /// `settings.url` parsed once (the settings were validated when the source was made).
    config: Config,
    series: Arc<[SeriesInfo]>,
    client: Option<Client>,
    /// The latest probe latencies, ms.
    probes: VecDeque<f64>,
    counters: VecDeque<Counters>,
    /// Whether `pg_stat_statements` is installed (asked once per connection).
    statements: Option<bool>,
    /// The last reading of `pg_stat_statements`, and when it was taken.
    last_statements: Option<(Instant, Statements)>,
    ticks: u32,
    details: Option<serde_json::Value>,
    /// Recommendations from the latest tick's numbers.
    advice: Vec<engine::database::Advice>,
    /// The latest report (queries, advice, indexes), re-sent whenever a part changes.
    report: engine::database::TopQueries,
    /// The slowest concrete queries of the latest reading, slowest first.
    slowest: Vec<String>,
}

/// Per query id: calls, total ms, text.
type Statements = std::collections::HashMap<i64, (i64, f64, String)>;

const STATS: &str = "SELECT d.numbackends::int8, (d.xact_commit + d.xact_rollback)::int8, d.xact_rollback::int8, \
       d.blks_hit::int8, d.blks_read::int8, d.deadlocks::int8, d.temp_bytes::int8, \
       current_setting('max_connections')::int8, \
       a.clients, a.idle_in_tx, a.oldest_xact_s, a.oldest_idle_in_tx_s, \
       CASE WHEN pg_is_in_recovery() \
            THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 \
            ELSE (SELECT max(extract(epoch FROM replay_lag))::float8 FROM pg_stat_replication) END \
FROM pg_stat_database d, \
     (SELECT count(*) FILTER (WHERE backend_type = 'client backend')::int8 AS clients, \
             count(*) FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)'))::int8 AS idle_in_tx, \
             coalesce(extract(epoch FROM max(now() - xact_start) \
                 FILTER (WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())), 0)::float8 AS oldest_xact_s, \
             coalesce(extract(epoch FROM max(now() - state_change) \
                 FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)'))), 0)::float8 AS oldest_idle_in_tx_s \
      FROM pg_stat_activity) a \
WHERE d.datname = current_database()";

impl PostgresPoll {
    async fn client(&mut self) -> Result<&Client, SourceError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let password = self.settings.password().await.map_err(SourceError::new)?;
            let client = connect(
                &self.config,
                password.as_deref(),
                self.settings.statement_timeout_ms,
            )
            .await
            .map_err(|refusal| SourceError::new(refusal.reason("url")))?;
            self.client = Some(client);
        }
        Ok(self.client.as_ref().expect("connected above"))
    }

    async fn tick(&mut self, at: UnixMillis) -> Result<Tick, SourceError> {
        let config = self.config.clone();
        let probe_query = self.settings.probe_query.clone();
        let client = self.client().await?;
        let failed = |err: tokio_postgres::Error| SourceError::new(describe(&err, &config));
        let started = Instant::now();
        client.simple_query("SELECT 1").await.map_err(failed)?;
        let canary = started.elapsed().as_secs_f64() * 1000.0;
        let probe = match &probe_query {
            Some(query) => {
                let started = Instant::now();
                client.simple_query(query).await.map_err(|err| {
                    SourceError::new(format!("probe_query: {}", describe(&err, &config)))
                })?;
                started.elapsed().as_secs_f64() * 1000.0
            }
            None => canary,
        };
        let row = client.query_one(STATS, &[]).await.map_err(failed)?;
        let now = Instant::now();
        let counters = Counters {
            at: now,
            xacts: row.get(1),
            rollbacks: row.get(2),
            blks_hit: row.get(3),
            blks_read: row.get(4),
            deadlocks: row.get(5),
            temp_bytes: row.get(6),
        };
        let max_connections: i64 = row.get(7);
        let clients: i64 = row.get(8);
        let idle_in_tx: i64 = row.get(9);
        let oldest_xact_s: f64 = row.get(10);
        let oldest_idle_in_tx_s: f64 = row.get(11);
        let replication_lag_s: Option<f64> = row.get(12);
        self.advice = advice(
            &self.settings,
            Load {
                clients,
                max_connections,
                idle_in_tx,
                oldest_idle_in_tx_s,
            },
        );

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
            rates.map(|r| r.tps),
            rates.and_then(|r| r.rollback_pct),
            rates.and_then(|r| r.cache_hit_pct),
            (max_connections > 0).then(|| clients as f64 / max_connections as f64 * 100.0),
            rates.map(|r| r.deadlocks_per_min),
            rates.map(|r| r.temp_bytes_per_s),
            Some(clients as f64),
            Some(idle_in_tx as f64),
            Some(oldest_xact_s),
            replication_lag_s,
        ];
        debug_assert_eq!(values.len(), METRICS.len());
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % STATEMENTS_EVERY == 1 {
            self.read_statements(at).await?;
        }
        if self.ticks % INDEXES_EVERY == 2 {
            let mut queries: Vec<String> = self.settings.probe_query.iter().cloned().collect();
            queries.extend(self.slowest.iter().cloned());
            if let Some(client) = &self.client {
                self.report.indexes = Some(indexes::advise(client, &queries).await);
                self.report.at_unix_ms = at;
                self.details = serde_json::to_value(&self.report).ok();
            }
        }
        Ok(Tick {
            at,
            series: self.series.clone(),
            values: values.into_iter().map(|v| v.map(|v| v as f32)).collect(),
            top_processes: None,
        })
    }
}

impl PostgresPoll {
    /// Reads `pg_stat_statements` and reports the queries that took the most time since
    /// the last reading.
    async fn read_statements(&mut self, at: UnixMillis) -> Result<(), SourceError> {
        let config = self.config.clone();
        let failed = |err: tokio_postgres::Error| SourceError::new(describe(&err, &config));
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| SourceError::new("not connected"))?;
        if self.statements.is_none() {
            let row = client
                .query_one("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')", &[])
                .await
                .map_err(failed)?;
            self.statements = Some(row.get(0));
        }
        if self.statements != Some(true) {
            let db = config
                .get_dbname()
                .or(config.get_user())
                .unwrap_or_default();
            let report = engine::database::TopQueries {
                at_unix_ms: at,
                advice: self.advice.clone(),
                indexes: self.report.indexes.clone(),
                unavailable: Some(format!(
                    "unavailable: pg_stat_statements is not installed in database \"{db}\" (add it to shared_preload_libraries and run CREATE EXTENSION pg_stat_statements there)"
                )),
                ..Default::default()
            };
            self.details = serde_json::to_value(&report).ok();
            self.report = report;
            return Ok(());
        }
        let rows = client.query(STATEMENTS, &[]).await.map_err(failed)?;
        let now = Instant::now();
        let reading: Statements = rows
            .iter()
            .filter_map(|row| {
                let id: Option<i64> = row.get(0);
                Some((id?, (row.get(2), row.get(3), row.get(1))))
            })
            .collect();
        let mut report = engine::database::TopQueries {
            at_unix_ms: at,
            advice: self.advice.clone(),
            indexes: self.report.indexes.clone(),
            ..Default::default()
        };
        if let Some((then, before)) = &self.last_statements {
            let secs = now.duration_since(*then).as_secs_f64().max(0.001);
            let mut deltas: Vec<(String, f64, f64)> = reading
                .iter()
                .filter_map(|(id, (calls, total, text))| {
                    let (calls0, total0) = before.get(id).map_or((0, 0.0), |(c, t, _)| (*c, *t));
                    let calls = (calls - calls0) as f64;
                    let total = total - total0;
                    (calls > 0.0 && total >= 0.0).then(|| (text.clone(), calls, total))
                })
                .collect();
            let all: f64 = deltas.iter().map(|d| d.2).sum();
            deltas.sort_by(|a, b| b.2.total_cmp(&a.2));
            report.window_s = secs;
            report.top = deltas
                .into_iter()
                .take(TOP_QUERIES)
                .map(|(query, calls, total)| engine::database::QueryStat {
                    query,
                    calls_per_s: calls / secs,
                    mean_ms: total / calls,
                    total_ms: total,
                    share_pct: if all > 0.0 { total / all * 100.0 } else { 0.0 },
                })
                .collect();
        }
        let mut by_mean: Vec<(f64, &String)> = reading
            .values()
            .filter(|(calls, _, _)| *calls > 0)
            .map(|(calls, total, text)| (total / *calls as f64, text))
            .collect();
        by_mean.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.slowest = by_mean
            .into_iter()
            .take(10)
            .map(|(_, text)| text.clone())
            .collect();
        self.last_statements = Some((now, reading));
        self.details = serde_json::to_value(&report).ok();
        self.report = report;
        Ok(())
    }
}

/// Rates between two counter snapshots; `None` when the counters went backwards (a
/// statistics reset, or a failover to another server).
#[derive(Debug, Clone, Copy)]
struct Rates {
    tps: f64,
    rollback_pct: Option<f64>,
    cache_hit_pct: Option<f64>,
    deadlocks_per_min: f64,
    temp_bytes_per_s: f64,
}

impl Rates {
    fn between(then: &Counters, now: &Counters) -> Option<Rates> {
        let secs = now.at.duration_since(then.at).as_secs_f64();
        let delta = |a: i64, b: i64| (b >= a).then(|| (b - a) as f64);
        let xacts = delta(then.xacts, now.xacts)?;
        let rollbacks = delta(then.rollbacks, now.rollbacks)?;
        let hits = delta(then.blks_hit, now.blks_hit)?;
        let reads = delta(then.blks_read, now.blks_read)?;
        let deadlocks = delta(then.deadlocks, now.deadlocks)?;
        let temp = delta(then.temp_bytes, now.temp_bytes)?;
        if secs <= 0.0 {
            return None;
        }
        Some(Rates {
            tps: xacts / secs,
            rollback_pct: (xacts > 0.0).then(|| rollbacks / xacts * 100.0),
            cache_hit_pct: (hits + reads > 0.0).then(|| hits / (hits + reads) * 100.0),
            deadlocks_per_min: deadlocks / secs * 60.0,
            temp_bytes_per_s: temp / secs,
        })
    }
}

impl Poll for PostgresPoll {
    fn details(&mut self) -> Option<serde_json::Value> {
        self.details.take()
    }

    fn collect(&mut self, at: UnixMillis) -> BoxFuture<'_, Result<Tick, SourceError>> {
        Box::pin(async move {
            let result = self.tick(at).await;
            if result.is_err() {
                // A failed statement may leave the session unusable; the next tick starts
                // clean (and a lost server is reconnected with backoff).
                self.client = None;
                self.counters.clear();
                self.statements = None;
                self.last_statements = None;
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> PostgresSettings {
        PostgresSettings {
            url: url.into(),
            password_file: None,
            password_env: None,
            probe_query: None,
            group: None,
            statement_timeout_ms: 2000,
            idle_in_transaction_limit_s: 60,
        }
    }

    #[tokio::test]
    async fn a_password_too_long_for_scram_is_refused_before_connecting() {
        let dir = std::env::temp_dir().join(format!("perfpilot-pg-long-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pg.password");
        std::fs::write(&file, format!("{}\n", "y".repeat(MAX_PASSWORD_BYTES + 1))).unwrap();
        // A closed port: the refusal comes before any connection is tried.
        let mut s = settings("postgresql://perf@127.0.0.1:1/app");
        s.password_file = Some(file.clone());
        let err = s.password().await.unwrap_err();
        assert!(
            err.starts_with(
                "password_file: the password (its first line) must be at most 1024 bytes"
            ),
            "{err}"
        );
        let err = check(&s).await.unwrap_err();
        assert!(err.starts_with("password_file: "), "{err}");
        let long = "z".repeat(MAX_PASSWORD_BYTES + 1);
        let err = check_with(&settings("postgresql://perf@127.0.0.1:1/app"), Some(long))
            .await
            .unwrap_err();
        assert_eq!(err.field, "password");
        assert!(
            err.to_string()
                .starts_with("password: must be at most 1024 bytes"),
            "{err}"
        );
        std::fs::write(&file, format!("{}\n", "y".repeat(MAX_PASSWORD_BYTES))).unwrap();
        assert_eq!(
            s.password().await.unwrap().unwrap().len(),
            MAX_PASSWORD_BYTES
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn advice_names_the_numbers_behind_it() {
        let s = settings("postgresql://perf@127.0.0.1/app");
        let calm = Load {
            clients: 10,
            max_connections: 100,
            idle_in_tx: 1,
            oldest_idle_in_tx_s: 5.0,
        };
        assert!(advice(&s, calm).is_empty());
        let busy = Load {
            clients: 85,
            max_connections: 100,
            idle_in_tx: 2,
            oldest_idle_in_tx_s: 125.0,
        };
        let advice = advice(&s, busy);
        assert_eq!(advice.len(), 2);
        assert!(advice[0]
            .title
            .contains("idle_in_transaction_session_timeout"));
        assert!(
            advice[0]
                .evidence
                .contains("2 session(s) idle in a transaction, the oldest for 125 s"),
            "{}",
            advice[0].evidence
        );
        assert!(
            advice[1]
                .evidence
                .starts_with("85 of max_connections 100 in use (85 %)"),
            "{}",
            advice[1].evidence
        );
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_never_echoed() {
        let err = settings("postgresql://perf:hunter2@127.0.0.1/app")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("url: must not contain a password"), "{err}");
        assert!(!err.contains("hunter2"));
        assert!(settings("postgresql://perf@127.0.0.1:5432/app")
            .validate()
            .is_ok());
        let both = PostgresSettings {
            password_file: Some("/x".into()),
            password_env: Some("PG_PASS".into()),
            ..settings("postgresql://perf@127.0.0.1/app")
        };
        assert_eq!(both.validate().unwrap_err().field, "password_file");
    }

    #[test]
    fn the_spec_round_trips_and_unknown_fields_are_refused() {
        let s = PostgresSettings {
            probe_query: Some("SELECT count(*) FROM orders".into()),
            ..settings("postgresql://perf@127.0.0.1/app")
        };
        assert_eq!(PostgresSettings::from_spec(&s.spec()).unwrap(), s);
        let mut spec = s.spec();
        spec.settings["password"] = "x".into();
        let err = PostgresSettings::from_spec(&spec).unwrap_err();
        assert_eq!(err.field, "source.settings");
        assert!(err.rule.contains("unknown field `password`"), "{err}");
    }

    #[test]
    fn rates_are_per_second_over_the_window_and_survive_a_reset() {
        let t0 = Instant::now();
        let then = Counters {
            at: t0,
            xacts: 100,
            rollbacks: 10,
            blks_hit: 900,
            blks_read: 100,
            deadlocks: 0,
            temp_bytes: 0,
        };
        let now = Counters {
            at: t0 + Duration::from_secs(5),
            xacts: 600,
            rollbacks: 60,
            blks_hit: 1800,
            blks_read: 200,
            deadlocks: 1,
            temp_bytes: 5000,
        };
        let r = Rates::between(&then, &now).unwrap();
        assert_eq!(r.tps, 100.0);
        assert_eq!(r.rollback_pct, Some(10.0));
        assert_eq!(r.cache_hit_pct, Some(90.0));
        assert_eq!(r.deadlocks_per_min, 12.0);
        assert_eq!(r.temp_bytes_per_s, 1000.0);
        let reset = Counters { xacts: 3, ..now };
        assert!(
            Rates::between(&then, &reset).is_none(),
            "a reset is no negative rate"
        );
    }

    #[test]
    fn a_database_is_a_resource_with_the_seed_target() {
        let r = resource(
            "orders",
            &settings("postgresql://perf@127.0.0.1/app"),
            &ResourceSettings::default(),
        )
        .unwrap();
        assert_eq!(r.id.as_str(), "database:orders");
        let target = r.target.as_ref().unwrap();
        assert_eq!((target.metric.as_str(), target.value), ("latency", 80.0));
        assert!(r.metric("tps").is_some() && r.metric("connections").is_none());
        assert_eq!(MetricDef::series(METRICS, &r).len(), METRICS.len());
    }
}

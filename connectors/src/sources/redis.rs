//! Redis as a source: one cache watched at 1 Hz over one connection.
//!
//! Each tick: a `PING` timed on the client (what an application waits, percentiles over
//! the last minute) and one `INFO` of the sections needed (server, clients, memory, stats,
//! keyspace, commandstats, latencystats); counters become rates between ticks (Redis
//! updates them per command, so one-second deltas do not alias). Cheaper for the server
//! than `redis_exporter`, which asks `INFO ALL` plus more per scrape.
//!
//! `CONFIG GET` is asked once per connection: managed Redis often renames `CONFIG` away,
//! and then tuning says "unavailable: why" instead of failing at the worst moment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::cache::{CacheMemory, CacheReport, CommandStat};
use engine::model::{Resource, ResourceSettings, SourceSpec};
use engine::series::{SeriesInfo, Tick, UnixMillis};
use engine::source::runtime::Polled;
use engine::source::{BoxFuture, Poll, Schedule, SourceError, SourceInfo, SourceMark};
use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use serde::{Deserialize, Serialize};

use super::cache::{Reading, Tracker};
use super::kind::{self, ConfiguredKind, Keys, KindEntry, TableEntry};
use super::Checked;
use crate::Refusal;

pub use super::cache::Matching;

/// The kind name in a resource's [`SourceSpec`].
pub const KIND: &str = "redis";
/// The kind in [`super::KINDS`]: specs of [`KIND`], the `[[redis]]` table.
pub const ENTRY: KindEntry = KindEntry {
    kind: KIND,
    title: "Redis",
    family: engine::source::SourceFamily::Cache,
    settle: engine::verdict::Settle {
        secs: 10,
        why: "a cleared or resized cache refills before its hit ratio settles",
    },
    toml_table: "redis",
    from_spec: kind::decode::<RedisSettings>,
    from_toml: kind::table::<RedisEntry>,
};
/// Longest a connection attempt (socket, `HELLO`/`AUTH`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one command may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Commands in the report.
const TOP_COMMANDS: usize = 10;
/// Invalidation stops after this many keys or this long, whichever comes first.
pub const INVALIDATE_MAX_KEYS: u64 = 100_000;
const INVALIDATE_MAX_TIME: Duration = Duration::from_secs(5);
/// A preview stops counting after scanning this many keys.
const PREVIEW_MAX_SCANNED: u64 = 1_000_000;

/// A Redis cache's source settings: the `[[redis]]` table of the configuration file less
/// its `name`, and what a resource's source spec holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db`, `rediss://host:port/db` (TLS) or `unix:///path/redis.sock`;
    /// without a password.
    pub url: String,
    /// For `rediss://`: a PEM file of the CA that signed the server's certificate (a
    /// private CA); without it the system's trusted roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// An ACL user (Redis 6+); without it the password is the `default` user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Caches with the same group are levels in front of one backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Its level in the group: 1 is nearest the application.
    #[serde(default = "default_level")]
    pub level: u8,
    /// The most `maxmemory` perfpilot may set, % of the cache host's memory.
    #[serde(default = "default_max_memory_share_pct")]
    pub max_memory_share_pct: u8,
    /// Run `CONFIG REWRITE` after a tuning change is kept, so a restart keeps it too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rewrite_config: bool,
    /// POSTed (the action webhook's body) when the cache comes back cold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_url: Option<String>,
    /// Run (allow-listed, no shell) when the cache comes back cold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_command: Option<Vec<String>>,
    /// POSTed `{"resource", "pattern", "keys", "by"}` when keys are invalidated, for
    /// applications that own their invalidation (memcached's only way: it cannot list
    /// keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalidate_url: Option<String>,
}

pub(crate) fn default_level() -> u8 {
    2
}

pub(crate) fn default_max_memory_share_pct() -> u8 {
    50
}

/// One `[[redis]]` entry of the configuration file (fields written out rather than
/// flattened, so an unknown key is still an error naming its line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisEntry {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default = "default_level")]
    pub level: u8,
    #[serde(default = "default_max_memory_share_pct")]
    pub max_memory_share_pct: u8,
    #[serde(default)]
    pub rewrite_config: bool,
    #[serde(default)]
    pub warm_url: Option<String>,
    #[serde(default)]
    pub warm_command: Option<Vec<String>>,
    #[serde(default)]
    pub invalidate_url: Option<String>,
}

impl TableEntry for RedisEntry {
    type Settings = RedisSettings;

    fn name(&self) -> &str {
        &self.name
    }

    fn settings(&self) -> RedisSettings {
        RedisSettings {
            url: self.url.clone(),
            tls_ca_file: self.tls_ca_file.clone(),
            username: self.username.clone(),
            password_file: self.password_file.clone(),
            password_env: self.password_env.clone(),
            group: self.group.clone(),
            level: self.level,
            max_memory_share_pct: self.max_memory_share_pct,
            rewrite_config: self.rewrite_config,
            warm_url: self.warm_url.clone(),
            warm_command: self.warm_command.clone(),
            invalidate_url: self.invalidate_url.clone(),
        }
    }
}

impl RedisSettings {
    /// Checks everything that can be checked without connecting; the refusal names the
    /// field and the rule.
    pub fn validate(&self) -> Result<ConnectionInfo, Refusal> {
        let info = self.url.as_str().into_connection_info().map_err(|err| {
            Refusal::new(
                "url",
                format!("is not a Redis URL like redis://host:6379/0 ({err})"),
            )
        })?;
        match info.addr() {
            ConnectionAddr::TcpTls { insecure: true, .. } => {
                return Err(Refusal::new("url", "#insecure turns certificate checks off; perfpilot does not (give the CA with tls_ca_file)"));
            }
            ConnectionAddr::TcpTls { .. } => {}
            _ if self.tls_ca_file.is_some() => {
                return Err(Refusal::new(
                    "tls_ca_file",
                    "is only used with a rediss:// URL",
                ));
            }
            _ => {}
        }
        if info.redis_settings().password().is_some() {
            return Err(Refusal::new("url", "must not contain a password (it would end up in snapshots and the audit log); use password_file or password_env"));
        }
        if info.redis_settings().username().is_some() {
            return Err(Refusal::new(
                "url",
                "give the user as `username`, not in the URL",
            ));
        }
        if let Some(user) = &self.username {
            if user.is_empty() || user.len() > 128 || user.chars().any(char::is_whitespace) {
                return Err(Refusal::new(
                    "username",
                    format!("must be 1–128 characters without spaces, got {user:?}"),
                ));
            }
        }
        super::secret::validate(&self.password_file, &self.password_env)?;
        super::secret::validate_group(&self.group)?;
        validate_level(self.level)?;
        super::cache::validate_warm(&self.warm_url, &self.warm_command)?;
        super::cache::validate_hook(&self.invalidate_url)?;
        if !(1..=90).contains(&self.max_memory_share_pct) {
            return Err(Refusal::new(
                "max_memory_share_pct",
                format!(
                    "must be between 1 and 90, got {}",
                    self.max_memory_share_pct
                ),
            ));
        }
        Ok(info)
    }

    /// The password, read now from where the settings say it is (off the async runtime).
    pub async fn password(&self) -> Result<Option<String>, String> {
        super::secret::read(&self.password_file, &self.password_env).await
    }

    pub fn spec(&self) -> SourceSpec {
        super::spec_of(KIND, self)
    }

    pub fn from_spec(spec: &SourceSpec) -> Result<RedisSettings, Refusal> {
        super::settings_of(spec)
    }
}

impl ConfiguredKind for RedisSettings {
    /// A cache setting, tuned with `CONFIG SET` on this server.
    fn actuator(
        &self,
        action: &engine::model::ActionConfig,
        _: &crate::Registries,
    ) -> Option<Result<Arc<dyn engine::actuator::Actuator>, Refusal>> {
        let engine::model::ActionConfig::CacheSetting(setting) = action else {
            return None;
        };
        let cache = crate::actuators::cache_setting::Cache::Redis(self.clone());
        Some(
            crate::actuators::cache_setting::validate(setting, &cache).map(|()| {
                Arc::new(crate::actuators::cache_setting::CacheSetting::new(
                    setting.clone(),
                    Ok(cache),
                )) as Arc<dyn engine::actuator::Actuator>
            }),
        )
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    fn noun(&self) -> &'static str {
        "cache"
    }

    fn spec(&self) -> SourceSpec {
        RedisSettings::spec(self)
    }

    fn validate(&self) -> Result<(), Refusal> {
        RedisSettings::validate(self).map(drop)
    }

    fn resource_id(&self, name: &str) -> Result<engine::model::ResourceId, Refusal> {
        super::cache::resource_id(name)
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
                statements: None,
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

    fn warm_action(&self) -> Option<engine::model::ActionConfig> {
        super::cache::warm_action(&self.warm_url, &self.warm_command)
    }

    fn keys(&self) -> Keys {
        Keys::Listed
    }

    fn invalidate_url(&self) -> Option<&str> {
        self.invalidate_url.as_deref()
    }

    fn scan_keys<'a>(
        &'a self,
        pattern: &'a str,
        unlink: bool,
    ) -> BoxFuture<'a, Result<Matching, String>> {
        Box::pin(scan(self, pattern, unlink))
    }
}

pub(crate) fn validate_level(level: u8) -> Result<(), Refusal> {
    if !(1..=9).contains(&level) {
        return Err(Refusal::new(
            "level",
            format!("must be between 1 and 9, got {level}"),
        ));
    }
    Ok(())
}

/// The resource a Redis cache is.
pub fn resource(
    name: &str,
    settings: &RedisSettings,
    defaults: &ResourceSettings,
) -> Result<Resource, Refusal> {
    super::cache::resource(name, settings.spec(), defaults)
}

/// What a check of a cache found (for adding one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub server_version: String,
    /// Why tuning will be unavailable, if it will.
    pub tuning_unavailable: Option<String>,
}

/// Connects once and reads what the source needs, so a cache is refused with the reason
/// before it is added: unreachable, authentication failed, not Redis (on `url`), a CA
/// file that cannot be read (on `tls_ca_file`).
pub async fn check_with(
    settings: &RedisSettings,
    password: Option<String>,
) -> Result<CheckReport, Refusal> {
    let info = settings.validate()?;
    let mut connection = connect(&info, settings, password.as_deref()).await?;
    let text = info_text(&mut connection, &info)
        .await
        .map_err(|reason| Refusal::new("url", reason))?;
    let fields = parse_info(&text);
    let server_version = format!(
        "Redis {}",
        fields.get("redis_version").copied().unwrap_or("(unknown)")
    );
    Ok(CheckReport {
        server_version,
        tuning_unavailable: config_unavailable(&mut connection).await,
    })
}

/// A new connection with the source's settings and password (the actuator's and the
/// invalidation's: they never share the source's connection).
pub async fn connect_fresh(settings: &RedisSettings) -> Result<MultiplexedConnection, String> {
    let info = settings.validate()?;
    let password = settings.password().await?;
    connect(&info, settings, password.as_deref())
        .await
        .map_err(|refusal| refusal.reason("url"))
}

/// A connection with `password`, refused on `tls_ca_file` when the CA cannot be read and
/// on `url` for everything the connection itself meets.
async fn connect(
    info: &ConnectionInfo,
    settings: &RedisSettings,
    password: Option<&str>,
) -> Result<MultiplexedConnection, Refusal> {
    let at_url = |reason: String| Refusal::new("url", reason);
    let mut redis = info.redis_settings().clone();
    if let Some(user) = &settings.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = password {
        redis = redis.set_password(password);
    }
    let info = info.clone().set_redis_settings(redis);
    let client = match info.addr() {
        ConnectionAddr::TcpTls { .. } => {
            install_crypto_provider();
            let root_cert = match &settings.tls_ca_file {
                // Off the runtime, a regular file of at most 64 KiB (never a FIFO).
                Some(path) => {
                    Some(crate::files::read("tls_ca_file", path, crate::files::CA_CAP).await?)
                }
                None => None,
            };
            redis::Client::build_with_tls(
                info.clone(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert,
                },
            )
        }
        _ => redis::Client::open(info.clone()),
    }
    .map_err(|err| at_url(describe(&err, &info)))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|err| at_url(describe(&err, &info)))
}

/// rustls needs one process-wide crypto provider; ring is the one compiled in.
fn install_crypto_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Another part of the process may have installed one first: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Where `info` connects, for messages.
fn address(info: &ConnectionInfo) -> String {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => "the server".to_owned(),
    }
}

/// A client error in words a person reads, never a password.
pub fn describe(err: &redis::RedisError, info: &ConnectionInfo) -> String {
    let at = address(info);
    if err.is_connection_refusal() {
        return format!("connection refused at {at} (is Redis running and listening there?)");
    }
    if err.is_timeout() {
        return format!("no answer from {at} within {} s", CONNECT_TIMEOUT.as_secs());
    }
    let detail = err.detail().unwrap_or_default();
    let text = err.to_string();
    if let Some(why) = tls_problem(&text) {
        return format!("TLS to {at}: {why}");
    }
    match err.kind() {
        redis::ErrorKind::AuthenticationFailed => {
            format!("authentication failed at {at} (wrong password or user): {err}")
        }
        _ if err.code() == Some("NOAUTH") => {
            format!("authentication required at {at}: set password_file or password_env")
        }
        _ if err.code() == Some("WRONGPASS") => {
            format!("authentication failed at {at}: wrong password or no such user")
        }
        _ if err.code() == Some("NOPERM") => format!("permission denied at {at}: {detail}"),
        _ if err.is_connection_dropped() => format!("the connection to {at} was lost"),
        _ => format!("{at}: {err}"),
    }
}

/// A TLS failure in words, from rustls' error text.
fn tls_problem(text: &str) -> Option<&'static str> {
    if text.contains("UnknownIssuer") {
        Some(
            "the server's certificate is not signed by a trusted CA (give its CA with tls_ca_file)",
        )
    } else if text.contains("Expired") {
        Some("the server's certificate has expired")
    } else if text.contains("NotValidForName") {
        Some("the server's certificate is not valid for this host name")
    } else if text.contains("InvalidCertificate") || text.contains("invalid peer certificate") {
        Some("the server's certificate was refused")
    } else if text.contains("CorruptMessage") || text.contains("InvalidContentType") {
        Some("the server did not answer in TLS (is this a TLS port?)")
    } else {
        None
    }
}

/// `INFO` of the sections the source reads; Redis before 7 takes only one section.
async fn info_text(
    connection: &mut MultiplexedConnection,
    info: &ConnectionInfo,
) -> Result<String, String> {
    let sections = redis::cmd("INFO")
        .arg(&[
            "server",
            "clients",
            "memory",
            "stats",
            "keyspace",
            "commandstats",
            "latencystats",
        ])
        .query_async::<String>(connection)
        .await;
    match sections {
        Ok(text) => Ok(text),
        Err(err) if err.code() == Some("ERR") => redis::cmd("INFO")
            .arg("all")
            .query_async::<String>(connection)
            .await
            .map_err(|err| describe(&err, info)),
        Err(err) => Err(describe(&err, info)),
    }
}

/// Why `CONFIG` cannot be used on this connection, if it cannot.
async fn config_unavailable(connection: &mut MultiplexedConnection) -> Option<String> {
    match redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query_async::<Vec<String>>(connection)
        .await
    {
        Ok(_) => None,
        Err(err) if err.code() == Some("NOPERM") => Some(
            "unavailable: this user may not run CONFIG (grant +config|get +config|set in its ACL)"
                .into(),
        ),
        Err(err) => Some(format!(
            "unavailable: CONFIG is disabled or renamed on this server (managed Redis often does this): {}",
            err.detail().unwrap_or("unknown command")
        )),
    }
}

/// `field:value` lines of an `INFO` answer.
fn parse_info(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.trim_end().split_once(':'))
        .collect()
}

/// `a=1,b=2` inside an `INFO` value.
fn parse_pairs(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value.split(',').filter_map(|pair| pair.split_once('='))
}

fn number<T: std::str::FromStr>(fields: &HashMap<&str, &str>, key: &str) -> Option<T> {
    fields.get(key)?.parse().ok()
}

/// Per command: calls, total µs, and the latency percentiles (µs) since reset.
type CommandCounters = HashMap<String, (u64, u64, Option<f64>, Option<f64>)>;

fn commands(fields: &HashMap<&str, &str>) -> CommandCounters {
    let mut out: CommandCounters = HashMap::new();
    for (key, value) in fields {
        if let Some(name) = key.strip_prefix("cmdstat_") {
            let pairs: HashMap<&str, &str> = parse_pairs(value).collect();
            let calls = pairs.get("calls").and_then(|v| v.parse().ok()).unwrap_or(0);
            let usec = pairs.get("usec").and_then(|v| v.parse().ok()).unwrap_or(0);
            let entry = out.entry(name.to_owned()).or_default();
            entry.0 = calls;
            entry.1 = usec;
        }
    }
    for (key, value) in fields {
        if let Some(name) = key.strip_prefix("latency_percentiles_usec_") {
            let pairs: HashMap<&str, &str> = parse_pairs(value).collect();
            if let Some(entry) = out.get_mut(name) {
                entry.2 = pairs.get("p50").and_then(|v| v.parse().ok());
                entry.3 = pairs.get("p99").and_then(|v| v.parse().ok());
            }
        }
    }
    out
}

/// The source of `resource` (whose spec holds `settings`), polled every `interval`.
pub fn source(
    resource: &Resource,
    settings: RedisSettings,
    interval: Duration,
) -> Result<Polled<RedisPoll>, String> {
    let info = settings.validate()?;
    let source_info = SourceInfo {
        id: resource.id.to_string(),
        kind: KIND.to_owned(),
        resources: vec![resource.clone()],
        owns: Vec::new(),
    };
    let mut schedule = Schedule::every(interval);
    schedule.timeout = CONNECT_TIMEOUT + RESPONSE_TIMEOUT * 3;
    Ok(Polled::new(
        source_info,
        schedule,
        RedisPoll {
            settings,
            info,
            series: super::cache::series(resource),
            connection: None,
            tracker: Tracker::new(resource.id.as_str()),
            last_commands: None,
            details: None,
        },
    ))
}

/// The source's state between ticks (the runtime never runs two collects at once).
pub struct RedisPoll {
    settings: RedisSettings,
    info: ConnectionInfo,
    series: Arc<[SeriesInfo]>,
    /// The connection and what `CONFIG` allows on it.
    connection: Option<(MultiplexedConnection, Option<String>)>,
    tracker: Tracker,
    last_commands: Option<(Instant, CommandCounters)>,
    details: Option<serde_json::Value>,
}

impl RedisPoll {
    async fn tick(&mut self, at: UnixMillis) -> Result<Tick, SourceError> {
        if self.connection.is_none() {
            let password = self.settings.password().await.map_err(SourceError::new)?;
            let mut connection = connect(&self.info, &self.settings, password.as_deref())
                .await
                .map_err(|refusal| SourceError::new(refusal.reason("url")))?;
            let config = config_unavailable(&mut connection).await;
            self.connection = Some((connection, config));
        }
        let (connection, tuning_unavailable) = self.connection.as_mut().expect("connected above");
        let started = Instant::now();
        let ping = redis::cmd("PING")
            .query_async::<String>(connection)
            .await
            .map_err(|err| describe(&err, &self.info));
        let probe_ms = started.elapsed().as_secs_f64() * 1000.0;
        let text = match ping {
            Ok(_) => info_text(connection, &self.info).await,
            Err(err) => Err(err),
        };
        let text = match text {
            Ok(text) => text,
            Err(reason) => {
                // Reconnect on the next tick: a multiplexed connection does not heal.
                self.connection = None;
                return Err(SourceError::new(reason));
            }
        };
        let tuning_unavailable = tuning_unavailable.clone();
        let now = Instant::now();
        let fields = parse_info(&text);
        let keys: u64 = fields
            .iter()
            .filter(|(key, _)| {
                key.starts_with("db") && key[2..].bytes().all(|b| b.is_ascii_digit())
            })
            .filter_map(|(_, value)| {
                parse_pairs(value)
                    .find(|(k, _)| *k == "keys")?
                    .1
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        let counters = commands(&fields);
        let (window, command_ms) = match &self.last_commands {
            Some((then, before)) => {
                let secs = now.duration_since(*then).as_secs_f64().max(0.001);
                let mut calls = 0u64;
                let mut usec = 0u64;
                let mut stats: Vec<CommandStat> = counters
                    .iter()
                    .filter_map(|(name, &(c, u, p50, p99))| {
                        let (c0, u0) = before.get(name).map_or((0, 0), |b| (b.0, b.1));
                        let dc = c.checked_sub(c0)?;
                        let du = u.saturating_sub(u0);
                        // perfpilot's own INFO and PING are not the application's load.
                        if dc == 0 || name == "info" || name == "ping" {
                            return None;
                        }
                        calls += dc;
                        usec += du;
                        Some(CommandStat {
                            command: name.clone(),
                            calls_per_s: dc as f64 / secs,
                            usec_per_call: du as f64 / dc as f64,
                            p50_us: p50,
                            p99_us: p99,
                        })
                    })
                    .collect();
                stats.sort_by(|a, b| b.calls_per_s.total_cmp(&a.calls_per_s));
                stats.truncate(TOP_COMMANDS);
                (
                    stats,
                    (calls > 0).then(|| usec as f64 / calls as f64 / 1000.0),
                )
            }
            None => (Vec::new(), None),
        };
        self.last_commands = Some((now, counters));
        let reading = Reading {
            hits: number(&fields, "keyspace_hits").unwrap_or(0),
            misses: number(&fields, "keyspace_misses").unwrap_or(0),
            ops: number(&fields, "total_commands_processed").unwrap_or(0),
            evicted: number(&fields, "evicted_keys").unwrap_or(0),
            expired: number(&fields, "expired_keys"),
            used_bytes: number(&fields, "used_memory").unwrap_or(0),
            limit_bytes: number(&fields, "maxmemory").unwrap_or(0),
            host_bytes: number(&fields, "total_system_memory"),
            clients: number(&fields, "connected_clients").unwrap_or(0),
            blocked_clients: number(&fields, "blocked_clients"),
            keys,
            fragmentation: number(&fields, "mem_fragmentation_ratio"),
            run: fields.get("run_id").copied().unwrap_or_default().to_owned(),
            uptime_s: number(&fields, "uptime_in_seconds").unwrap_or(0),
            command_ms,
        };
        let report = CacheReport {
            at_unix_ms: at,
            server: format!(
                "Redis {}",
                fields.get("redis_version").copied().unwrap_or("(unknown)")
            ),
            memory: CacheMemory {
                used_bytes: reading.used_bytes,
                limit_bytes: reading.limit_bytes,
                host_bytes: reading.host_bytes,
                policy: fields.get("maxmemory_policy").map(|p| (*p).to_owned()),
            },
            commands: window,
            keys: Some(keys),
            tuning_unavailable,
            invalidation_unavailable: None,
            cold: Vec::new(),
        };
        let (tick, details) = self
            .tracker
            .tick(at, now, probe_ms, reading, report, &self.series);
        self.details = details;
        Ok(tick)
    }
}

impl Poll for RedisPoll {
    fn collect(&mut self, at: UnixMillis) -> BoxFuture<'_, Result<Tick, SourceError>> {
        Box::pin(self.tick(at))
    }

    fn details(&mut self) -> Option<serde_json::Value> {
        self.details.take()
    }

    fn marks(&mut self) -> Vec<SourceMark> {
        self.tracker.take_marks()
    }
}

/// How many keys match `pattern` (a `SCAN` of at most a million keys: the answer says
/// when it stopped early).
pub async fn count_matching(settings: &RedisSettings, pattern: &str) -> Result<Matching, String> {
    scan(settings, pattern, false).await
}

/// Unlinks the keys matching `pattern`: `SCAN` + `UNLINK` in batches (never `FLUSHALL`,
/// never `KEYS`), at most [`INVALIDATE_MAX_KEYS`] keys and 5 s.
pub async fn invalidate(settings: &RedisSettings, pattern: &str) -> Result<Matching, String> {
    scan(settings, pattern, true).await
}

/// One `SCAN` for `pattern` on a fresh connection, counting the keys it finds or
/// (`unlink`) unlinking them batch by batch, within the bounds of each.
async fn scan(settings: &RedisSettings, pattern: &str, unlink: bool) -> Result<Matching, String> {
    let info = settings.validate()?;
    let password = settings.password().await?;
    let mut connection = connect(&info, settings, password.as_deref())
        .await
        .map_err(|refusal| refusal.reason("url"))?;
    let failed = |err: redis::RedisError| describe(&err, &info);
    let started = Instant::now();
    let mut cursor: u64 = 0;
    let mut found = Matching::default();
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await
            .map_err(failed)?;
        found.scanned += 1000;
        let taken = if unlink {
            let room = (INVALIDATE_MAX_KEYS - found.keys) as usize;
            let batch = &keys[..keys.len().min(room)];
            if !batch.is_empty() {
                let unlinked: u64 = redis::cmd("UNLINK")
                    .arg(batch)
                    .query_async(&mut connection)
                    .await
                    .map_err(failed)?;
                found.keys += unlinked;
            }
            batch.len()
        } else {
            found.keys += keys.len() as u64;
            keys.len()
        };
        cursor = next;
        if cursor == 0 && taken == keys.len() {
            found.complete = true;
            return Ok(found);
        }
        let bounded = if unlink {
            found.keys >= INVALIDATE_MAX_KEYS || started.elapsed() >= INVALIDATE_MAX_TIME
        } else {
            found.scanned >= PREVIEW_MAX_SCANNED
        };
        if bounded {
            return Ok(found);
        }
    }
}

/// Checks an invalidation pattern: a glob that names something (not `*` alone, which
/// would be a flush by another name).
pub fn validate_pattern(pattern: &str) -> Result<(), Refusal> {
    if pattern.is_empty() || pattern.len() > 256 || pattern.chars().any(char::is_control) {
        return Err(Refusal::new(
            "pattern",
            "must be 1–256 printable characters, like session:*",
        ));
    }
    if pattern.chars().all(|c| matches!(c, '*' | '?')) {
        return Err(Refusal::new(
            "pattern",
            "must name keys (like session:*), not match everything; perfpilot never flushes a whole cache",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> RedisSettings {
        RedisEntry {
            name: "c".into(),
            url: url.into(),
            tls_ca_file: None,
            username: None,
            password_file: None,
            password_env: None,
            group: None,
            level: 2,
            max_memory_share_pct: 50,
            rewrite_config: false,
            warm_url: None,
            warm_command: None,
            invalidate_url: None,
        }
        .settings()
    }

    #[test]
    fn urls_with_secrets_or_unchecked_tls_are_refused_with_the_rule() {
        assert!(settings("redis://127.0.0.1:6379/0").validate().is_ok());
        assert!(settings("unix:///run/redis.sock").validate().is_ok());
        let with_password = settings("redis://:hunter2@127.0.0.1:6379").validate();
        assert!(with_password
            .unwrap_err()
            .to_string()
            .starts_with("url: must not contain a password"));
        assert!(settings("rediss://127.0.0.1:6379").validate().is_ok());
        assert!(settings("rediss://127.0.0.1:6379/#insecure")
            .validate()
            .unwrap_err()
            .rule
            .contains("certificate checks"));
        let mut plain_with_ca = settings("redis://127.0.0.1:6379");
        plain_with_ca.tls_ca_file = Some("/ca.pem".into());
        assert_eq!(plain_with_ca.validate().unwrap_err().field, "tls_ca_file");
        assert_eq!(settings("http://x").validate().unwrap_err().field, "url");
        let mut share = settings("redis://127.0.0.1");
        share.max_memory_share_pct = 95;
        assert_eq!(share.validate().unwrap_err().field, "max_memory_share_pct");
    }

    #[test]
    fn info_is_parsed_into_commands_with_percentiles() {
        let text = "# Stats\r\nkeyspace_hits:10\r\n# Commandstats\r\ncmdstat_get:calls=4,usec=8,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n# Latencystats\r\nlatency_percentiles_usec_get:p50=1.003,p99=3.007,p99.9=3.007\r\n# Keyspace\r\ndb0:keys=7,expires=0,avg_ttl=0\r\n";
        let fields = parse_info(text);
        assert_eq!(number::<u64>(&fields, "keyspace_hits"), Some(10));
        let counters = commands(&fields);
        assert_eq!(counters["get"], (4, 8, Some(1.003), Some(3.007)));
    }

    #[test]
    fn patterns_that_would_flush_are_refused() {
        assert!(validate_pattern("session:*").is_ok());
        assert!(validate_pattern("*").is_err());
        assert!(validate_pattern("**?").is_err());
        assert!(validate_pattern("").is_err());
    }
}

//! Configuration: command-line flags (each also settable through a `PERFPILOT_*`
//! environment variable) merged over an optional TOML file (`--config`). Flags win over
//! the file, the file wins over built-in defaults.
//!
//! What can go wrong here is reported as a [`ConfigError`] naming the file, the line and
//! the rule, because a person reads it at start-up and must be able to fix it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

pub mod auth;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
const DEFAULT_COLLECT_INTERVAL_MS: u64 = 1000;
/// The seed's "every 20th change".
const DEFAULT_AUTOSAVE_EVERY: u64 = 20;
/// Durable state, relative to the working directory.
const DEFAULT_DATA_DIR: &str = "data";
/// `POST /api/push` per client IP: sustained requests/s and burst.
const DEFAULT_PUSH_RATE: u32 = 20;
const DEFAULT_PUSH_BURST: u32 = 40;
/// Live dashboards at once; each costs a task and a few KiB.
const DEFAULT_MAX_WEBSOCKETS: usize = 4096;
/// A year of audit history, then the oldest entries go; `0` keeps everything.
const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 365;
/// Server-function POSTs per client IP: sustained per second and burst. Generous on
/// purpose: a person edits a few times a minute, the edit benchmark drives 20,000/s from
/// one address, and a flood beyond this only fills the change log and snapshot ring.
const DEFAULT_MUTATION_RATE: u32 = 25_000;
const DEFAULT_MUTATION_BURST: u32 = 50_000;

/// perfpilot: a self-hosted performance control plane for your hosts.
#[derive(Parser, Debug, Clone, Default)]
#[command(name = "perfpilot", version, long_about = None)]
pub struct Cli {
    /// Address the UI and API listen on.
    #[arg(long, env = "PERFPILOT_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Optional TOML configuration file; flags given on the command line override it.
    #[arg(long, env = "PERFPILOT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory holding the built browser assets (`pkg/`, favicon). Defaults to the
    /// `site` directory beside the binary's target directory, then `./target/site`.
    #[arg(long, env = "PERFPILOT_SITE_ROOT", value_name = "DIR")]
    pub site_root: Option<PathBuf>,

    /// Seconds before a request that has not produced a response is answered with 408.
    #[arg(long, env = "PERFPILOT_REQUEST_TIMEOUT", value_name = "SECS")]
    pub request_timeout: Option<u64>,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "PERFPILOT_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Milliseconds between host samples (200–60000).
    #[arg(long, env = "PERFPILOT_COLLECT_INTERVAL_MS", value_name = "MS")]
    pub collect_interval_ms: Option<u64>,

    /// Take an in-memory snapshot every N accepted configuration changes (1–1000000).
    #[arg(long, env = "PERFPILOT_AUTOSAVE_EVERY", value_name = "N")]
    pub autosave_every: Option<u64>,

    /// Seconds of baseline before an event that its before/after compares against.
    #[arg(long, env = "PERFPILOT_BASELINE_SECS", value_name = "SECS")]
    pub baseline_secs: Option<u32>,

    /// Seconds after an event (edit, mark, action) measured to judge it.
    #[arg(long, env = "PERFPILOT_VERIFY_SECS", value_name = "SECS")]
    pub verify_secs: Option<u32>,

    /// Address of the Prometheus `/metrics` listener, or `off`.
    #[arg(long, env = "PERFPILOT_METRICS_LISTEN", value_name = "ADDR|off")]
    pub metrics_listen: Option<String>,

    /// Also serve `/metrics` on the main listener (it is not public by default).
    #[arg(long, env = "PERFPILOT_METRICS_ON_MAIN_LISTENER")]
    pub metrics_on_main_listener: bool,

    /// Let `POST /api/push` create a `custom:<id>` resource it does not know yet (a
    /// counted configuration change); without it such pushes get 404.
    #[arg(long, env = "PERFPILOT_PUSH_CREATE_RESOURCES")]
    pub push_create_resources: bool,

    /// `POST /api/push` requests per second allowed per client IP (1–100000).
    #[arg(long, env = "PERFPILOT_PUSH_RATE", value_name = "PER_SEC")]
    pub push_rate: Option<u32>,

    /// `POST /api/push` burst per client IP: requests allowed at once (1–100000).
    #[arg(long, env = "PERFPILOT_PUSH_BURST", value_name = "N")]
    pub push_burst: Option<u32>,

    /// Who users are: `none` (anonymous; see --allow-anonymous-edit) or `proxy` (identity
    /// headers from a reverse proxy in --trusted-proxies). API tokens work in both.
    #[arg(long, env = "PERFPILOT_AUTH", value_name = "none|proxy")]
    pub auth: Option<String>,

    /// Let anonymous users edit targets even when the listener is not loopback.
    #[arg(long, env = "PERFPILOT_ALLOW_ANONYMOUS_EDIT")]
    pub allow_anonymous_edit: bool,

    /// Comma-separated CIDRs of reverse proxies whose identity and X-Forwarded-For
    /// headers are trusted (default: loopback).
    #[arg(long, env = "PERFPILOT_TRUSTED_PROXIES", value_name = "CIDRS")]
    pub trusted_proxies: Option<String>,

    /// Role of a proxy-authenticated user whose groups map to no role (default viewer).
    #[arg(long, env = "PERFPILOT_DEFAULT_ROLE", value_name = "ROLE")]
    pub default_role: Option<String>,

    /// Comma-separated groups whose members are editors (replaces `[auth.roles] editor`).
    #[arg(long, env = "PERFPILOT_EDITOR_GROUPS", value_name = "GROUPS")]
    pub editor_groups: Option<String>,

    /// Comma-separated groups whose members are admins (replaces `[auth.roles] admin`).
    #[arg(long, env = "PERFPILOT_ADMIN_GROUPS", value_name = "GROUPS")]
    pub admin_groups: Option<String>,

    /// Comma-separated programs a resource's `command` action may run (absolute paths;
    /// none by default, so command actions are refused when saved).
    #[arg(long, env = "PERFPILOT_ALLOW_PROGRAMS", value_name = "PATHS")]
    pub allow_program: Option<String>,

    /// Directory of the durable state (`perfpilot.db`: configuration, change counter,
    /// snapshots, audit log, API tokens); created if missing.
    #[arg(long, env = "PERFPILOT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Keep everything in memory and write no files: nothing survives a restart.
    #[arg(long, env = "PERFPILOT_EPHEMERAL")]
    pub ephemeral: bool,

    /// Keep the durable state (configuration, changes, snapshots, audit, tokens,
    /// before/afters) in this PostgreSQL database instead of `<data-dir>/perfpilot.db`,
    /// so two replicas share it and one of them leads. Without a password:
    /// `postgresql://perfpilot@db:5432/perfpilot`.
    #[arg(long, env = "PERFPILOT_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// A file holding the password of --database-url (its first line).
    #[arg(long, env = "PERFPILOT_DATABASE_PASSWORD_FILE", value_name = "FILE")]
    pub database_password_file: Option<PathBuf>,

    /// This replica's name in the leader lease and on its pages (1–64 letters, digits,
    /// `.`, `-`, `_`, `:`; default: the host name and listen port).
    #[arg(long, env = "PERFPILOT_REPLICA_NAME", value_name = "NAME")]
    pub replica_name: Option<String>,

    /// How long the leader lease lasts past its last renewal, in ms (2000–60000; default
    /// 8000): a dead leader is replaced after about this long.
    #[arg(long, env = "PERFPILOT_LEASE_MS", value_name = "MS")]
    pub lease_ms: Option<u64>,

    /// Where the other replicas reach this one (they pass it the edits made on them while
    /// it leads), e.g. `http://10.0.0.5:3000/`; default: the listen address, with this
    /// host's name when listening on every address.
    #[arg(long, env = "PERFPILOT_ADVERTISE_URL", value_name = "URL")]
    pub advertise_url: Option<String>,

    /// The URL users open, when perfpilot is behind a reverse proxy, e.g.
    /// `https://ops.example.com/perf/`. Its path becomes the prefix of every route (the
    /// proxy forwards it unchanged) and its origin the only one allowed to send mutations
    /// and open websockets.
    #[arg(long, env = "PERFPILOT_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Live websockets served at once (1–1000000); more get 503.
    #[arg(long, env = "PERFPILOT_MAX_WEBSOCKETS", value_name = "N")]
    pub max_websockets: Option<usize>,

    /// Audit entries are kept this many days (0–36500; 0 keeps them forever). Checked at
    /// start-up and every hour.
    #[arg(long, env = "PERFPILOT_AUDIT_RETENTION_DAYS", value_name = "DAYS")]
    pub audit_retention_days: Option<u32>,

    /// Server-function POSTs (`/api/…`) per second allowed per client IP (1–1000000).
    #[arg(long, env = "PERFPILOT_MUTATION_RATE", value_name = "PER_SEC")]
    pub mutation_rate: Option<u32>,

    /// Server-function POST burst per client IP (1–1000000).
    #[arg(long, env = "PERFPILOT_MUTATION_BURST", value_name = "N")]
    pub mutation_burst: Option<u32>,

    /// Days raw (per-second) history is kept on disk (1–3650; default 7).
    #[arg(long, env = "PERFPILOT_HISTORY_RAW_DAYS", value_name = "DAYS")]
    pub history_raw_days: Option<u32>,

    /// Days per-minute min/avg/max history is kept on disk (1–3650; default 90).
    #[arg(long, env = "PERFPILOT_HISTORY_MINUTE_DAYS", value_name = "DAYS")]
    pub history_minute_days: Option<u32>,

    /// Days per-hour min/avg/max history is kept on disk (1–36500; default 730).
    #[arg(long, env = "PERFPILOT_HISTORY_HOUR_DAYS", value_name = "DAYS")]
    pub history_hour_days: Option<u32>,

    /// The most the history file may use, in MB (16–1048576; default 512); the oldest
    /// chunks go first.
    #[arg(long, env = "PERFPILOT_HISTORY_MAX_MB", value_name = "MB")]
    pub history_max_mb: Option<u64>,

    /// Validate the configuration, print the effective settings and exit.
    #[arg(long)]
    pub check_config: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Commands besides serving.
#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The history on disk.
    History {
        #[command(subcommand)]
        what: HistoryCommand,
    },
}

#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum HistoryCommand {
    /// Size per tier and per series of `<data-dir>/history.db` (read-only: perfpilot may be
    /// running).
    Stats,
}

/// The TOML file. Unknown keys are errors: a typo must not be silently ignored. The
/// configured sources' tables (`[[postgres]]`, …) belong to their kinds
/// (`connectors::sources::KINDS`), which read them from the text with their lines; every
/// other key is one of these fields or refused.
#[derive(Deserialize, Debug, Default)]
struct FileConfig {
    listen: Option<SocketAddr>,
    site_root: Option<PathBuf>,
    request_timeout: Option<u64>,
    max_body_bytes: Option<usize>,
    collect_interval_ms: Option<u64>,
    autosave_every: Option<u64>,
    metrics_listen: Option<String>,
    metrics_on_main_listener: Option<bool>,
    push_create_resources: Option<bool>,
    push_rate: Option<u32>,
    push_burst: Option<u32>,
    baseline_secs: Option<u32>,
    verify_secs: Option<u32>,
    data_dir: Option<PathBuf>,
    ephemeral: Option<bool>,
    database: Option<DatabaseFile>,
    auth: Option<auth::AuthFile>,
    actions: Option<ActionsFile>,
    public_url: Option<String>,
    max_websockets: Option<usize>,
    mutation_rate: Option<u32>,
    mutation_burst: Option<u32>,
    audit_retention_days: Option<u32>,
    history_raw_days: Option<u32>,
    history_minute_days: Option<u32>,
    history_hour_days: Option<u32>,
    history_max_mb: Option<u64>,
    #[serde(default)]
    cache_level: Vec<CacheLevelEntry>,
    #[serde(default)]
    alert_channel: Vec<connectors::sinks::ChannelEntry>,
    alerts: Option<AlertsFile>,
    report: Option<ReportFile>,
    /// Every other top-level key: a configured kind's table, or a mistake.
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
    /// The configured kinds' entries, each read by its kind from the text, in the order
    /// of `connectors::sources::KINDS`.
    #[serde(skip)]
    sources: Vec<ConfiguredEntry>,
}

/// The `[report]` table: a performance report sent through channels on a schedule.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ReportFile {
    /// `daily`, `weekly` (Mondays) or a duration such as `6h`.
    every: String,
    /// `HH:MM` UTC, for daily and weekly reports.
    at: Option<String>,
    channels: Vec<String>,
}

/// The `[database]` table: the shared PostgreSQL store of replicas. The password comes
/// from a file or an environment variable, never the URL.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct DatabaseFile {
    url: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    replica: Option<String>,
    lease_ms: Option<u64>,
    advertise_url: Option<String>,
}

/// Where replicas keep their shared state, and this replica's name in the lease.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub postgres: connectors::sources::postgres::PostgresSettings,
    pub replica: String,
    pub lease: Duration,
    /// Where the other replicas reach this one, to pass it the edits made on them.
    pub advertise_url: String,
}

/// The `[alerts]` table: how every target's alert resolves.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct AlertsFile {
    resolve_margin_pct: Option<f64>,
    keep_firing_for_secs: Option<u32>,
    forecast_for_secs: Option<u32>,
    forecast_horizon_secs: Option<u32>,
}

/// Alerting: the resolve policy and the channels (`[[alert_channel]]`).
#[derive(Debug, Clone, Default)]
pub struct AlertSettings {
    pub policy: engine::alerts::AlertPolicy,
    pub channels: Vec<connectors::sinks::ChannelEntry>,
    pub report: Option<ReportSchedule>,
}

/// When scheduled reports go out, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSchedule {
    /// The period each report covers, and the time between two.
    pub every_ms: i64,
    /// Reports go out at `offset_ms + k × every_ms` (unix ms).
    pub offset_ms: i64,
    pub channels: Vec<String>,
}

impl ReportSchedule {
    /// The latest send time at or before `now_ms`.
    pub fn due_at_or_before(&self, now_ms: i64) -> i64 {
        (now_ms - self.offset_ms).div_euclid(self.every_ms) * self.every_ms + self.offset_ms
    }
}

/// One `[[cache_level]]`: a resource that is not a configured cache (an application's
/// in-process L1 pushed as `custom:<id>` with a `hit_ratio` metric, and optionally
/// `hits_per_s` and `misses_per_s`) counted as a level of a cache group.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CacheLevelEntry {
    pub group: String,
    pub resource: String,
    pub level: u8,
}

/// One configured source of the configuration file: its table, name and settings.
#[derive(Debug, Clone)]
pub struct ConfiguredEntry {
    /// `postgres`, `redis`, `memcached`, `haproxy`, …: the table it came from, for messages.
    pub table: &'static str,
    pub name: String,
    pub settings: connectors::sources::Configured,
}

/// The `[actions]` table: what the optimizer may execute. Webhook signing secrets live
/// only here (never in resource settings, snapshots or the audit log).
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct ActionsFile {
    allowed_programs: Option<Vec<String>>,
    secrets: Option<std::collections::BTreeMap<String, String>>,
}

/// `--public-url`, checked and split into what the server needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// Normalized, always ending in `/`: `https://ops.example.com/perf/`.
    pub url: String,
    /// `scheme://host[:port]` in lower case, default port left out: what browsers send
    /// as `Origin`.
    pub origin: String,
    /// The path prefix without a trailing slash: `/perf`, or `""` at the root.
    pub base: String,
}

impl PublicUrl {
    pub fn parse(text: &str) -> Result<PublicUrl, String> {
        let text = text.trim();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("must be an absolute http:// or https:// URL, got {text:?}"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => "80",
            "https" => "443",
            _ => {
                return Err(format!(
                    "must be an absolute http:// or https:// URL, got {text:?}"
                ))
            }
        };
        if rest.contains(['?', '#']) {
            return Err(format!(
                "must not have a query or fragment (only scheme, host, port and path), got {text:?}"
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let host_ok = !authority.is_empty()
            && !authority.contains('@')
            && authority.parse::<http::uri::Authority>().is_ok();
        if !host_ok {
            return Err(format!(
                "must name a host (and optionally a port, no user info), got {text:?}"
            ));
        }
        let authority = authority.to_ascii_lowercase();
        let authority = authority
            .strip_suffix(&format!(":{default_port}"))
            .unwrap_or(&authority)
            .to_owned();
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        for segment in &segments {
            let plain = segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'));
            if segment.is_empty() || *segment == "." || *segment == ".." || !plain {
                return Err(format!(
                    "path segments must be non-empty and use only letters, digits, `-`, `_`, \
                     `.` and `~` (no `..`), got {path:?}"
                ));
            }
        }
        let base: String = segments.iter().map(|s| format!("/{s}")).collect();
        let origin = format!("{scheme}://{authority}");
        Ok(PublicUrl {
            url: format!("{origin}{base}/"),
            origin,
            base,
        })
    }
}

/// The effective settings after merging flags, environment, file and defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every configured kind's entries (`[[postgres]]`, `[[redis]]`, …): databases,
    /// caches, load balancers and fleets to watch, added (or updated) at start-up as
    /// changes.
    pub configured: Vec<ConfiguredEntry>,
    /// `[[cache_level]]`: more levels of cache groups.
    pub cache_levels: Vec<CacheLevelEntry>,
    pub listen: SocketAddr,
    pub site_root: PathBuf,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub collect_interval: Duration,
    pub autosave_every: u64,
    /// `None` when the separate metrics listener is off.
    pub metrics_listen: Option<SocketAddr>,
    pub metrics_on_main_listener: bool,
    pub push_create_resources: bool,
    /// Token bucket of `POST /api/push` per client IP: refill per second and capacity.
    pub push_rate: u32,
    pub push_burst: u32,
    /// Settings every auto-registered resource starts with.
    pub resource_defaults: engine::model::ResourceSettings,
    pub auth: auth::AuthSettings,
    /// Programs and webhook secrets the action runner may use.
    pub actions: connectors::actuators::RunnerConfig,
    /// Where the durable state lives; `None` with `--ephemeral` (in memory only).
    pub data_dir: Option<PathBuf>,
    /// `--database-url`: the durable state in PostgreSQL, shared by replicas; history,
    /// alert state and stored secrets stay in `data_dir`.
    pub database: Option<DatabaseSettings>,
    /// Where users reach perfpilot, when behind a proxy; `None` serves at `/` and checks
    /// `Origin` against `Host`.
    pub public_url: Option<PublicUrl>,
    pub max_websockets: usize,
    /// Token bucket of server-function POSTs per client IP.
    pub mutation_rate: u32,
    pub mutation_burst: u32,
    /// Days audit entries are kept; 0 keeps them forever.
    pub audit_retention_days: u32,
    /// How long each history tier is kept on disk, and the file's size cap.
    pub history: crate::persist::history::Retention,
    pub alerts: AlertSettings,
}

impl Settings {
    /// The path prefix of every route: `""` or `/perf`.
    pub fn base_path(&self) -> &str {
        self.public_url.as_ref().map_or("", |p| p.base.as_str())
    }

    /// Where notifications link to (webhook `url`, Alertmanager `generatorURL`), ending
    /// in `/`: `--public-url`, else the listen address (see [`listen_url`]).
    pub fn link_base(&self) -> String {
        match &self.public_url {
            Some(public) => public.url.clone(),
            None => listen_url(self.listen, host_name().as_deref()),
        }
    }
}

/// `http://<listen>/`. An unspecified address (`0.0.0.0`, `::`) is not one to open, so
/// the host's name stands in for it, as Prometheus does without `--web.external-url`;
/// `127.0.0.1` when the name is unknown.
pub fn listen_url(listen: SocketAddr, host_name: Option<&str>) -> String {
    let port = listen.port();
    let host = match listen.ip() {
        ip if ip.is_unspecified() => host_name.unwrap_or("127.0.0.1").to_owned(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("http://{host}:{port}/")
}

/// This host's name, when it is one a URL can carry.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    let plain = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    plain.then_some(name)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: line {line}, column {column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{field}: {rule}")]
    Invalid { field: &'static str, rule: String },
}

impl Settings {
    #[allow(clippy::too_many_lines)] // 209 lines today; split before it grows
    pub fn resolve(cli: &Cli) -> Result<Settings, ConfigError> {
        let mut file = match &cli.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let request_timeout_secs = ranged(
            "request_timeout",
            cli.request_timeout.or(file.request_timeout),
            DEFAULT_REQUEST_TIMEOUT_SECS,
            1..=3600,
            " seconds",
        )?;
        let max_body_bytes = ranged(
            "max_body_bytes",
            cli.max_body_bytes.or(file.max_body_bytes),
            DEFAULT_MAX_BODY_BYTES,
            1024..=64 * 1024 * 1024,
            " bytes",
        )?;
        let collect_interval_ms = ranged(
            "collect_interval_ms",
            cli.collect_interval_ms.or(file.collect_interval_ms),
            DEFAULT_COLLECT_INTERVAL_MS,
            200..=60_000,
            " ms (the CPU counters need 200 ms between reads)",
        )?;
        let autosave_every = ranged(
            "autosave_every",
            cli.autosave_every.or(file.autosave_every),
            DEFAULT_AUTOSAVE_EVERY,
            1..=1_000_000,
            " changes",
        )?;
        let metrics_listen = match cli
            .metrics_listen
            .as_deref()
            .or(file.metrics_listen.as_deref())
            .unwrap_or(DEFAULT_METRICS_LISTEN)
        {
            "off" => None,
            addr => Some(
                addr.parse::<SocketAddr>()
                    .map_err(|_| ConfigError::Invalid {
                        field: "metrics_listen",
                        rule: format!(
                            "must be an address like 127.0.0.1:9464 or `off`, got {addr:?}"
                        ),
                    })?,
            ),
        };
        let push_rate = ranged(
            "push_rate",
            cli.push_rate.or(file.push_rate),
            DEFAULT_PUSH_RATE,
            1..=100_000,
            "",
        )?;
        let push_burst = ranged(
            "push_burst",
            cli.push_burst.or(file.push_burst),
            DEFAULT_PUSH_BURST,
            1..=100_000,
            "",
        )?;
        let public_url = match cli.public_url.as_deref().or(file.public_url.as_deref()) {
            Some(text) => Some(PublicUrl::parse(text).map_err(|rule| ConfigError::Invalid {
                field: "public_url",
                rule,
            })?),
            None => None,
        };
        let max_websockets = ranged(
            "max_websockets",
            cli.max_websockets.or(file.max_websockets),
            DEFAULT_MAX_WEBSOCKETS,
            1..=1_000_000,
            "",
        )?;
        let audit_retention_days = cli
            .audit_retention_days
            .or(file.audit_retention_days)
            .unwrap_or(DEFAULT_AUDIT_RETENTION_DAYS);
        if audit_retention_days > 36_500 {
            return Err(ConfigError::Invalid {
                field: "audit_retention_days",
                rule: format!(
                    "must be between 0 (keep forever) and 36500, got {audit_retention_days}"
                ),
            });
        }
        let history = crate::persist::history::Retention {
            raw_days: ranged(
                "history_raw_days",
                cli.history_raw_days.or(file.history_raw_days),
                7,
                1..=3_650,
                " days",
            )?,
            minute_days: ranged(
                "history_minute_days",
                cli.history_minute_days.or(file.history_minute_days),
                90,
                1..=3_650,
                " days",
            )?,
            hour_days: ranged(
                "history_hour_days",
                cli.history_hour_days.or(file.history_hour_days),
                730,
                1..=36_500,
                " days",
            )?,
            max_bytes: ranged(
                "history_max_mb",
                cli.history_max_mb.or(file.history_max_mb),
                512,
                16..=1_048_576,
                " MB",
            )? << 20,
        };
        let mutation_rate = ranged(
            "mutation_rate",
            cli.mutation_rate.or(file.mutation_rate),
            DEFAULT_MUTATION_RATE,
            1..=1_000_000,
            "",
        )?;
        let mutation_burst = ranged(
            "mutation_burst",
            cli.mutation_burst.or(file.mutation_burst),
            DEFAULT_MUTATION_BURST,
            1..=1_000_000,
            "",
        )?;
        let mut resource_defaults = engine::model::ResourceSettings::default();
        if let Some(secs) = cli.baseline_secs.or(file.baseline_secs) {
            resource_defaults.baseline_secs = secs;
        }
        if let Some(secs) = cli.verify_secs.or(file.verify_secs) {
            resource_defaults.verify_secs = secs;
        }
        resource_defaults
            .validate()
            .map_err(|err| ConfigError::Invalid {
                field: "resource defaults",
                rule: err.to_string(),
            })?;
        let configured = configured_entries(&file)?;
        let cache_levels = cache_levels(&file)?;
        let auth = auth::AuthSettings::resolve(cli, file.auth).map_err(|invalid| {
            ConfigError::Invalid {
                field: invalid.field,
                rule: invalid.rule,
            }
        })?;
        let actions = resolve_actions(cli, file.actions)?;
        let mut alerts = alert_settings(file.alerts.take(), &file.alert_channel, &actions.secrets)?;
        alerts.report = report_schedule(file.report.take(), &alerts.channels)?;
        let ephemeral = cli.ephemeral || file.ephemeral.unwrap_or(false);
        let data_dir = cli.data_dir.clone().or(file.data_dir);
        if ephemeral && cli.data_dir.is_some() {
            return Err(ConfigError::Invalid {
                field: "data_dir",
                rule: "cannot be combined with ephemeral, which writes no files; drop one of them"
                    .into(),
            });
        }
        if data_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(ConfigError::Invalid {
                field: "data_dir",
                rule: "must be a directory path, got an empty one".into(),
            });
        }
        let data_dir =
            (!ephemeral).then(|| data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)));
        let listen = cli
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address"));
        let database = database_settings(cli, file.database.take(), ephemeral, listen)?;
        Ok(Settings {
            alerts,
            configured,
            cache_levels,
            data_dir,
            database,
            listen,
            site_root: cli
                .site_root
                .clone()
                .or(file.site_root)
                .unwrap_or_else(default_site_root),
            request_timeout: Duration::from_secs(request_timeout_secs),
            max_body_bytes,
            collect_interval: Duration::from_millis(collect_interval_ms),
            autosave_every,
            metrics_listen,
            metrics_on_main_listener: cli.metrics_on_main_listener
                || file.metrics_on_main_listener.unwrap_or(false),
            push_create_resources: cli.push_create_resources
                || file.push_create_resources.unwrap_or(false),
            push_rate,
            push_burst,
            resource_defaults,
            auth,
            actions,
            public_url,
            max_websockets,
            mutation_rate,
            mutation_burst,
            audit_retention_days,
            history,
        })
    }
}

/// `--database-url` / `[database]`: checked like a watched PostgreSQL's connection (no
/// password in the URL, a user named, one password source at most).
fn database_settings(
    cli: &Cli,
    file: Option<DatabaseFile>,
    ephemeral: bool,
    listen: SocketAddr,
) -> Result<Option<DatabaseSettings>, ConfigError> {
    let file = file.unwrap_or_default();
    let Some(url) = cli.database_url.clone().or(file.url) else {
        if cli.database_password_file.is_some() || file.password_file.is_some() {
            return Err(ConfigError::Invalid {
                field: "database.password_file",
                rule: "is set but database.url (--database-url) is not; set both or neither".into(),
            });
        }
        return Ok(None);
    };
    if ephemeral {
        return Err(ConfigError::Invalid {
            field: "database.url",
            rule: "cannot be combined with ephemeral, which keeps the state in memory; drop one of them"
                .into(),
        });
    }
    let mut postgres: connectors::sources::postgres::PostgresSettings =
        serde_json::from_value(serde_json::json!({ "url": url })).map_err(|err| {
            ConfigError::Invalid {
                field: "database.url",
                rule: err.to_string(),
            }
        })?;
    postgres.password_file = cli.database_password_file.clone().or(file.password_file);
    postgres.password_env = file.password_env;
    // Our own statements are short; a stuck one must not hold the writer for long.
    postgres.statement_timeout_ms = 10_000;
    postgres
        .validate()
        .map_err(|refusal| ConfigError::Invalid {
            field: match refusal.field.as_str() {
                "password_file" => "database.password_file",
                "password_env" => "database.password_env",
                _ => "database.url",
            },
            rule: refusal.rule,
        })?;
    let replica = match cli.replica_name.clone().or(file.replica) {
        Some(name) => {
            let valid = (1..=64).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
            if !valid {
                return Err(ConfigError::Invalid {
                    field: "database.replica",
                    rule: format!(
                        "must be 1–64 letters, digits, '.', '-', '_' or ':', got {name:?}"
                    ),
                });
            }
            name
        }
        None => format!(
            "{}:{}",
            host_name().unwrap_or_else(|| "localhost".into()),
            listen.port()
        ),
    };
    let lease_ms = cli.lease_ms.or(file.lease_ms).unwrap_or(8_000);
    if !(2_000..=60_000).contains(&lease_ms) {
        return Err(ConfigError::Invalid {
            field: "database.lease_ms",
            rule: format!("must be between 2000 and 60000 ms, got {lease_ms}"),
        });
    }
    let advertise_url = match cli.advertise_url.clone().or(file.advertise_url) {
        Some(url) => match PublicUrl::parse(&url) {
            Ok(parsed) if parsed.base.is_empty() => format!("{}/", parsed.origin),
            Ok(_) => {
                return Err(ConfigError::Invalid {
                    field: "database.advertise_url",
                    rule: format!(
                        "must be this replica's own address without a path (the other replicas add the public URL's), got {url:?}"
                    ),
                })
            }
            Err(rule) => {
                return Err(ConfigError::Invalid {
                    field: "database.advertise_url",
                    rule,
                })
            }
        },
        None => listen_url(listen, host_name().as_deref()),
    };
    Ok(Some(DatabaseSettings {
        postgres,
        replica,
        lease: Duration::from_millis(lease_ms),
        advertise_url,
    }))
}

/// A numeric setting: the flag, else the file, else `default`; outside `range` it is an
/// error naming the field, the range (with `unit`) and the value.
fn ranged<T>(
    field: &'static str,
    given: Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
    unit: &str,
) -> Result<T, ConfigError>
where
    T: PartialOrd + Copy + std::fmt::Display,
{
    let value = given.unwrap_or(default);
    if range.contains(&value) {
        return Ok(value);
    }
    Err(ConfigError::Invalid {
        field,
        rule: format!(
            "must be between {} and {}{unit}, got {value}",
            range.start(),
            range.end()
        ),
    })
}

fn resolve_actions(
    cli: &Cli,
    file: Option<ActionsFile>,
) -> Result<connectors::actuators::RunnerConfig, ConfigError> {
    let file = file.unwrap_or_default();
    let programs: Vec<String> = match &cli.allow_program {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        None => file.allowed_programs.unwrap_or_default(),
    };
    for program in &programs {
        if !Path::new(program).is_absolute() {
            return Err(ConfigError::Invalid {
                field: "actions.allowed_programs",
                rule: format!("must be absolute paths (no PATH lookup), got {program:?}"),
            });
        }
    }
    let secrets = file.secrets.unwrap_or_default();
    if let Some((name, _)) = secrets.iter().find(|(_, value)| value.len() < 16) {
        return Err(ConfigError::Invalid {
            field: "actions.secrets",
            rule: format!("secret {name:?} must be at least 16 characters"),
        });
    }
    Ok(connectors::actuators::RunnerConfig {
        allowed_programs: programs.into_iter().collect(),
        secrets,
    })
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file(path, &text)
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let at = |offset: usize, message: String| {
        let (line, column) = line_and_column(text, offset);
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    };
    let parse_error = |err: toml::de::Error| {
        at(
            err.span().map(|span| span.start).unwrap_or(0),
            err.message().trim().to_owned(),
        )
    };
    let mut file: FileConfig = toml::from_str(text).map_err(parse_error)?;
    if let Some(key) = file
        .other
        .keys()
        .find(|key| connectors::sources::kind_of_table(key).is_none())
    {
        let tables: Vec<String> = connectors::sources::KINDS
            .iter()
            .map(|kind| format!("[[{}]]", kind.toml_table))
            .collect();
        return Err(at(
            key_offset(text, key),
            format!(
                "unknown field `{key}`: neither a setting nor a source's table ({})",
                tables.join(", ")
            ),
        ));
    }
    for kind in connectors::sources::KINDS {
        if !file.other.contains_key(kind.toml_table) {
            continue;
        }
        for (name, settings) in kind.entries(text).map_err(parse_error)? {
            file.sources.push(ConfiguredEntry {
                table: kind.toml_table,
                name,
                settings,
            });
        }
    }
    Ok(file)
}

/// Where the top-level key `key` starts in `text` (the start when it cannot be found).
fn key_offset(text: &str, key: &str) -> usize {
    toml::from_str::<std::collections::BTreeMap<toml::Spanned<String>, serde::de::IgnoredAny>>(text)
        .ok()
        .and_then(|keys| {
            keys.into_keys()
                .find(|found| found.get_ref() == key)
                .map(|found| found.span().start)
        })
        .unwrap_or(0)
}

/// 1-based line and column of a byte offset, the way editors count.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `target/release/perfpilot` finds `target/site`; a copied binary finds `site/` beside it.
fn default_site_root() -> PathBuf {
    let beside_exe = std::env::current_exe().ok().and_then(|exe| {
        let dir = exe.parent()?.to_path_buf();
        [dir.join("../site"), dir.join("site")]
            .into_iter()
            .find(|candidate| candidate.join("pkg").is_dir())
    });
    beside_exe.unwrap_or_else(|| PathBuf::from("target/site"))
}

/// `[alerts]` and the `[[alert_channel]]` entries, checked; channel names are unique.
fn alert_settings(
    file: Option<AlertsFile>,
    channels: &[connectors::sinks::ChannelEntry],
    secrets: &std::collections::BTreeMap<String, String>,
) -> Result<AlertSettings, ConfigError> {
    let file = file.unwrap_or_default();
    let mut policy = engine::alerts::AlertPolicy::default();
    if let Some(margin) = file.resolve_margin_pct {
        policy.resolve_margin_pct = margin;
    }
    if let Some(secs) = file.keep_firing_for_secs {
        policy.keep_firing_for_secs = secs;
    }
    if let Some(secs) = file.forecast_for_secs {
        policy.forecast_for_secs = secs;
    }
    if let Some(secs) = file.forecast_horizon_secs {
        policy.forecast_horizon_secs = secs;
    }
    policy.validate().map_err(|rule| ConfigError::Invalid {
        field: "alerts",
        rule,
    })?;
    let mut names = std::collections::HashSet::new();
    for (i, channel) in channels.iter().enumerate() {
        let invalid = |rule: String| ConfigError::Invalid {
            field: "alert_channel",
            rule: format!("entry {} ({:?}): {rule}", i + 1, channel.name),
        };
        channel.validate(secrets).map_err(invalid)?;
        if !names.insert(channel.name.as_str()) {
            return Err(invalid(format!(
                "name: {:?} is already the name of another channel",
                channel.name
            )));
        }
    }
    Ok(AlertSettings {
        policy,
        channels: channels.to_vec(),
        report: None,
    })
}

fn report_schedule(
    file: Option<ReportFile>,
    channels: &[connectors::sinks::ChannelEntry],
) -> Result<Option<ReportSchedule>, ConfigError> {
    let Some(file) = file else { return Ok(None) };
    let invalid = |rule: String| ConfigError::Invalid {
        field: "report",
        rule,
    };
    let at_ms = match &file.at {
        None => 0,
        Some(at) => {
            let (h, m) = at
                .split_once(':')
                .and_then(|(h, m)| Some((h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
                .filter(|(h, m)| (0..24).contains(h) && (0..60).contains(m))
                .ok_or_else(|| invalid(format!("at: must be HH:MM (UTC), got {at:?}")))?;
            (h * 60 + m) * 60_000
        }
    };
    let (every_ms, offset_ms) = match file.every.as_str() {
        "daily" => (86_400_000, at_ms),
        // 1970-01-05 was a Monday.
        "weekly" => (7 * 86_400_000, 4 * 86_400_000 + at_ms),
        other => {
            let secs = app::alerts::parse_duration(other).ok_or_else(|| {
                invalid(format!(
                    "every: must be daily, weekly or a duration such as 6h, got {other:?}"
                ))
            })?;
            if !(60..=31 * 86_400).contains(&secs) {
                return Err(invalid(
                    "every: must be between 1 minute and 31 days".into(),
                ));
            }
            if file.at.is_some() {
                return Err(invalid("at: only with every = daily or weekly".into()));
            }
            (secs as i64 * 1000, 0)
        }
    };
    if file.channels.is_empty() {
        return Err(invalid(
            "channels: name at least one [[alert_channel]]".into(),
        ));
    }
    for name in &file.channels {
        match channels.iter().find(|c| &c.name == name) {
            None => {
                return Err(invalid(format!(
                    "channels: {name:?} is not the name of an [[alert_channel]]"
                )))
            }
            Some(c) if c.kind == connectors::sinks::ChannelKind::Alertmanager => {
                return Err(invalid(format!(
                    "channels: {name:?} is an Alertmanager channel, which takes alerts, not reports"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(Some(ReportSchedule {
        every_ms,
        offset_ms,
        channels: file.channels,
    }))
}

/// The `[[cache_level]]` entries, checked.
fn cache_levels(file: &FileConfig) -> Result<Vec<CacheLevelEntry>, ConfigError> {
    for (i, entry) in file.cache_level.iter().enumerate() {
        let invalid = |rule: String| ConfigError::Invalid {
            field: "cache_level",
            rule: format!("entry {}: {rule}", i + 1),
        };
        engine::model::ResourceId::new(&entry.resource)
            .map_err(|err| invalid(format!("resource: {err}")))?;
        connectors::sources::secret::check_group(&entry.group)
            .map_err(|refusal| invalid(refusal.to_string()))?;
        if !(1..=9).contains(&entry.level) {
            return Err(invalid(format!(
                "level: must be between 1 and 9, got {}",
                entry.level
            )));
        }
    }
    Ok(file.cache_level.clone())
}

/// The configured sources' entries (`[[postgres]]`, `[[redis]]`, …, every kind of
/// `connectors::sources::KINDS`), each checked without connecting; names are unique per
/// resource id (`database:x`, `cache:x`, `lb:x`, `fleet:x`).
fn configured_entries(file: &FileConfig) -> Result<Vec<ConfiguredEntry>, ConfigError> {
    let mut ids = std::collections::BTreeSet::new();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for entry in &file.sources {
        let n = counts.entry(entry.table).or_default();
        *n += 1;
        let invalid = |rule: String| ConfigError::Invalid {
            field: entry.table,
            rule: format!("entry {n} ({:?}): {rule}", entry.name),
        };
        let id = entry
            .settings
            .resource_id(&entry.name)
            .map_err(|refusal| invalid(refusal.to_string()))?;
        entry
            .settings
            .validate()
            .map_err(|refusal| invalid(refusal.to_string()))?;
        if !ids.insert(id.clone()) {
            return Err(invalid(format!(
                "repeats the resource id {id}; names must be unique among databases and among caches"
            )));
        }
    }
    Ok(file.sources.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        parse_file(Path::new("perfpilot.toml"), text)
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("listen = \"127.0.0.1:4000\"\nlisten_port = 4000\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("config file perfpilot.toml: line 2, column 1:"),
            "{msg}"
        );
        assert!(msg.contains("unknown field `listen_port`"), "{msg}");
    }

    #[test]
    fn caches_are_checked_by_table_and_share_one_namespace() {
        let file = parse(
            "[[redis]]\nname = \"c\"\nurl = \"redis://127.0.0.1:6379\"\n\n[[memcached]]\nname = \"m\"\naddress = \"127.0.0.1:11211\"\nlevel = 1\n",
        )
        .unwrap();
        let entries = configured_entries(&file).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].table, "memcached");
        let twice = parse(
            "[[redis]]\nname = \"c\"\nurl = \"redis://a:1\"\n\n[[memcached]]\nname = \"c\"\naddress = \"b:2\"\n",
        )
        .unwrap();
        let err = configured_entries(&twice).unwrap_err().to_string();
        assert!(
            err.starts_with("memcached: entry 1 (\"c\"): repeats the resource id cache:c"),
            "{err}"
        );
        let secret = parse("[[redis]]\nname = \"c\"\nurl = \"redis://:pw@a:1\"\n").unwrap();
        let err = configured_entries(&secret).unwrap_err().to_string();
        assert!(err.contains("url: must not contain a password"), "{err}");
        assert!(
            parse("[[memcached]]\nname = \"m\"\naddress = \"a:1\"\npassword_file = \"/x\"\n")
                .is_err(),
            "memcached takes no password"
        );
    }

    #[test]
    fn kinds_read_their_own_tables_and_an_unknown_table_is_refused_with_its_line() {
        let err = parse("listen = \"127.0.0.1:4000\"\n\n[[postgress]]\nname = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config file perfpilot.toml: line 3, column "),
            "{err}"
        );
        assert!(err.contains("unknown field `postgress`"), "{err}");
        assert!(
            err.contains("[[postgres]]"),
            "the known tables are listed: {err}"
        );
        // An error inside a kind's table names its own line.
        let err =
            parse("[[redis]]\nname = \"c\"\nurl = \"redis://127.0.0.1:6379\"\nurll = \"x\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("line 4,"), "{err}");
        assert!(err.contains("unknown field `urll`"), "{err}");
        let err = parse("[[nginx]]\nname = \"web\"\nurl = 7\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3,"), "{err}");
        // Entries come in the order of the kinds, whatever the file's order.
        let file = parse(
            "[[memcached]]\nname = \"m\"\naddress = \"127.0.0.1:11211\"\n\n[[postgres]]\nname = \"d\"\nurl = \"postgresql://perf@127.0.0.1/app\"\n",
        )
        .unwrap();
        let entries = configured_entries(&file).unwrap();
        let found: Vec<(&str, &str)> = entries.iter().map(|e| (e.table, e.name.as_str())).collect();
        assert_eq!(found, [("postgres", "d"), ("memcached", "m")]);
        assert_eq!(entries[0].settings.kind(), "postgres");
    }

    #[test]
    fn names_and_groups_follow_the_one_rule_naming_table_and_field() {
        for (body, table) in [
            (
                "[[redis]]\nname = \"a/b\"\nurl = \"redis://127.0.0.1:6379\"\n",
                "redis",
            ),
            (
                "[[redis]]\nname = \"Sessions\"\nurl = \"redis://127.0.0.1:6379\"\n",
                "redis",
            ),
            (
                "[[memcached]]\nname = \"=cmd\"\naddress = \"127.0.0.1:11211\"\n",
                "memcached",
            ),
            (
                "[[memcached]]\nname = \"cpu\"\naddress = \"127.0.0.1:11211\"\n",
                "memcached",
            ),
        ] {
            let err = configured_entries(&parse(body).unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{table}: entry 1 (")), "{err}");
            assert!(err.contains("): name: must"), "{err}");
        }
        let bom = parse(
            "[[redis]]\nname = \"c\"\nurl = \"redis://127.0.0.1:6379\"\ngroup = \"\u{feff}shop\"\n",
        )
        .unwrap();
        let err = configured_entries(&bom).unwrap_err().to_string();
        assert!(err.contains("group: must be 1–63 characters"), "{err}");
        assert!(err.contains(r#"got "\u{feff}shop""#), "{err}");
        let err = cache_levels(
            &parse("[[cache_level]]\ngroup = \"Shop EU\"\nresource = \"custom:7\"\nlevel = 1\n")
                .unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("cache_level: entry 1: group: must"),
            "{err}"
        );
    }

    #[test]
    fn malformed_toml_names_the_line() {
        let err = parse("# comment\nlisten = \n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let err = parse("\n\nlisten = \"not an address\"\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let dir = std::env::temp_dir().join(format!("perfpilot-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ok.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:4000\"\nrequest_timeout = 5\n").unwrap();
        let cli = Cli {
            config: Some(path.clone()),
            request_timeout: Some(7),
            ..Cli::default()
        };
        let settings = Settings::resolve(&cli).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(settings.request_timeout, Duration::from_secs(7));
        assert_eq!(settings.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn out_of_range_values_name_the_field_and_rule() {
        let cli = Cli {
            request_timeout: Some(0),
            ..Cli::default()
        };
        let err = Settings::resolve(&cli).unwrap_err().to_string();
        assert_eq!(
            err,
            "request_timeout: must be between 1 and 3600 seconds, got 0"
        );
    }

    #[test]
    fn history_retention_and_cap_name_the_field_and_rule() {
        let cli = Cli {
            history_max_mb: Some(8),
            ..Cli::default()
        };
        let err = Settings::resolve(&cli).unwrap_err().to_string();
        assert_eq!(
            err,
            "history_max_mb: must be between 16 and 1048576 MB, got 8"
        );
        let cli = Cli {
            history_raw_days: Some(0),
            ..Cli::default()
        };
        let err = Settings::resolve(&cli).unwrap_err().to_string();
        assert_eq!(
            err,
            "history_raw_days: must be between 1 and 3650 days, got 0"
        );
        let defaults = Settings::resolve(&Cli::default()).unwrap().history;
        assert_eq!(defaults, crate::persist::history::Retention::default());
    }

    #[test]
    fn cache_levels_are_checked() {
        let level = |body: &str| cache_levels(&parse(body).unwrap()).map_err(|e| e.to_string());
        assert!(
            level("[[cache_level]]\ngroup = \"shop\"\nresource = \"custom:7\"\nlevel = 1\n")
                .is_ok()
        );
        let err = level("[[cache_level]]\ngroup = \"shop\"\nresource = \"custom:7\"\nlevel = 0\n")
            .unwrap_err();
        assert_eq!(
            err,
            "cache_level: entry 1: level: must be between 1 and 9, got 0"
        );
        let err = level("[[cache_level]]\ngroup = \"shop\"\nresource = \"a b\"\nlevel = 1\n")
            .unwrap_err();
        assert!(err.starts_with("cache_level: entry 1: resource:"), "{err}");
    }

    #[test]
    fn zero_autosave_period_is_refused() {
        let cli = Cli {
            autosave_every: Some(0),
            ..Cli::default()
        };
        let err = Settings::resolve(&cli).unwrap_err().to_string();
        assert_eq!(
            err,
            "autosave_every: must be between 1 and 1000000 changes, got 0"
        );
    }

    #[test]
    fn metrics_listener_can_be_turned_off_or_must_be_an_address() {
        let off = Cli {
            metrics_listen: Some("off".into()),
            ..Cli::default()
        };
        assert_eq!(Settings::resolve(&off).unwrap().metrics_listen, None);
        let bad = Cli {
            metrics_listen: Some("9464".into()),
            ..Cli::default()
        };
        let err = Settings::resolve(&bad).unwrap_err().to_string();
        assert_eq!(
            err,
            "metrics_listen: must be an address like 127.0.0.1:9464 or `off`, got \"9464\""
        );
    }

    #[test]
    fn push_limits_default_and_must_be_in_range() {
        let settings = Settings::resolve(&Cli::default()).unwrap();
        assert_eq!((settings.push_rate, settings.push_burst), (20, 40));
        assert!(!settings.push_create_resources);
        let zero = Cli {
            push_burst: Some(0),
            ..Cli::default()
        };
        let err = Settings::resolve(&zero).unwrap_err().to_string();
        assert_eq!(err, "push_burst: must be between 1 and 100000, got 0");
        let file = parse("push_rate = 5\npush_create_resources = true\n").unwrap();
        assert_eq!(file.push_rate, Some(5));
        assert_eq!(file.push_create_resources, Some(true));
    }

    #[test]
    fn a_zero_verify_window_is_refused_by_the_engine_rule() {
        let cli = Cli {
            verify_secs: Some(0),
            ..Cli::default()
        };
        let err = Settings::resolve(&cli).unwrap_err().to_string();
        assert!(
            err.starts_with("resource defaults: settings.verify_secs:"),
            "{err}"
        );
    }

    #[test]
    fn auth_table_and_flags_resolve_and_bad_values_name_the_field() {
        let file = parse(
            "[auth]\nmode = \"proxy\"\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]\n[auth.roles]\neditor = [\"perf-editors\"]\n",
        )
        .unwrap();
        let auth = auth::AuthSettings::resolve(&Cli::default(), file.auth).unwrap();
        assert_eq!(auth.mode, auth::AuthMode::Proxy);
        assert_eq!(auth.trusted_proxies.len(), 2);
        assert_eq!(
            auth.group_roles.get("perf-editors"),
            Some(&app::identity::Role::Editor)
        );
        let bad = Cli {
            trusted_proxies: Some("10.0.0.0/8, nonsense".into()),
            ..Cli::default()
        };
        let err = Settings::resolve(&bad).unwrap_err().to_string();
        assert_eq!(
            err,
            "auth.trusted_proxies: must be IP addresses or CIDRs like 10.0.0.0/8, got \"nonsense\""
        );
        let mode = Cli {
            auth: Some("oauth".into()),
            ..Cli::default()
        };
        let err = Settings::resolve(&mode).unwrap_err().to_string();
        assert_eq!(err, "auth.mode: must be `none` or `proxy`, got \"oauth\"");
        let typo = parse("[auth]\nmdoe = \"proxy\"\n").unwrap_err().to_string();
        assert!(
            typo.contains("line 2") && typo.contains("unknown field `mdoe`"),
            "{typo}"
        );
    }

    #[test]
    fn public_url_is_normalized_into_origin_and_base() {
        let p = PublicUrl::parse("https://Ops.Example.com:443/perf").unwrap();
        assert_eq!(p.url, "https://ops.example.com/perf/");
        assert_eq!(p.origin, "https://ops.example.com");
        assert_eq!(p.base, "/perf");
        let p = PublicUrl::parse("http://127.0.0.1:8080/a/b/").unwrap();
        assert_eq!(
            (p.origin.as_str(), p.base.as_str()),
            ("http://127.0.0.1:8080", "/a/b")
        );
        let root = PublicUrl::parse("https://perf.example.com").unwrap();
        assert_eq!(
            (root.url.as_str(), root.base.as_str()),
            ("https://perf.example.com/", "")
        );
        assert_eq!(PublicUrl::parse("https://x.example/").unwrap().base, "");
    }

    #[test]
    fn notification_links_fall_back_to_the_listen_address() {
        let at = |addr: &str| addr.parse::<SocketAddr>().unwrap();
        assert_eq!(
            listen_url(at("127.0.0.1:3000"), Some("box")),
            "http://127.0.0.1:3000/"
        );
        assert_eq!(
            listen_url(at("0.0.0.0:3000"), Some("box.example")),
            "http://box.example:3000/"
        );
        assert_eq!(
            listen_url(at("0.0.0.0:3000"), None),
            "http://127.0.0.1:3000/"
        );
        assert_eq!(listen_url(at("[::1]:8080"), None), "http://[::1]:8080/");
        let cli = Cli {
            listen: Some(at("127.0.0.1:4000")),
            ..Cli::default()
        };
        let settings = Settings::resolve(&cli).unwrap();
        assert_eq!(settings.link_base(), "http://127.0.0.1:4000/");
        let cli = Cli {
            public_url: Some("https://ops.example.com/perf".into()),
            ..cli
        };
        let settings = Settings::resolve(&cli).unwrap();
        assert_eq!(settings.link_base(), "https://ops.example.com/perf/");
    }

    #[test]
    fn bad_public_urls_name_the_field_and_rule() {
        for (text, rule) in [
            ("/perf/", "must be an absolute http:// or https:// URL"),
            (
                "ftp://host/perf/",
                "must be an absolute http:// or https:// URL",
            ),
            (
                "https://host/perf/?a=1",
                "must not have a query or fragment",
            ),
            (
                "https://host/perf/#top",
                "must not have a query or fragment",
            ),
            ("https:///perf/", "must name a host"),
            ("https://user@host/perf/", "must name a host"),
            ("https://host/perf//x/", "path segments must be non-empty"),
            ("https://host/../x/", "path segments must be non-empty"),
            ("https://host/a b/", "path segments must be non-empty"),
        ] {
            let cli = Cli {
                public_url: Some(text.into()),
                ..Cli::default()
            };
            let err = Settings::resolve(&cli).unwrap_err().to_string();
            assert!(err.starts_with("public_url: "), "{text}: {err}");
            assert!(err.contains(rule), "{text}: {err}");
        }
        let file = parse("public_url = \"https://ops.example.com/perf/\"\n").unwrap();
        assert_eq!(
            file.public_url.as_deref(),
            Some("https://ops.example.com/perf/")
        );
    }

    #[test]
    fn action_programs_must_be_absolute_and_secrets_long() {
        let relative = Cli {
            allow_program: Some("/usr/bin/true, scale-up".into()),
            ..Cli::default()
        };
        assert_eq!(
            Settings::resolve(&relative).unwrap_err().to_string(),
            "actions.allowed_programs: must be absolute paths (no PATH lookup), got \"scale-up\""
        );
        let file = parse(
            "[actions]\nallowed_programs = [\"/bin/true\"]\n[actions.secrets]\nhook = \"short\"\n",
        )
        .unwrap();
        let err = resolve_actions(&Cli::default(), file.actions)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "actions.secrets: secret \"hook\" must be at least 16 characters"
        );
    }

    #[test]
    fn data_dir_defaults_and_ephemeral_turns_it_off() {
        let settings = Settings::resolve(&Cli::default()).unwrap();
        assert_eq!(settings.data_dir, Some(PathBuf::from("data")));
        let ephemeral = Cli {
            ephemeral: true,
            ..Cli::default()
        };
        assert_eq!(Settings::resolve(&ephemeral).unwrap().data_dir, None);
        let both = Cli {
            ephemeral: true,
            data_dir: Some(PathBuf::from("/var/lib/perfpilot")),
            ..Cli::default()
        };
        let err = Settings::resolve(&both).unwrap_err().to_string();
        assert_eq!(
            err,
            "data_dir: cannot be combined with ephemeral, which writes no files; drop one of them"
        );
        let file = parse("data_dir = \"/srv/perfpilot\"\nephemeral = false\n").unwrap();
        assert_eq!(file.data_dir, Some(PathBuf::from("/srv/perfpilot")));
        assert_eq!(file.ephemeral, Some(false));
    }

    #[test]
    fn a_shared_database_is_checked_field_by_field() {
        let with = |url: &str, change: fn(&mut Cli)| {
            let mut cli = Cli {
                database_url: Some(url.to_owned()),
                ..Cli::default()
            };
            change(&mut cli);
            Settings::resolve(&cli).map_err(|err| err.to_string())
        };
        let ok = with("postgresql://perfpilot@db:5432/state", |cli| {
            cli.replica_name = Some("a".into());
        })
        .unwrap();
        let database = ok.database.unwrap();
        assert_eq!(database.replica, "a");
        assert_eq!(database.lease, Duration::from_secs(8));
        let err = with("postgresql://perfpilot:secret@db/state", |_| {}).unwrap_err();
        assert!(
            err.starts_with("database.url: must not contain a password"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        let err = with("postgresql://perfpilot@db/state", |cli| {
            cli.lease_ms = Some(500)
        })
        .unwrap_err();
        assert_eq!(
            err,
            "database.lease_ms: must be between 2000 and 60000 ms, got 500"
        );
        let err = with("postgresql://perfpilot@db/state", |cli| {
            cli.replica_name = Some("a b".into())
        })
        .unwrap_err();
        assert!(err.starts_with("database.replica: must be 1–64"), "{err}");
        // Where the other replicas pass edits: the listen address unless told.
        assert!(
            database.advertise_url.starts_with("http://"),
            "{database:?}"
        );
        let told = with("postgresql://perfpilot@db/state", |cli| {
            cli.advertise_url = Some("http://10.0.0.5:3000".into())
        })
        .unwrap();
        assert_eq!(
            told.database.unwrap().advertise_url,
            "http://10.0.0.5:3000/"
        );
        let refusals = [
            with("postgresql://perfpilot@db/state", |cli| {
                cli.advertise_url = Some("10.0.0.5:3000".into())
            }),
            with("postgresql://perfpilot@db/state", |cli| {
                cli.advertise_url = Some("http://10.0.0.5:3000/perf".into())
            }),
            with("postgresql://perfpilot@db/state", |cli| {
                cli.advertise_url = Some("http://user@10.0.0.5:3000/".into())
            }),
        ];
        for refusal in refusals {
            let err = refusal.unwrap_err();
            assert!(err.starts_with("database.advertise_url: "), "{err}");
        }
        let err = with("postgresql://perfpilot@db/state", |cli| {
            cli.ephemeral = true
        })
        .unwrap_err();
        assert!(
            err.starts_with("database.url: cannot be combined with ephemeral"),
            "{err}"
        );
        let err = Settings::resolve(&Cli {
            database_password_file: Some(PathBuf::from("/etc/pw")),
            ..Cli::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("database.password_file: is set but database.url"),
            "{err}"
        );
    }

    #[test]
    fn limits_default_and_must_be_in_range() {
        let settings = Settings::resolve(&Cli::default()).unwrap();
        assert_eq!(settings.max_websockets, 4096);
        assert_eq!(
            (settings.mutation_rate, settings.mutation_burst),
            (25_000, 50_000)
        );
        assert_eq!(settings.base_path(), "");
        let zero = Cli {
            max_websockets: Some(0),
            ..Cli::default()
        };
        let err = Settings::resolve(&zero).unwrap_err().to_string();
        assert_eq!(err, "max_websockets: must be between 1 and 1000000, got 0");
        let zero = Cli {
            mutation_burst: Some(0),
            ..Cli::default()
        };
        let err = Settings::resolve(&zero).unwrap_err().to_string();
        assert_eq!(err, "mutation_burst: must be between 1 and 1000000, got 0");
    }

    #[test]
    fn audit_retention_defaults_to_a_year_and_zero_keeps_everything() {
        let settings = Settings::resolve(&Cli::default()).unwrap();
        assert_eq!(settings.audit_retention_days, 365);
        let forever = Cli {
            audit_retention_days: Some(0),
            ..Cli::default()
        };
        assert_eq!(Settings::resolve(&forever).unwrap().audit_retention_days, 0);
        let too_long = Cli {
            audit_retention_days: Some(36_501),
            ..Cli::default()
        };
        let err = Settings::resolve(&too_long).unwrap_err().to_string();
        assert_eq!(
            err,
            "audit_retention_days: must be between 0 (keep forever) and 36500, got 36501"
        );
        let file = parse("audit_retention_days = 90\n").unwrap();
        assert_eq!(file.audit_retention_days, Some(90));
    }

    #[test]
    fn missing_file_is_named() {
        let cli = Cli {
            config: Some(PathBuf::from("/nonexistent/perfpilot.toml")),
            ..Cli::default()
        };
        let err = Settings::resolve(&cli).unwrap_err().to_string();
        assert!(
            err.starts_with("config file /nonexistent/perfpilot.toml: cannot read it"),
            "{err}"
        );
    }
}

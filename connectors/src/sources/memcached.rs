//! memcached as a source: `stats` at 1 Hz over one TCP connection, a `version` round trip
//! timed on the client as the probe.
//!
//! The text protocol is a few lines here (`stats`, `stats settings`, `version`,
//! `cache_memlimit`); the async crates for memcached are built for get/set and bring
//! their own pools, so a hand-written client of four commands is the smaller dependency.
//! memcached's text protocol has no authentication (SASL is binary-protocol only), so a
//! password is refused rather than silently ignored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::cache::{CacheMemory, CacheReport};
use engine::model::{Resource, ResourceSettings, SourceSpec};
use engine::series::{SeriesInfo, Tick, UnixMillis};
use engine::source::runtime::Polled;
use engine::source::{BoxFuture, Poll, Schedule, SourceError, SourceInfo, SourceMark};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::cache::{Reading, Tracker};
use super::kind::{self, ConfiguredKind, Keys, KindEntry, TableEntry};
use super::Checked;
use crate::Refusal;

/// The kind name in a resource's [`SourceSpec`].
pub const KIND: &str = "memcached";
/// The kind in [`super::KINDS`]: specs of [`KIND`], the `[[memcached]]` table.
pub const ENTRY: KindEntry = KindEntry {
    kind: KIND,
    title: "memcached",
    family: engine::source::SourceFamily::Cache,
    settle: engine::verdict::Settle {
        secs: 10,
        why: "a cleared or resized cache refills before its hit ratio settles",
    },
    toml_table: "memcached",
    from_spec: kind::decode::<MemcachedSettings>,
    from_toml: kind::table::<MemcachedEntry>,
};
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Counters the source cannot do without (a proxy or an old server may lack them).
const NEEDED: &[&str] = &["get_hits", "get_misses", "bytes", "limit_maxbytes"];

/// A memcached cache's source settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemcachedSettings {
    /// `host:port`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default = "super::redis::default_level")]
    pub level: u8,
    /// The most `cache_memlimit` perfpilot may set, % of this host's memory (memcached
    /// does not say its host's).
    #[serde(default = "super::redis::default_max_memory_share_pct")]
    pub max_memory_share_pct: u8,
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

/// One `[[memcached]]` entry of the configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemcachedEntry {
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default = "super::redis::default_level")]
    pub level: u8,
    #[serde(default = "super::redis::default_max_memory_share_pct")]
    pub max_memory_share_pct: u8,
    #[serde(default)]
    pub warm_url: Option<String>,
    #[serde(default)]
    pub warm_command: Option<Vec<String>>,
    #[serde(default)]
    pub invalidate_url: Option<String>,
}

impl TableEntry for MemcachedEntry {
    type Settings = MemcachedSettings;

    fn name(&self) -> &str {
        &self.name
    }

    fn settings(&self) -> MemcachedSettings {
        MemcachedSettings {
            address: self.address.clone(),
            group: self.group.clone(),
            level: self.level,
            max_memory_share_pct: self.max_memory_share_pct,
            warm_url: self.warm_url.clone(),
            warm_command: self.warm_command.clone(),
            invalidate_url: self.invalidate_url.clone(),
        }
    }
}

impl MemcachedSettings {
    pub fn validate(&self) -> Result<(), Refusal> {
        let (host, port) = self.address.rsplit_once(':').ok_or_else(|| {
            Refusal::new(
                "address",
                format!(
                    "must be host:port, got {:?}",
                    engine::redact::redact(&self.address)
                ),
            )
        })?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(Refusal::new(
                "address",
                format!(
                    "must be host:port with a port 1–65535, got {:?}",
                    engine::redact::redact(&self.address)
                ),
            ));
        }
        super::secret::validate_group(&self.group)?;
        super::redis::validate_level(self.level)?;
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
        Ok(())
    }

    pub fn spec(&self) -> SourceSpec {
        super::spec_of(KIND, self)
    }

    pub fn from_spec(spec: &SourceSpec) -> Result<MemcachedSettings, Refusal> {
        super::settings_of(spec)
    }
}

impl ConfiguredKind for MemcachedSettings {
    /// A cache setting (`cache_memlimit`), tuned on this server.
    fn actuator(
        &self,
        action: &engine::model::ActionConfig,
        _: &crate::Registries,
    ) -> Option<Result<Arc<dyn engine::actuator::Actuator>, Refusal>> {
        let engine::model::ActionConfig::CacheSetting(setting) = action else {
            return None;
        };
        let cache = crate::actuators::cache_setting::Cache::Memcached(self.clone());
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
        MemcachedSettings::spec(self)
    }

    fn validate(&self) -> Result<(), Refusal> {
        MemcachedSettings::validate(self)
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
            if password.is_some() {
                return Err(Refusal::new(
                    "password",
                    "memcached's text protocol has no authentication; leave the password empty",
                ));
            }
            let report = check(self).await?;
            Ok(Checked::found(report.server_version))
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

    fn warm_action(&self) -> Option<engine::model::ActionConfig> {
        super::cache::warm_action(&self.warm_url, &self.warm_command)
    }

    /// memcached cannot list its keys: patterns go to `invalidate_url` only.
    fn keys(&self) -> Keys {
        Keys::Unlisted
    }

    fn invalidate_url(&self) -> Option<&str> {
        self.invalidate_url.as_deref()
    }
}

/// The resource a memcached cache is.
pub fn resource(
    name: &str,
    settings: &MemcachedSettings,
    defaults: &ResourceSettings,
) -> Result<Resource, Refusal> {
    super::cache::resource(name, settings.spec(), defaults)
}

/// One connection speaking the text protocol.
pub struct Connection {
    address: String,
    stream: BufReader<TcpStream>,
}

impl Connection {
    pub async fn open(address: &str) -> Result<Connection, String> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| {
                format!(
                    "no answer from {address} within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )
            })?
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::ConnectionRefused => format!(
                    "connection refused at {address} (is memcached running and listening there?)"
                ),
                _ => format!("{address}: {err}"),
            })?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            address: address.to_owned(),
            stream: BufReader::new(stream),
        })
    }

    /// Sends `command` and reads lines until one `is_last` accepts.
    async fn ask(
        &mut self,
        command: &str,
        is_last: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, String> {
        let address = self.address.clone();
        let exchange = async {
            self.stream
                .get_mut()
                .write_all(format!("{command}\r\n").as_bytes())
                .await?;
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                if self.stream.read_line(&mut line).await? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                }
                let line = line.trim_end().to_owned();
                let last = is_last(&line);
                lines.push(line);
                if last {
                    return Ok(lines);
                }
            }
        };
        let lines = tokio::time::timeout(RESPONSE_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                format!(
                    "{address}: no answer to {command} within {} s",
                    RESPONSE_TIMEOUT.as_secs()
                )
            })?
            .map_err(|err| format!("{address}: {err}"))?;
        let last = lines.last().map(String::as_str).unwrap_or_default();
        if last == "ERROR" || last.starts_with("CLIENT_ERROR") || last.starts_with("SERVER_ERROR") {
            return Err(format!("{address} refused {command}: {last}"));
        }
        Ok(lines)
    }

    /// `stats` (or `stats <group>`) as name → value.
    pub async fn stats(&mut self, group: Option<&str>) -> Result<HashMap<String, String>, String> {
        let command = match group {
            Some(group) => format!("stats {group}"),
            None => "stats".to_owned(),
        };
        let lines = self
            .ask(&command, |l| {
                l == "END" || l == "ERROR" || l.ends_with("_ERROR") || l.contains("_ERROR ")
            })
            .await?;
        Ok(lines
            .iter()
            .filter_map(|l| {
                let mut parts = l.strip_prefix("STAT ")?.splitn(2, ' ');
                Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
            })
            .collect())
    }

    pub async fn version(&mut self) -> Result<String, String> {
        let lines = self.ask("version", |_| true).await?;
        Ok(lines[0]
            .strip_prefix("VERSION ")
            .unwrap_or(&lines[0])
            .to_owned())
    }

    /// `cache_memlimit <mb>`: memcached's runtime memory limit.
    pub async fn set_memlimit(&mut self, mb: u64) -> Result<(), String> {
        let lines = self.ask(&format!("cache_memlimit {mb}"), |_| true).await?;
        match lines[0].as_str() {
            "OK" => Ok(()),
            other => Err(format!("cache_memlimit {mb} was refused: {other}")),
        }
    }
}

/// What a check of a memcached found (for adding one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub server_version: String,
}

/// Connects once and reads what the source needs: unreachable, or a server without the
/// needed statistics, is refused with the reason, on the field a cache's address is sent
/// in ([`ConfiguredKind::address_field`]).
pub async fn check(settings: &MemcachedSettings) -> Result<CheckReport, Refusal> {
    settings.validate()?;
    let at_address = |reason: String| Refusal::new(settings.address_field(), reason);
    let mut connection = Connection::open(&settings.address)
        .await
        .map_err(at_address)?;
    let stats = connection.stats(None).await.map_err(at_address)?;
    missing_stats(&stats).map_err(at_address)?;
    Ok(CheckReport {
        server_version: format!(
            "memcached {}",
            stats.get("version").map_or("(unknown)", String::as_str)
        ),
    })
}

fn missing_stats(stats: &HashMap<String, String>) -> Result<(), String> {
    let missing: Vec<&str> = NEEDED
        .iter()
        .copied()
        .filter(|k| !stats.contains_key(*k))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the server's stats lack {} (a proxy, or not memcached?)",
            missing.join(", ")
        ))
    }
}

/// The source of `resource`, polled every `interval`.
pub fn source(
    resource: &Resource,
    settings: MemcachedSettings,
    interval: Duration,
) -> Result<Polled<MemcachedPoll>, String> {
    settings.validate()?;
    let info = SourceInfo {
        id: resource.id.to_string(),
        kind: KIND.to_owned(),
        resources: vec![resource.clone()],
        owns: Vec::new(),
    };
    let mut schedule = Schedule::every(interval);
    schedule.timeout = CONNECT_TIMEOUT + RESPONSE_TIMEOUT * 2;
    Ok(Polled::new(
        info,
        schedule,
        MemcachedPoll {
            settings,
            series: super::cache::series(resource),
            connection: None,
            tracker: Tracker::new(resource.id.as_str()),
            details: None,
        },
    ))
}

pub struct MemcachedPoll {
    settings: MemcachedSettings,
    series: Arc<[SeriesInfo]>,
    connection: Option<Connection>,
    tracker: Tracker,
    details: Option<serde_json::Value>,
}

impl MemcachedPoll {
    async fn tick(&mut self, at: UnixMillis) -> Result<Tick, SourceError> {
        if self.connection.is_none() {
            self.connection = Some(
                Connection::open(&self.settings.address)
                    .await
                    .map_err(SourceError::new)?,
            );
        }
        let connection = self.connection.as_mut().expect("connected above");
        let started = Instant::now();
        let read = async {
            connection.version().await?;
            let probe_ms = started.elapsed().as_secs_f64() * 1000.0;
            Ok::<_, String>((probe_ms, connection.stats(None).await?))
        };
        let (probe_ms, stats) = match read.await {
            Ok(read) => read,
            Err(reason) => {
                self.connection = None;
                return Err(SourceError::new(reason));
            }
        };
        missing_stats(&stats).map_err(SourceError::new)?;
        let now = Instant::now();
        let num = |key: &str| stats.get(key).and_then(|v| v.parse::<u64>().ok());
        let reading = Reading {
            hits: num("get_hits").unwrap_or(0),
            misses: num("get_misses").unwrap_or(0),
            ops: num("cmd_get").unwrap_or(0) + num("cmd_set").unwrap_or(0),
            evicted: num("evictions").unwrap_or(0),
            expired: num("expired_unfetched"),
            used_bytes: num("bytes").unwrap_or(0),
            limit_bytes: num("limit_maxbytes").unwrap_or(0),
            host_bytes: None,
            clients: num("curr_connections").unwrap_or(0),
            blocked_clients: None,
            keys: num("curr_items").unwrap_or(0),
            fragmentation: None,
            run: stats.get("pid").cloned().unwrap_or_default(),
            uptime_s: num("uptime").unwrap_or(0),
            command_ms: None,
        };
        let report = CacheReport {
            at_unix_ms: at,
            server: format!(
                "memcached {}",
                stats.get("version").map_or("(unknown)", String::as_str)
            ),
            memory: CacheMemory {
                used_bytes: reading.used_bytes,
                limit_bytes: reading.limit_bytes,
                host_bytes: None,
                policy: None,
            },
            keys: Some(reading.keys),
            invalidation_unavailable: self.settings.invalidate_url.is_none().then(|| {
                "unavailable: memcached cannot list its keys, so they cannot be invalidated by pattern; set invalidate_url to hand patterns to the application that owns them".to_owned()
            }),
            ..CacheReport::default()
        };
        let (tick, details) = self
            .tracker
            .tick(at, now, probe_ms, reading, report, &self.series);
        self.details = details;
        Ok(tick)
    }
}

impl Poll for MemcachedPoll {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_with_the_rule() {
        let settings = |address: &str| MemcachedSettings {
            address: address.into(),
            group: None,
            level: 2,
            max_memory_share_pct: 50,
            warm_url: None,
            warm_command: None,
            invalidate_url: None,
        };
        assert!(settings("127.0.0.1:11211").validate().is_ok());
        assert_eq!(
            settings("127.0.0.1").validate().unwrap_err().field,
            "address"
        );
        assert_eq!(settings("x:0").validate().unwrap_err().field, "address");
    }
}

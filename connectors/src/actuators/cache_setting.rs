//! The cache memory actuator: one memory setting of the resource's own cache through the
//! shared lifecycle.
//!
//! - Redis: `maxmemory` (within `max_memory_share_pct` of the cache host's memory, which
//!   Redis reports) or `maxmemory-policy`. Capture and read back with `CONFIG GET` on a
//!   fresh connection, apply and roll back with `CONFIG SET`; after a kept change,
//!   `CONFIG REWRITE` when the cache's `rewrite_config` says so.
//! - memcached: `cache_memlimit` in MB (within `max_memory_share_pct` of this host's
//!   memory: memcached does not report its host's). Read back with `stats settings`
//!   (`maxbytes`).
//!
//! A limit of 0 ("no limit") is never set: perfpilot only sets bounds.

use engine::actions::ActionRequest;
use engine::actuator::{Actuator, Captured, Done, Expect, StepError};
use engine::model::CacheSettingAction;
use engine::source::BoxFuture;

use crate::sources::memcached::{Connection, MemcachedSettings};
use crate::sources::redis::{self, RedisSettings};
use crate::Refusal;

/// `maxmemory-policy` values Redis accepts.
const POLICIES: &[&str] = &[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];

/// The cache an action acts on.
#[derive(Debug, Clone)]
pub enum Cache {
    Redis(RedisSettings),
    Memcached(MemcachedSettings),
}

/// Bytes of `value`: `268435456`, `256mb`, `1gb`, `512kb` (Redis' units, 1024-based).
pub fn parse_bytes(value: &str) -> Option<u64> {
    let v = value.trim().to_ascii_lowercase();
    let (digits, factor) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("b", 1),
    ]
    .iter()
    .find_map(|(unit, f)| v.strip_suffix(unit).map(|d| (d.to_owned(), *f)))
    .unwrap_or((v.clone(), 1));
    digits.trim().parse::<u64>().ok()?.checked_mul(factor)
}

/// Checks an action when it is saved against the cache it is saved on; the error names
/// the field and the rule.
pub fn validate(action: &CacheSettingAction, cache: &Cache) -> Result<(), Refusal> {
    let value = |rule: String| Err(Refusal::new("settings.action.value", rule));
    let parameter = |rule: String| Err(Refusal::new("settings.action.parameter", rule));
    match (cache, action.parameter.as_str()) {
        (Cache::Redis(_), "maxmemory") | (Cache::Memcached(_), "cache_memlimit") => {
            match parse_bytes(&action.value) {
                Some(0) => value("0 means no limit; perfpilot only sets a bound".into()),
                Some(_) => Ok(()),
                None => value(format!(
                    "must be a size like 256mb or 1gb, got {:?}",
                    action.value
                )),
            }
        }
        (Cache::Redis(_), "maxmemory-policy") => {
            if POLICIES.contains(&action.value.as_str()) {
                Ok(())
            } else {
                value(format!(
                    "must be one of {}, got {:?}",
                    POLICIES.join(", "),
                    action.value
                ))
            }
        }
        (Cache::Redis(_), other) => parameter(format!(
            "{other} is not one perfpilot tunes on Redis (allowed: maxmemory, maxmemory-policy)"
        )),
        (Cache::Memcached(_), other) => parameter(format!(
            "{other} is not one perfpilot tunes on memcached (allowed: cache_memlimit)"
        )),
    }
}

pub struct CacheSetting {
    action: CacheSettingAction,
    cache: Result<Cache, String>,
}

impl CacheSetting {
    pub fn new(action: CacheSettingAction, cache: Result<Cache, String>) -> CacheSetting {
        CacheSetting { action, cache }
    }

    fn cache(&self) -> Result<&Cache, StepError> {
        self.cache
            .as_ref()
            .map_err(|err| StepError::new(err.clone()))
    }

    /// The setting's value now, as the server states it (bytes for the memory limits).
    async fn current(&self) -> Result<String, StepError> {
        match self.cache()? {
            Cache::Redis(settings) => {
                let mut connection = redis::connect_fresh(settings)
                    .await
                    .map_err(StepError::new)?;
                let pair: Vec<String> = ::redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(&self.action.parameter)
                    .query_async(&mut connection)
                    .await
                    .map_err(|err| StepError::new(config_refused(&err)))?;
                pair.get(1).cloned().ok_or_else(|| {
                    StepError::new(format!(
                        "CONFIG GET {} answered nothing",
                        self.action.parameter
                    ))
                })
            }
            Cache::Memcached(settings) => {
                let mut connection = Connection::open(&settings.address)
                    .await
                    .map_err(StepError::new)?;
                let stats = connection
                    .stats(Some("settings"))
                    .await
                    .map_err(StepError::new)?;
                stats
                    .get("maxbytes")
                    .cloned()
                    .ok_or_else(|| StepError::new("stats settings has no maxbytes"))
            }
        }
    }

    /// What the server will state after `value` is set.
    fn canonical(&self, value: &str) -> String {
        match self.action.parameter.as_str() {
            "maxmemory" => parse_bytes(value).map_or_else(|| value.to_owned(), |b| b.to_string()),
            "cache_memlimit" => parse_bytes(value)
                .map_or_else(|| value.to_owned(), |b| (mb_of(b) << 20).to_string()),
            _ => value.to_owned(),
        }
    }

    async fn set(&self, value: &str) -> Result<(), StepError> {
        match self.cache()? {
            Cache::Redis(settings) => {
                let mut connection = redis::connect_fresh(settings)
                    .await
                    .map_err(StepError::new)?;
                ::redis::cmd("CONFIG")
                    .arg("SET")
                    .arg(&self.action.parameter)
                    .arg(value)
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(|err| StepError::new(config_refused(&err)))
            }
            Cache::Memcached(settings) => {
                let bytes = parse_bytes(value)
                    .ok_or_else(|| StepError::new(format!("{value:?} is not a size")))?;
                let mut connection = Connection::open(&settings.address)
                    .await
                    .map_err(StepError::new)?;
                connection
                    .set_memlimit(mb_of(bytes))
                    .await
                    .map_err(StepError::new)
            }
        }
    }

    /// Refuses a memory limit above the cache's bound.
    async fn within_bound(&self) -> Result<(), StepError> {
        let Some(asked) = parse_bytes(&self.action.value).filter(|_| {
            matches!(
                self.action.parameter.as_str(),
                "maxmemory" | "cache_memlimit"
            )
        }) else {
            return Ok(());
        };
        let (share, host) = match self.cache()? {
            Cache::Redis(settings) => {
                let mut connection = redis::connect_fresh(settings)
                    .await
                    .map_err(StepError::new)?;
                let text: String = ::redis::cmd("INFO")
                    .arg("memory")
                    .query_async(&mut connection)
                    .await
                    .map_err(|err| StepError::new(err.to_string()))?;
                let host = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("total_system_memory:"))
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|&b| b > 0)
                    .ok_or_else(|| {
                        StepError::new(
                            "Redis does not report its host's memory; no bound to check against",
                        )
                    })?;
                (settings.max_memory_share_pct, host)
            }
            Cache::Memcached(settings) => (settings.max_memory_share_pct, this_host_memory()),
        };
        let bound = host / 100 * u64::from(share);
        if asked > bound {
            return Err(StepError::new(format!(
                "{} = {} is above the bound of {share} % of the host's memory ({} MB)",
                self.action.parameter,
                self.action.value,
                bound >> 20
            )));
        }
        Ok(())
    }
}

fn mb_of(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

fn this_host_memory() -> u64 {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    system.total_memory()
}

fn config_refused(err: &::redis::RedisError) -> String {
    match err.code() {
        Some("NOPERM") => format!(
            "this user may not run CONFIG: {}",
            err.detail().unwrap_or_default()
        ),
        Some("ERR") if err.detail().is_some_and(|d| d.contains("unknown command")) => {
            "CONFIG is disabled or renamed on this server; tuning is unavailable".into()
        }
        _ => err.detail().map_or_else(|| err.to_string(), str::to_owned),
    }
}

impl Actuator for CacheSetting {
    fn kind(&self) -> &'static str {
        "cache_setting"
    }

    fn describe(&self, _: &ActionRequest) -> String {
        match &self.cache {
            Ok(Cache::Memcached(_)) => format!("cache_memlimit {}", self.action.value),
            _ => format!("CONFIG SET {} {}", self.action.parameter, self.action.value),
        }
    }

    fn capture<'a>(&'a self, _: &'a ActionRequest) -> BoxFuture<'a, Result<Captured, StepError>> {
        Box::pin(async move {
            validate(&self.action, self.cache()?).map_err(StepError::new)?;
            self.within_bound().await?;
            let prior = self.current().await?;
            Ok(Captured {
                summary: format!("{} = {prior}", self.action.parameter),
                state: serde_json::json!({ "value": prior }),
            })
        })
    }

    fn apply<'a>(
        &'a self,
        _: &'a ActionRequest,
        _: &'a Captured,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            self.set(&self.action.value).await?;
            Ok(Done {
                detail: self.describe_set(&self.action.value),
                attempts: 1,
            })
        })
    }

    fn read_back<'a>(
        &'a self,
        _: &'a ActionRequest,
        expect: Expect<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let expected = match expect {
                Expect::Applied(_) => self.canonical(&self.action.value),
                Expect::Restored(captured) => prior_of(captured)?,
            };
            let now = self.current().await?;
            if now != expected {
                return Err(StepError::new(format!(
                    "{} reads {now}, expected {expected}",
                    self.action.parameter
                )));
            }
            Ok(Done {
                detail: format!("{} = {now} read back", self.action.parameter),
                attempts: 1,
            })
        })
    }

    fn can_roll_back(&self) -> bool {
        true
    }

    fn roll_back<'a>(
        &'a self,
        _: &'a ActionRequest,
        captured: &'a Captured,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let prior = prior_of(captured)?;
            let value = match self.action.parameter.as_str() {
                // memcached states bytes; its command takes megabytes.
                "cache_memlimit" => format!("{}b", prior),
                _ => prior.clone(),
            };
            self.set(&value).await?;
            Ok(Done {
                detail: self.describe_set(&prior),
                attempts: 1,
            })
        })
    }

    fn kept<'a>(&'a self, _: &'a ActionRequest) -> BoxFuture<'a, Option<Result<Done, StepError>>> {
        Box::pin(async move {
            let Ok(Cache::Redis(settings)) = &self.cache else {
                return None;
            };
            if !settings.rewrite_config {
                return None;
            }
            let rewrite = async {
                let mut connection = redis::connect_fresh(settings)
                    .await
                    .map_err(StepError::new)?;
                ::redis::cmd("CONFIG")
                    .arg("REWRITE")
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(|err| StepError::new(config_refused(&err)))?;
                Ok(Done {
                    detail: "CONFIG REWRITE".into(),
                    attempts: 1,
                })
            };
            Some(rewrite.await)
        })
    }
}

impl CacheSetting {
    fn describe_set(&self, value: &str) -> String {
        match &self.cache {
            Ok(Cache::Memcached(_)) => format!("cache_memlimit {value}"),
            _ => format!("CONFIG SET {} {value}", self.action.parameter),
        }
    }
}

fn prior_of(captured: &Captured) -> Result<String, StepError> {
    captured
        .state
        .get("value")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| StepError::new("the captured state is unreadable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_redis_units() {
        assert_eq!(parse_bytes("256mb"), Some(256 << 20));
        assert_eq!(parse_bytes("1GB"), Some(1 << 30));
        assert_eq!(parse_bytes("1048576"), Some(1 << 20));
        assert_eq!(parse_bytes("12x"), None);
    }

    #[test]
    fn only_bounded_settings_are_accepted() {
        let redis = Cache::Redis(
            crate::sources::redis::RedisSettings::from_spec(&engine::model::SourceSpec {
                kind: "redis".into(),
                settings: serde_json::json!({"url": "redis://127.0.0.1"}),
            })
            .unwrap(),
        );
        let action = |p: &str, v: &str| CacheSettingAction {
            parameter: p.into(),
            value: v.into(),
        };
        assert!(validate(&action("maxmemory", "64mb"), &redis).is_ok());
        assert!(validate(&action("maxmemory-policy", "allkeys-lru"), &redis).is_ok());
        assert!(validate(&action("maxmemory", "0"), &redis)
            .unwrap_err()
            .rule
            .contains("no limit"));
        assert_eq!(
            validate(&action("maxmemory-policy", "lru"), &redis)
                .unwrap_err()
                .field,
            "settings.action.value"
        );
        assert_eq!(
            validate(&action("save", "900 1"), &redis)
                .unwrap_err()
                .field,
            "settings.action.parameter"
        );
    }
}

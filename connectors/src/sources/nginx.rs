//! nginx as a read-only load-balancer source: its `stub_status` page read every second
//! (`Active connections`, accepts / handled / requests, reading / writing / waiting),
//! turned into rates. The resource is `lb:<name>`; `response_ms` is how long nginx took to
//! answer the status request itself (nginx's open-source status has no upstream times).
//!
//! The request is a plain `GET` written here: stub_status is served on a loopback or
//! internal `http://` address, and the parse is three lines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::model::{MetricKind, Resource, ResourceSettings, SourceSpec};
use engine::series::{SeriesInfo, Tick, UnixMillis};
use engine::source::runtime::Polled;
use engine::source::{BoxFuture, Poll, Schedule, SourceError, SourceInfo};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::kind::{self, ConfiguredKind, KindEntry, TableEntry};
use super::{Checked, MetricDef};
use crate::Refusal;

/// The kind name in a resource's [`SourceSpec`].
pub const KIND: &str = "nginx";
/// The kind in [`super::KINDS`]: specs of [`KIND`], the `[[nginx]]` table.
pub const ENTRY: KindEntry = KindEntry {
    kind: KIND,
    title: "nginx",
    family: engine::source::SourceFamily::LoadBalancer,
    settle: engine::verdict::Settle {
        secs: 5,
        why: "stub_status counters become rates over one poll",
    },
    toml_table: "nginx",
    from_spec: kind::decode::<NginxSettings>,
    from_toml: kind::table::<NginxEntry>,
};
const TIMEOUT: Duration = Duration::from_secs(2);

/// An nginx's source settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NginxSettings {
    /// The `stub_status` page: `http://127.0.0.1:8080/nginx_status`.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// One `[[nginx]]` entry of the configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NginxEntry {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub group: Option<String>,
}

impl TableEntry for NginxEntry {
    type Settings = NginxSettings;

    fn name(&self) -> &str {
        &self.name
    }

    fn settings(&self) -> NginxSettings {
        NginxSettings {
            url: self.url.clone(),
            group: self.group.clone(),
        }
    }
}

impl NginxSettings {
    /// `(host:port, path)` of the status page.
    fn target(&self) -> Result<(String, String), Refusal> {
        let rest = self.url.strip_prefix("http://").ok_or_else(|| {
            Refusal::new(
                "url",
                format!(
                    "must be the http:// address of nginx's stub_status page, got {:?}",
                    engine::redact::redact(&self.url)
                ),
            )
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        if super::probe::split_host_port(&authority).is_none()
            || path.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Refusal::new(
                "url",
                format!(
                    "not a usable http:// URL: {:?}",
                    engine::redact::redact(&self.url)
                ),
            ));
        }
        Ok((authority, path.to_owned()))
    }

    pub fn validate(&self) -> Result<(), Refusal> {
        self.target()?;
        super::secret::validate_group(&self.group)
    }

    pub fn spec(&self) -> SourceSpec {
        super::spec_of(KIND, self)
    }

    pub fn from_spec(spec: &SourceSpec) -> Result<NginxSettings, Refusal> {
        super::settings_of(spec)
    }
}

impl ConfiguredKind for NginxSettings {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn noun(&self) -> &'static str {
        "load balancer"
    }

    fn spec(&self) -> SourceSpec {
        NginxSettings::spec(self)
    }

    fn validate(&self) -> Result<(), Refusal> {
        NginxSettings::validate(self)
    }

    fn resource_id(&self, name: &str) -> Result<engine::model::ResourceId, Refusal> {
        super::haproxy::resource_id(name)
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
                    "stub_status has no password; leave it empty",
                ));
            }
            // The page, fetched as the source fetches it: whatever fails is the URL's.
            fetch(self)
                .await
                .map_err(|reason| Refusal::new("url", reason))?;
            Ok(Checked::found("nginx (stub_status)"))
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
}

const METRICS: &[MetricDef] = &[
    MetricDef::new("response_ms", Some(MetricKind::Latency), "ms"),
    MetricDef::new("requests_per_s", Some(MetricKind::Throughput), "/s"),
    MetricDef::new("accepts_per_s", Some(MetricKind::Throughput), "/s"),
    MetricDef::new("dropped_per_s", Some(MetricKind::Throughput), "/s"),
    MetricDef::new("active", None, "connections"),
    MetricDef::new("reading", None, "connections"),
    MetricDef::new("writing", None, "connections"),
    MetricDef::new("waiting", None, "connections"),
];

/// The resource an nginx is.
pub fn resource(
    name: &str,
    settings: &NginxSettings,
    defaults: &ResourceSettings,
) -> Result<Resource, Refusal> {
    super::lb_resource(name, METRICS, settings.spec(), defaults, Vec::new())
}

/// What `stub_status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    pub active: u64,
    pub accepts: u64,
    pub handled: u64,
    pub requests: u64,
    pub reading: u64,
    pub writing: u64,
    pub waiting: u64,
}

/// Parses the stub_status page.
pub fn parse_status(text: &str) -> Result<Status, String> {
    let not_it = || {
        format!(
            "this is not nginx's stub_status page: {:?}",
            text.chars().take(80).collect::<String>()
        )
    };
    let mut lines = text.lines();
    let active = lines
        .next()
        .and_then(|l| l.strip_prefix("Active connections:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(not_it)?;
    lines.next(); // "server accepts handled requests"
    let counters: Vec<u64> = lines
        .next()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [accepts, handled, requests] = counters[..] else {
        return Err(not_it());
    };
    let states: Vec<u64> = lines
        .next()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [reading, writing, waiting] = states[..] else {
        return Err(not_it());
    };
    Ok(Status {
        active,
        accepts,
        handled,
        requests,
        reading,
        writing,
        waiting,
    })
}

/// Fetches the page once: its body and how long nginx took.
pub async fn fetch(settings: &NginxSettings) -> Result<(Status, f32), String> {
    let (authority, path) = settings.target()?;
    let started = Instant::now();
    let exchange = async {
        let mut stream =
            tokio::net::TcpStream::connect(&authority)
                .await
                .map_err(|err| match err.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        format!("nginx at {authority}: connection refused")
                    }
                    _ => format!("nginx at {authority}: {err}"),
                })?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: perfpilot\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .map_err(|err| format!("nginx at {authority}: {err}"))?;
        let mut answer = Vec::new();
        (&mut stream)
            .take(64 * 1024)
            .read_to_end(&mut answer)
            .await
            .map_err(|err| format!("nginx at {authority}: {err}"))?;
        Ok::<_, String>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("nginx at {authority} did not answer in 2 s"))??;
    let ms = started.elapsed().as_secs_f32() * 1000.0;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(format!(
            "{} answered {status}: is `stub_status` enabled at that location?",
            settings.url
        ));
    }
    Ok((parse_status(body)?, ms))
}

/// The polled source of `resource`.
pub fn source(
    resource: &Resource,
    settings: NginxSettings,
    interval: Duration,
) -> Result<Polled<NginxPoll>, String> {
    settings.validate()?;
    let info = SourceInfo {
        id: resource.id.to_string(),
        kind: KIND.to_owned(),
        resources: vec![resource.clone()],
        owns: Vec::new(),
    };
    Ok(Polled::new(
        info,
        Schedule::every(interval),
        NginxPoll {
            settings,
            series: MetricDef::series(METRICS, resource),
            last: None,
        },
    ))
}

pub struct NginxPoll {
    settings: NginxSettings,
    series: Arc<[SeriesInfo]>,
    last: Option<(Status, UnixMillis)>,
}

impl NginxPoll {
    async fn tick(&mut self, at: UnixMillis) -> Result<Tick, SourceError> {
        let (status, ms) = fetch(&self.settings).await.map_err(SourceError::new)?;
        let rate = |now: u64, then: u64, seconds: f64| {
            // A restart resets the counters: no rate across it.
            (now >= then).then(|| ((now - then) as f64 / seconds) as f32)
        };
        let (requests, accepts, dropped) = match self.last {
            Some((last, last_at)) if at > last_at => {
                let seconds = (at - last_at) as f64 / 1000.0;
                (
                    rate(status.requests, last.requests, seconds),
                    rate(status.accepts, last.accepts, seconds),
                    rate(
                        status.accepts - status.handled.min(status.accepts),
                        last.accepts - last.handled.min(last.accepts),
                        seconds,
                    ),
                )
            }
            _ => (None, None, None),
        };
        self.last = Some((status, at));
        Ok(Tick {
            at,
            series: self.series.clone(),
            values: vec![
                Some(ms),
                requests,
                accepts,
                dropped,
                Some(status.active as f32),
                Some(status.reading as f32),
                Some(status.writing as f32),
                Some(status.waiting as f32),
            ],
            top_processes: None,
        })
    }
}

impl Poll for NginxPoll {
    fn collect(&mut self, at: UnixMillis) -> BoxFuture<'_, Result<Tick, SourceError>> {
        Box::pin(self.tick(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stub_status_parses() {
        let page = "Active connections: 291 \nserver accepts handled requests\n 16630948 16630948 31070465 \nReading: 6 Writing: 179 Waiting: 106 \n";
        assert_eq!(
            parse_status(page).unwrap(),
            Status {
                active: 291,
                accepts: 16_630_948,
                handled: 16_630_948,
                requests: 31_070_465,
                reading: 6,
                writing: 179,
                waiting: 106
            }
        );
        assert!(parse_status("<html>404</html>")
            .unwrap_err()
            .starts_with("this is not nginx's stub_status page"));
    }

    #[test]
    fn urls_name_the_field() {
        let s = |url: &str| NginxSettings {
            url: url.into(),
            group: None,
        };
        assert_eq!(
            s("http://127.0.0.1:8080/nginx_status").target().unwrap(),
            ("127.0.0.1:8080".to_owned(), "/nginx_status".to_owned())
        );
        assert_eq!(s("http://web/status").target().unwrap().0, "web:80");
        assert_eq!(s("https://x/status").validate().unwrap_err().field, "url");
    }
}

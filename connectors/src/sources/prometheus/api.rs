//! The query API every Prometheus-compatible store speaks (Prometheus, VictoriaMetrics,
//! Thanos, Mimir): `POST /api/v1/query` and `/api/v1/query_range` with a form body, and
//! the answers' errors turned into sentences that say what to fix.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;

use crate::actuators::webhook::Client;

/// Largest answer read: a range query over 1,000 hosts at 720 points is ~20 MB of JSON.
const MAX_ANSWER: usize = 64 * 1024 * 1024;
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A store to query: its base URL (with any path prefix), the `Authorization` header.
#[derive(Clone)]
pub struct Store {
    pub base: String,
    pub authorization: Option<String>,
    pub client: Client,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The header is a secret.
        f.debug_struct("Store")
            .field("base", &engine::redact::redact(&self.base))
            .finish_non_exhaustive()
    }
}

/// Why the store did not answer a query, sorted by whose fault it is (checking new
/// settings refuses the credentials, the query or the store's URL accordingly); in words,
/// the reason it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 401 or 403: the bearer token, or the user and password.
    Credentials(String),
    /// The store refused the query itself (bad PromQL, one of its limits).
    Query(String),
    /// Anything else: the store unreachable or slow, not the query API, an answer that is
    /// not one series per host.
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (Failure::Credentials(reason) | Failure::Query(reason) | Failure::Other(reason)) = self;
        f.write_str(reason)
    }
}

/// For the paths that show a failure as text (a running fleet's health, its charts).
impl From<Failure> for String {
    fn from(failure: Failure) -> String {
        failure.to_string()
    }
}

/// One series of an instant query: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: Option<f64>,
}

/// One series of a range query: labels and `(unix seconds, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, Option<f64>)>,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct MatrixItem {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// A sample value as the API writes it ("1.5", "NaN", "+Inf"): only finite ones count.
fn number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

impl Store {
    /// An instant query at `at_secs` (unix seconds).
    pub async fn query(&self, promql: &str, at_secs: f64) -> Result<Vec<Sample>, Failure> {
        let body = form(&[("query", promql), ("time", &format!("{at_secs:.3}"))]);
        let data = self.post("/api/v1/query", body).await?;
        match data.result_type.as_str() {
            "vector" => {
                let items: Vec<VectorItem> =
                    serde_json::from_value(data.result).map_err(|err| {
                        Failure::Other(format!("the store's answer is not a vector: {err}"))
                    })?;
                Ok(items
                    .into_iter()
                    .map(|i| Sample {
                        labels: i.metric,
                        value: number(&i.value.1),
                    })
                    .collect())
            }
            "scalar" => Err(Failure::Other("the query gives a single number, not one series per host: aggregate it `by (instance)`".into())),
            other => Err(Failure::Other(format!(
                "the query gives a {other}, not one series per host"
            ))),
        }
    }

    /// A range query from `start` to `end` (unix seconds) every `step` seconds.
    pub async fn query_range(
        &self,
        promql: &str,
        start: i64,
        end: i64,
        step: u64,
    ) -> Result<Vec<Range>, String> {
        let body = form(&[
            ("query", promql),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", &step.to_string()),
        ]);
        let data = self.post("/api/v1/query_range", body).await?;
        if data.result_type != "matrix" {
            return Err(format!(
                "the range query gives a {}, not a matrix",
                data.result_type
            ));
        }
        let items: Vec<MatrixItem> = serde_json::from_value(data.result)
            .map_err(|err| format!("the store's answer is not a matrix: {err}"))?;
        Ok(items
            .into_iter()
            .map(|i| Range {
                labels: i.metric,
                points: i.values.into_iter().map(|(t, v)| (t, number(&v))).collect(),
            })
            .collect())
    }

    /// The store's global scrape interval, when it publishes its configuration (Prometheus
    /// does; other stores may not, and the caller falls back to a default).
    pub async fn scrape_interval(&self) -> Option<Duration> {
        let (status, body) = self.send("GET", "/api/v1/status/config", None).await.ok()?;
        if status != 200 {
            return None;
        }
        #[derive(Deserialize)]
        struct Config {
            data: ConfigData,
        }
        #[derive(Deserialize)]
        struct ConfigData {
            yaml: String,
        }
        let config: Config = serde_json::from_slice(&body).ok()?;
        // The first `scrape_interval` of the YAML is the global one (Prometheus writes
        // `global:` first).
        let line = config
            .data
            .yaml
            .lines()
            .find_map(|l| l.trim().strip_prefix("scrape_interval:"))?;
        parse_duration(line.trim())
    }

    /// The base URL as messages quote it (a credential in it masked).
    fn shown_base(&self) -> String {
        engine::redact::redact(&self.base)
    }

    async fn post(&self, path: &str, body: String) -> Result<Data, Failure> {
        let (status, bytes) = self
            .send("POST", path, Some(body))
            .await
            .map_err(Failure::Other)?;
        let answer: Result<Answer, _> = serde_json::from_slice(&bytes);
        match (status, answer) {
            (401 | 403, _) => Err(Failure::Credentials(format!(
                "the store refused our credentials (HTTP {status}): check the bearer token or the user and password"
            ))),
            (_, Ok(answer)) if answer.status == "success" => answer
                .data
                .ok_or_else(|| Failure::Other("the store answered success without data".to_owned())),
            (_, Ok(answer)) => Err(Failure::Query(format!(
                "the store refused the query ({}): {}",
                answer.error_type.as_deref().unwrap_or("error"),
                answer.error.as_deref().unwrap_or("no reason given")
            ))),
            (404, Err(_)) => Err(Failure::Other(format!(
                "{}{path} does not exist (HTTP 404): is the URL the store's base (http://host:9090), without /api/v1?",
                self.shown_base()
            ))),
            (_, Err(_)) => Err(Failure::Other(format!(
                "{}{path} answered HTTP {status} with something that is not the Prometheus query API: {:?}",
                self.shown_base(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
            ))),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Bytes), String> {
        let uri = format!("{}{path}", self.base);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(&uri)
            .header("accept", "application/json")
            .header(
                "user-agent",
                concat!("perfpilot/", env!("CARGO_PKG_VERSION")),
            );
        if body.is_some() {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        if let Some(value) = &self.authorization {
            request = request.header("authorization", value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|err| format!("url: cannot make a request to {}: {err}", self.shown_base()))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|err| {
                format!(
                    "cannot reach the store at {}: {}",
                    self.shown_base(),
                    reason(&err)
                )
            })?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|err| format!("reading the store's answer failed: {err}"))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| {
            format!(
                "the store at {} did not answer within {} s",
                self.shown_base(),
                TIMEOUT.as_secs()
            )
        })?
    }
}

/// The innermost cause of a client error ("connection refused"), not hyper's wrapper.
fn reason(err: &(dyn std::error::Error + 'static)) -> String {
    let mut inner: &dyn std::error::Error = err;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let text = inner.to_string();
    // io::Error prints "Connection refused (os error 111)".
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text,
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// `15s`, `1m`, `500ms`, `1m30s` (Prometheus durations without days or weeks).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim().trim_matches('"');
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let (number, tail) = rest.split_at(digits);
        let n: u64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        total += match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return None,
        };
        rest = next;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_prometheus_writes_them() {
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("\"2m\""), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn values_other_than_finite_numbers_are_gaps() {
        assert_eq!(number("1.5"), Some(1.5));
        assert_eq!(number("NaN"), None);
        assert_eq!(number("+Inf"), None);
    }
}

//! Validation of custom-metric pushes: the JSON body a client POSTs to feed `custom:<id>`
//! resources.
//!
//! It sits in the engine, not the server, so the rules (names, finiteness, time window,
//! batch size) are one pure function testable without HTTP, and the browser can check a
//! body before sending it. Validation is all-or-nothing: every sample is checked first
//! and the accepted list is returned only when all pass, so a rejected body changes
//! nothing. Errors name the field (`samples[3].value`) and the rule it broke.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::ResourceType;
use crate::series::{SeriesInfo, SeriesKey, UnixMillis};

/// Most samples one body may carry.
pub const MAX_SAMPLES: usize = 1_000;
/// How far ahead of the server clock a timestamp may be (clock skew allowance).
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1_000;
/// How far back a timestamp may be; older samples have left raw retention anyway.
pub const MAX_PAST_MS: i64 = 60 * 60 * 1_000;
/// Errors listed in one rejection; the rest are counted.
const MAX_LISTED_ERRORS: usize = 20;
const FIELDS: &str = "resource, metric, value, timestamp";

/// One accepted sample; `timestamp` is the server's `now` when the client sent none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushedSample {
    pub custom_id: u32,
    pub metric: String,
    pub value: f64,
    pub timestamp: UnixMillis,
}

impl PushedSample {
    pub fn resource_type(&self) -> ResourceType {
        ResourceType::Custom(self.custom_id)
    }

    pub fn series_key(&self) -> SeriesKey {
        SeriesKey::new(self.resource_type().to_string(), self.metric.clone())
    }

    /// Metadata for registering the series on first push. Pushes carry no kind or unit,
    /// so both stay open.
    pub fn series_info(&self) -> SeriesInfo {
        SeriesInfo::new(
            self.series_key(),
            self.resource_type(),
            self.resource_type().label(),
            None,
            "",
        )
    }
}

/// Which rule a field broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum PushRule {
    InvalidJson { detail: String },
    WrongShape,
    UnknownField { expected: String },
    Missing,
    NotAString,
    NotCustomResource,
    BadMetricName,
    NotANumber,
    NotFinite,
    NotAnInteger,
    TooFarInFuture,
    TooFarInPast,
    Empty,
    TooMany { count: usize },
}

impl fmt::Display for PushRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushRule::InvalidJson { detail } => write!(f, "is not valid JSON ({detail})"),
            PushRule::WrongShape => {
                f.write_str("must be an object {\"samples\": [...]} or a single sample object")
            }
            PushRule::UnknownField { expected } => {
                write!(f, "is not a known field (expected {expected})")
            }
            PushRule::Missing => f.write_str("is required"),
            PushRule::NotAString => f.write_str("must be a string"),
            PushRule::NotCustomResource => {
                f.write_str("must be a custom resource `custom:<id>` with id 0..=4294967295")
            }
            PushRule::BadMetricName => f.write_str("must be 1 to 64 characters of a-z, 0-9 and _"),
            PushRule::NotANumber => f.write_str("must be a number"),
            PushRule::NotFinite => f.write_str("must be a finite number (within ±3.4e38)"),
            PushRule::NotAnInteger => f.write_str("must be an integer (unix milliseconds)"),
            PushRule::TooFarInFuture => {
                f.write_str("must not be more than 5 minutes in the future")
            }
            PushRule::TooFarInPast => f.write_str("must not be more than 1 hour in the past"),
            PushRule::Empty => f.write_str("must contain at least one sample"),
            PushRule::TooMany { count } => {
                write!(
                    f,
                    "must contain at most {MAX_SAMPLES} samples (got {count})"
                )
            }
        }
    }
}

/// One broken rule: `samples[3].value: must be a finite number`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct FieldError {
    pub field: String,
    pub rule: PushRule,
}

/// Why a body was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct PushRejected {
    /// The first errors found, in body order.
    pub errors: Vec<FieldError>,
    /// Errors found beyond the listed ones.
    pub more: usize,
}

impl fmt::Display for PushRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        if self.more > 0 {
            write!(f, "; and {} more errors", self.more)?;
        }
        Ok(())
    }
}

impl PushRejected {
    fn one(field: &str, rule: PushRule) -> Self {
        Self {
            errors: vec![FieldError {
                field: field.to_owned(),
                rule,
            }],
            more: 0,
        }
    }
}

/// Parses and validates a push body against the server clock `now`.
pub fn parse_push(body: &[u8], now: UnixMillis) -> Result<Vec<PushedSample>, PushRejected> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        PushRejected::one(
            "body",
            PushRule::InvalidJson {
                detail: e.to_string(),
            },
        )
    })?;
    validate_push(&value, now)
}

/// Validates an already parsed body; see [`parse_push`].
pub fn validate_push(body: &Value, now: UnixMillis) -> Result<Vec<PushedSample>, PushRejected> {
    let Value::Object(top) = body else {
        return Err(PushRejected::one("body", PushRule::WrongShape));
    };
    let mut errors = Errors::default();
    let samples = if let Some(list) = top.get("samples") {
        for key in top.keys().filter(|k| *k != "samples") {
            errors.push(
                key.clone(),
                PushRule::UnknownField {
                    expected: "samples".into(),
                },
            );
        }
        let Value::Array(list) = list else {
            return Err(PushRejected::one("samples", PushRule::WrongShape));
        };
        if list.is_empty() {
            return Err(PushRejected::one("samples", PushRule::Empty));
        }
        if list.len() > MAX_SAMPLES {
            return Err(PushRejected::one(
                "samples",
                PushRule::TooMany { count: list.len() },
            ));
        }
        list.iter()
            .enumerate()
            .filter_map(|(i, item)| sample(item, &format!("samples[{i}]."), now, &mut errors))
            .collect()
    } else {
        sample(body, "", now, &mut errors).into_iter().collect()
    };
    errors.finish().map(|()| samples)
}

#[derive(Default)]
struct Errors {
    listed: Vec<FieldError>,
    more: usize,
}

impl Errors {
    fn push(&mut self, field: String, rule: PushRule) {
        if self.listed.len() < MAX_LISTED_ERRORS {
            self.listed.push(FieldError { field, rule });
        } else {
            self.more += 1;
        }
    }

    fn finish(self) -> Result<(), PushRejected> {
        if self.listed.is_empty() {
            Ok(())
        } else {
            Err(PushRejected {
                errors: self.listed,
                more: self.more,
            })
        }
    }
}

fn sample(
    item: &Value,
    prefix: &str,
    now: UnixMillis,
    errors: &mut Errors,
) -> Option<PushedSample> {
    let Value::Object(obj) = item else {
        let field = prefix.strip_suffix('.').unwrap_or("body");
        errors.push(field.to_owned(), PushRule::WrongShape);
        return None;
    };
    let before = errors.listed.len() + errors.more;
    let field = |name: &str| format!("{prefix}{name}");
    for key in obj.keys() {
        if !matches!(key.as_str(), "resource" | "metric" | "value" | "timestamp") {
            errors.push(
                field(key),
                PushRule::UnknownField {
                    expected: FIELDS.into(),
                },
            );
        }
    }
    let custom_id = string_field(obj, "resource", &field, errors).and_then(|s| {
        let id = s
            .strip_prefix("custom:")
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|id| id.parse::<u32>().ok());
        if id.is_none() {
            errors.push(field("resource"), PushRule::NotCustomResource);
        }
        id
    });
    let metric = string_field(obj, "metric", &field, errors).and_then(|m| {
        let ok = (1..=64).contains(&m.len())
            && m.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            errors.push(field("metric"), PushRule::BadMetricName);
        }
        ok.then(|| m.to_owned())
    });
    let value = match obj.get("value") {
        None => {
            errors.push(field("value"), PushRule::Missing);
            None
        }
        Some(Value::Number(n)) => match n.as_f64() {
            // History stores f32: a finite f64 beyond f32's range would become infinite.
            Some(v) if v.is_finite() && (v as f32).is_finite() => Some(v),
            _ => {
                errors.push(field("value"), PushRule::NotFinite);
                None
            }
        },
        Some(_) => {
            errors.push(field("value"), PushRule::NotANumber);
            None
        }
    };
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => Some(now),
        Some(Value::Number(n)) => match n.as_i64() {
            None => {
                errors.push(field("timestamp"), PushRule::NotAnInteger);
                None
            }
            Some(t) if t > now.saturating_add(MAX_FUTURE_MS) => {
                errors.push(field("timestamp"), PushRule::TooFarInFuture);
                None
            }
            Some(t) if t < now.saturating_sub(MAX_PAST_MS) => {
                errors.push(field("timestamp"), PushRule::TooFarInPast);
                None
            }
            Some(t) => Some(t),
        },
        Some(_) => {
            errors.push(field("timestamp"), PushRule::NotAnInteger);
            None
        }
    };
    if errors.listed.len() + errors.more != before {
        return None;
    }
    Some(PushedSample {
        custom_id: custom_id?,
        metric: metric?,
        value: value?,
        timestamp: timestamp?,
    })
}

fn string_field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    field: &impl Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<&'a str> {
    match obj.get(name) {
        None => {
            errors.push(field(name), PushRule::Missing);
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(field(name), PushRule::NotAString);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn reject(body: &str) -> PushRejected {
        parse_push(body.as_bytes(), NOW).expect_err(body)
    }

    fn first(body: &str) -> String {
        reject(body).errors[0].to_string()
    }

    #[test]
    fn accepts_a_batch_and_a_single_object() {
        let batch = parse_push(
            br#"{"samples":[
                {"resource":"custom:42","metric":"queue_depth","value":3.5,"timestamp":1700000000000},
                {"resource":"custom:0","metric":"x_1","value":-2}
            ]}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(
            batch,
            vec![
                PushedSample {
                    custom_id: 42,
                    metric: "queue_depth".into(),
                    value: 3.5,
                    timestamp: 1_700_000_000_000,
                },
                PushedSample {
                    custom_id: 0,
                    metric: "x_1".into(),
                    value: -2.0,
                    timestamp: NOW,
                },
            ]
        );
        assert_eq!(
            batch[0].series_key(),
            SeriesKey::new("custom:42", "queue_depth")
        );
        assert_eq!(
            batch[0].series_info().resource_type,
            ResourceType::Custom(42)
        );
        let single = parse_push(
            br#"{"resource":"custom:4294967295","metric":"m","value":1e30}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(single[0].custom_id, u32::MAX);
    }

    #[test]
    fn names_the_field_and_the_rule() {
        let s = |fields: &str| {
            format!(
                r#"{{"samples":[{{"resource":"custom:1","metric":"ok","value":1}},{{{fields}}}]}}"#
            )
        };
        assert_eq!(
            first(&s(r#""resource":"custom:1","metric":"ok","value":"3""#)),
            "samples[1].value: must be a number"
        );
        assert_eq!(
            first(&s(r#""resource":"custom:1","metric":"ok","value":1e300"#)),
            "samples[1].value: must be a finite number (within ±3.4e38)"
        );
        assert_eq!(
            first(&s(r#""resource":"cpu","metric":"ok","value":1"#)),
            "samples[1].resource: must be a custom resource `custom:<id>` with id 0..=4294967295"
        );
        for bad in [
            "custom:",
            "custom:+1",
            "custom:4294967296",
            "custom:-1",
            "custom:1x",
        ] {
            let body = s(&format!(r#""resource":"{bad}","metric":"ok","value":1"#));
            assert_eq!(
                reject(&body).errors[0].rule,
                PushRule::NotCustomResource,
                "{bad}"
            );
        }
        let long = "a".repeat(65);
        for bad in ["", "Queue", "a-b", "é", long.as_str()] {
            let body = s(&format!(
                r#""resource":"custom:1","metric":"{bad}","value":1"#
            ));
            assert_eq!(
                reject(&body).errors[0].to_string(),
                "samples[1].metric: must be 1 to 64 characters of a-z, 0-9 and _",
                "{bad:?}"
            );
        }
        assert_eq!(
            first(&s(
                r#""resource":"custom:1","metric":"ok","value":1,"timestamp":1.5"#
            )),
            "samples[1].timestamp: must be an integer (unix milliseconds)"
        );
        assert_eq!(
            first(&s(r#""resource":"custom:1","metric":"ok","value":1,"timestmap":1"#)),
            "samples[1].timestmap: is not a known field (expected resource, metric, value, timestamp)"
        );
        assert_eq!(
            first(&s(r#""metric":"ok","value":1"#)),
            "samples[1].resource: is required"
        );
        assert_eq!(
            first(&s(r#""resource":7,"metric":"ok","value":1"#)),
            "samples[1].resource: must be a string"
        );
    }

    #[test]
    fn timestamps_must_be_near_now() {
        let at =
            |t: i64| format!(r#"{{"resource":"custom:1","metric":"m","value":1,"timestamp":{t}}}"#);
        assert!(parse_push(at(NOW + MAX_FUTURE_MS).as_bytes(), NOW).is_ok());
        assert!(parse_push(at(NOW - MAX_PAST_MS).as_bytes(), NOW).is_ok());
        assert_eq!(
            first(&at(NOW + MAX_FUTURE_MS + 1)),
            "timestamp: must not be more than 5 minutes in the future"
        );
        assert_eq!(
            first(&at(NOW - MAX_PAST_MS - 1)),
            "timestamp: must not be more than 1 hour in the past"
        );
    }

    #[test]
    fn nothing_is_accepted_when_one_sample_is_bad() {
        let mut items: Vec<String> = (0..10)
            .map(|i| format!(r#"{{"resource":"custom:{i}","metric":"m","value":{i}}}"#))
            .collect();
        items[3] = r#"{"resource":"custom:3","metric":"m","value":null}"#.into();
        let err = reject(&format!(r#"{{"samples":[{}]}}"#, items.join(",")));
        assert_eq!(err.errors.len(), 1);
        assert_eq!(
            err.errors[0].to_string(),
            "samples[3].value: must be a number"
        );
    }

    #[test]
    fn every_error_is_reported_up_to_a_limit() {
        let items: Vec<&str> = vec![r#"{"resource":"cpu","metric":"BAD","value":"x"}"#; 30];
        let err = reject(&format!(r#"{{"samples":[{}]}}"#, items.join(",")));
        assert_eq!(err.errors.len(), MAX_LISTED_ERRORS);
        assert_eq!(err.more, 90 - MAX_LISTED_ERRORS);
        assert!(err.to_string().ends_with("; and 70 more errors"));
        assert_eq!(err.errors[1].field, "samples[0].metric");
    }

    #[test]
    fn batch_shape_and_size_are_checked() {
        assert_eq!(
            first("[]"),
            "body: must be an object {\"samples\": [...]} or a single sample object"
        );
        assert!(first("{nope").starts_with("body: is not valid JSON"));
        assert_eq!(
            first(r#"{"samples":[]}"#),
            "samples: must contain at least one sample"
        );
        assert_eq!(
            first(r#"{"samples":{}}"#),
            "samples: must be an object {\"samples\": [...]} or a single sample object"
        );
        assert_eq!(
            first(r#"{"samples":[3]}"#),
            "samples[0]: must be an object {\"samples\": [...]} or a single sample object"
        );
        assert_eq!(
            first(r#"{"samples":[{"resource":"custom:1","metric":"m","value":1}],"extra":1}"#),
            "extra: is not a known field (expected samples)"
        );
        let one = r#"{"resource":"custom:1","metric":"m","value":1}"#;
        let ok = format!(r#"{{"samples":[{}]}}"#, vec![one; MAX_SAMPLES].join(","));
        assert_eq!(parse_push(ok.as_bytes(), NOW).unwrap().len(), MAX_SAMPLES);
        let too_many = format!(
            r#"{{"samples":[{}]}}"#,
            vec![one; MAX_SAMPLES + 1].join(",")
        );
        assert_eq!(
            first(&too_many),
            "samples: must contain at most 1000 samples (got 1001)"
        );
    }
}

//! The one error of every server function, and the body shape of every refusal the server
//! sends (the JSON routes wrap it in `server::http::ApiError`).
//!
//! It carries its HTTP status, so the browser can tell "you may not" from "try again", and
//! the field it is about when there is one, so a form can put the message next to it. On
//! the wire it is `{"status": 422, "error": "target.value: must be …", "field":
//! "target.value"}`; the server's router answers a failed server function with the status
//! in the body (server_fn itself always says 500).

use std::fmt;

use engine::error::EngineError;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// One rule a request broke, when it broke several (a push with many samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldRule {
    pub field: String,
    pub rule: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppError {
    pub status: u16,
    /// What a person reads: names the field and the rule, or the reason.
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldRule>,
}

impl AppError {
    /// A refusal with its message; a credential the message quotes (a URL's password, a
    /// `password=` of a DSN, a bearer token) is masked, so no answer or form echoes one.
    pub fn new(status: u16, error: impl Into<String>) -> AppError {
        AppError {
            status,
            error: engine::redact::redact(&Into::<String>::into(error)),
            field: None,
            errors: Vec::new(),
        }
    }

    /// A 400: the request itself is malformed (syntax, a missing or undecodable argument).
    pub fn bad_request(field: &str, rule: impl fmt::Display) -> AppError {
        AppError::new(400, format!("{field}: {rule}")).with_field(field)
    }

    /// A 422: well-formed, but a value breaks a rule.
    pub fn invalid(field: &str, rule: impl fmt::Display) -> AppError {
        AppError::new(422, format!("{field}: {rule}")).with_field(field)
    }

    pub fn forbidden(message: impl Into<String>) -> AppError {
        AppError::new(403, message)
    }

    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError::new(404, message)
    }

    /// A 503: the server cannot do it now (its database failed, a part is not running).
    pub fn unavailable(reason: impl Into<String>) -> AppError {
        AppError::new(503, reason)
    }

    pub fn with_field(mut self, field: &str) -> AppError {
        self.field = Some(field.to_owned());
        self
    }

    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status)
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)
    }
}

impl std::error::Error for AppError {}

/// An engine refusal: 404 unknown, 409 conflict, 422 invalid, with the engine's message
/// (which names the field and the rule).
impl From<EngineError> for AppError {
    fn from(err: EngineError) -> AppError {
        let status = if err.is_forbidden() {
            403
        } else if err.is_not_found() {
            404
        } else if err.is_conflict() {
            409
        } else {
            422
        };
        let field = match &err {
            EngineError::Invalid { field, .. } => Some(field.clone()),
            _ => None,
        };
        AppError {
            status,
            error: engine::redact::redact(&err.to_string()),
            field,
            errors: Vec::new(),
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = crate::codec::JsonStrEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> AppError {
        use ServerFnErrorErr::*;
        // The arguments could not be read: the caller's mistake, not the server's. In the
        // browser, `Request`/`Deserialization` are a network or version problem; the status
        // there is only informative.
        let status = match &value {
            Args(_) | MissingArg(_) | Deserialization(_) | Request(_) | Serialization(_) => 400,
            UnsupportedRequestMethod(_) => 405,
            Registration(_) | ServerError(_) | MiddlewareError(_) | Response(_) => 500,
        };
        AppError::new(status, value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_refusals_keep_their_field_and_status() {
        let err = AppError::from(EngineError::invalid("target.value", "must be ≥ 0"));
        assert_eq!(err.status, 422);
        assert_eq!(err.field.as_deref(), Some("target.value"));
        assert_eq!(err.error, "target.value: must be ≥ 0");
        let unknown = EngineError::UnknownSnapshot { id: 3 };
        assert_eq!(AppError::from(unknown).status, 404);
    }

    #[test]
    fn the_wire_form_is_plain_json_without_a_prefix() {
        let err = AppError::invalid("snapshot", "must be a number");
        let bytes = err.ser();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with('{'), "{text}");
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(value["status"], 422);
        assert_eq!(value["field"], "snapshot");
        assert_eq!(AppError::de(bytes), err);
    }

    #[test]
    fn a_credential_in_a_refusal_is_masked() {
        let err = AppError::invalid(
            "url",
            "not a usable base URL: \"http://perf:SECRET@127.0.0.1:9090\"",
        );
        assert!(!err.error.contains("SECRET"), "{err}");
        assert!(
            err.error.contains("http://perf:***@127.0.0.1:9090"),
            "{err}"
        );
        let engine = AppError::from(EngineError::invalid("source", "password=SECRET host=db"));
        assert!(!engine.error.contains("SECRET"), "{engine}");
        assert_eq!(engine.field.as_deref(), Some("source"));
    }

    #[test]
    fn undecodable_arguments_are_400() {
        let err = AppError::from_server_fn_error(ServerFnErrorErr::Args("bad".into()));
        assert_eq!(err.status, 400);
    }
}

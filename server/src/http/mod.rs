//! The HTTP surface: every route and its middleware. Handlers here only speak HTTP: they
//! authorize and parse, then call [`crate::state`] (the change path for anything that
//! changes configuration) and turn the outcome into a response.

pub mod alerts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod error;
pub mod export;
pub mod forward;
pub mod guard;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod push;
pub mod refusal;
pub mod report;
pub mod router;
pub mod sources;

/// Reads a JSON body. The one rule for every JSON route: a body that is not JSON of the
/// expected shape (syntax, a missing or unknown field, a wrong type) is a 400 naming
/// `body`; a well-formed body whose values break a rule is a 422 from validation.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, error::ApiError> {
    serde_json::from_slice(body).map_err(|err| error::ApiError::bad_request("body", err))
}

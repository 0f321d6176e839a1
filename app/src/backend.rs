//! What server functions reach on the server. The server crate implements [`Backend`]
//! and provides it as context, so `app` never depends on the server crate, and every
//! configuration change goes through [`apply`]: the engine's one owner, then the live side.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use engine::changes::{ChangeRecord, ChangeStore, Mutation};
use engine::error::EngineError;
use engine::history::History;
use leptos::prelude::*;

use crate::audit::{AuditFilter, AuditRecord};
use crate::identity::{Identity, Role};
use crate::live::Overview;

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Why a change was not made, or was not made durable.
#[derive(Debug, Clone)]
pub enum CommitError {
    /// The engine refused it (nothing changed, no number used): a 4xx.
    Refused(EngineError),
    /// The durable store cannot take it: a 503 with the reason.
    Unavailable(String),
}

pub trait Backend: Send + Sync + 'static {
    fn overview(&self) -> Overview;
    fn store(&self) -> Arc<ChangeStore>;
    fn history(&self) -> Arc<RwLock<History>>;
    /// Applies `mutation` for `actor` and resolves once its journal record is committed;
    /// the live side has been told by then.
    fn commit(
        &self,
        mutation: Mutation,
        actor: Identity,
    ) -> BoxFuture<Result<ChangeRecord, CommitError>>;
    /// Audit entries passing `filter`, newest first; the error is the reason.
    fn audit(&self, filter: AuditFilter) -> BoxFuture<Result<Vec<AuditRecord>, String>>;
    /// Before/after rows, measuring ones first.
    fn comparisons(&self) -> Vec<crate::proof::ComparisonRow>;
    /// Opens a before/after for a manual mark (audited as `actor`'s); the error names the
    /// rule broken.
    fn add_mark(
        &self,
        id: &engine::model::ResourceId,
        label: &str,
        actor: &Identity,
    ) -> Result<(), String>;
}

/// A server-side operation that may wait (e.g. for a durable commit); the error is the
/// user-facing message naming the field and the rule.
pub type Pending<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'static>>;

#[derive(Clone)]
pub struct BackendContext(pub Arc<dyn Backend>);

pub fn backend() -> Result<Arc<dyn Backend>, ServerFnError> {
    use_context::<BackendContext>()
        .map(|context| context.0)
        .ok_or_else(|| ServerFnError::new("the perfpilot backend is not available"))
}

/// Sets the HTTP status of the current server-function response.
pub fn set_status(status: http::StatusCode) {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(status);
    }
}

/// Turns an engine refusal into a 4xx whose message names the field and the rule.
pub fn refuse(err: EngineError) -> ServerFnError {
    set_status(refusal_status(&err));
    ServerFnError::ServerError(err.to_string())
}

/// The HTTP status of an engine refusal: 404 unknown, 409 conflict, 422 invalid. Shared by
/// server functions and the JSON API.
pub fn refusal_status(err: &EngineError) -> http::StatusCode {
    if err.is_not_found() {
        http::StatusCode::NOT_FOUND
    } else if err.is_conflict() {
        http::StatusCode::CONFLICT
    } else {
        http::StatusCode::UNPROCESSABLE_ENTITY
    }
}

/// Who is calling: the [`Identity`] the server's auth layer put into the request. Without
/// one (an in-process call that bypassed the layer) the caller is an anonymous viewer.
pub fn caller() -> Identity {
    use_context::<http::request::Parts>()
        .map(|parts| identity_in(&parts.extensions))
        .unwrap_or_else(|| Identity::anonymous(Role::Viewer, None))
}

/// The identity the auth layer put into a request's extensions; an anonymous viewer when
/// there is none (a router served without the layer acts for nobody).
pub fn identity_in(extensions: &http::Extensions) -> Identity {
    extensions
        .get::<Identity>()
        .cloned()
        .unwrap_or_else(|| Identity::anonymous(Role::Viewer, None))
}

/// The caller, if their role allows `needed`; otherwise a 403 that says what is missing.
pub fn require(needed: Role) -> Result<Identity, ServerFnError> {
    let who = caller();
    if who.may(needed) {
        return Ok(who);
    }
    set_status(http::StatusCode::FORBIDDEN);
    Err(ServerFnError::ServerError(forbidden_message(&who, needed)))
}

/// The one wording of a refusal by role, shared with the non-Leptos routes.
pub fn forbidden_message(who: &Identity, needed: Role) -> String {
    format!(
        "this needs the {needed} role; you are {} ({})",
        who.user, who.role
    )
}

/// Applies one mutation on behalf of `actor` through the engine's single owner and
/// resolves once it is durable (the live side has been told by then). Refusals are 4xx
/// naming the field and rule; a store that cannot commit is a 503 with its reason.
pub async fn apply(mutation: Mutation, actor: &Identity) -> Result<ChangeRecord, ServerFnError> {
    let backend = backend()?;
    match backend.commit(mutation, actor.clone()).await {
        Ok(record) => Ok(record),
        Err(CommitError::Refused(err)) => Err(refuse(err)),
        Err(CommitError::Unavailable(reason)) => Err(unavailable(reason)),
    }
}

/// A 503 whose message says why the server cannot do it now.
pub fn unavailable(reason: String) -> ServerFnError {
    set_status(http::StatusCode::SERVICE_UNAVAILABLE);
    ServerFnError::ServerError(reason)
}

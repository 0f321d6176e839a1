//! The one error of the JSON routes, and the role extractor.
//!
//! Every refusal has one body shape, `{"error": "...", "field": "..."}` (`field` when the
//! refusal is about one; `errors` with one entry per broken rule when there are several,
//! as for a push), and its status: 400 malformed, 401/403 who you are, 404 unknown, 409
//! conflict, 413/429 limits, 422 a rule broken, 503 cannot now. It wraps the app's
//! [`AppError`], so a server function and a JSON route refuse the same thing the same way.

use std::marker::PhantomData;

use app::error::AppError;
use app::identity::{Identity, Role};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::error::EngineError;

#[derive(Debug)]
pub struct ApiError {
    pub error: AppError,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        AppError::new(status.as_u16(), message).into()
    }

    /// A 400: the body or a parameter cannot be read.
    pub fn bad_request(field: &str, rule: impl std::fmt::Display) -> ApiError {
        AppError::bad_request(field, rule).into()
    }

    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> ApiError {
        ApiError {
            error,
            retry_after: None,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> ApiError {
        AppError::from(err).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // `AppError` masks credentials when it is made; its fields are public, so once
        // more here, where every JSON refusal goes out.
        let error = engine::redact::redact(&self.error.error);
        let mut body = serde_json::json!({ "error": error });
        if let Some(field) = &self.error.field {
            body["field"] = field.as_str().into();
        }
        if !self.error.errors.is_empty() {
            body["errors"] = serde_json::to_value(&self.error.errors).unwrap_or_default();
        }
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A role a route needs, as a type: see [`Caller`].
pub trait Needs: Send + Sync + 'static {
    const ROLE: Role;
}

pub struct ViewerRole;
pub struct EditorRole;
pub struct AdminRole;

impl Needs for ViewerRole {
    const ROLE: Role = Role::Viewer;
}
impl Needs for EditorRole {
    const ROLE: Role = Role::Editor;
}
impl Needs for AdminRole {
    const ROLE: Role = Role::Admin;
}

/// The caller, extracted only if their role allows `R::ROLE`; otherwise the route is
/// refused with 403 naming the role, before its body is read.
pub struct Caller<R: Needs> {
    pub identity: Identity,
    role: PhantomData<R>,
}

pub type Viewer = Caller<ViewerRole>;
pub type Editor = Caller<EditorRole>;
pub type Admin = Caller<AdminRole>;

impl<S: Send + Sync, R: Needs> FromRequestParts<S> for Caller<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The auth layer always sets one; a router served without it acts for nobody.
        let identity = app::backend::identity_in(&parts.extensions);
        if !identity.may(R::ROLE) {
            return Err(
                AppError::forbidden(app::backend::forbidden_message(&identity, R::ROLE)).into(),
            );
        }
        Ok(Caller {
            identity,
            role: PhantomData,
        })
    }
}

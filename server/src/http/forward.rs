//! Edits made on a follower are passed to the leader, so any replica takes them.
//!
//! A replica of a shared store that does not lead sends every edit that reaches it (the
//! server functions that change something, the JSON API's writes, silences and
//! acknowledgements) to the replica the lease names, and answers with the leader's answer.
//! Only the leader changes the configuration, so the change counter, the journal and the
//! Nth-change snapshots keep one history and nothing needs merging; the follower catches
//! up with the store before it answers, so what the person reads next on this replica
//! already holds their edit. Reads are never passed on: each replica shows its own host.
//!
//! Who asked travels with the edit. The follower has identified the caller (a token, the
//! trusted proxy's headers, the anonymous rule) and passes that identity, the client's
//! address, the time and a hash of the body, signed with HMAC-SHA256 under the key the
//! shared store holds (`meta` `replica_key`, made by the first replica). The leader takes
//! the identity from a request only when the signature is right and recent; a request
//! carrying the headers otherwise is a 401. Credentials (cookies, `Authorization`) are not
//! passed on, and the leader's own rate limit applies to the real client's address.
//!
//! While no replica leads (the seconds after a leader died), an edit waits for the next
//! leader up to one takeover; then it is a 503 with `Retry-After`, never half-applied.

use std::time::Duration;

use app::identity::{Identity, Role};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use sha2::{Digest, Sha256};

use crate::state::lease::{Holder, Standing};
use crate::state::AppState;

/// The replica that passed the edit on; its presence makes the leader check the rest.
pub const FORWARDED_BY: &str = "x-perfpilot-forwarded-by";
const IDENTITY: &str = "x-perfpilot-identity";
const AT: &str = "x-perfpilot-forwarded-at";
const SIGNATURE: &str = "x-perfpilot-forwarded-signature";

/// How old a signed edit may be when the leader reads it (the two replicas' clocks and
/// the trip between them): a captured one cannot be replayed later.
const FRESH_MS: i64 = 30_000;
/// How long the follower waits for the leader's answer.
const LEADER_TIMEOUT: Duration = Duration::from_secs(25);
/// An answer larger than this from the leader is refused (answers to edits are small).
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// Server functions that only read, though called with POST (Leptos' default): they are
/// answered by the replica asked, from its own data.
const POST_READS: [&str; 4] = [
    "/api/overview",
    "/api/changes",
    "/api/snapshot_diff",
    "/api/tokens",
];

/// What the leader needs of the request besides the signed headers.
const PASSED_ON: [HeaderName; 3] = [header::CONTENT_TYPE, header::ACCEPT, header::REFERER];
/// What the caller needs of the leader's answer.
const PASSED_BACK: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::RETRY_AFTER,
    header::CACHE_CONTROL,
];

/// The middleware of the routes that change things: a follower passes the edit on; the
/// leader accepts an edit passed to it with the identity it carries.
pub async fn edits(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.headers().contains_key(FORWARDED_BY) {
        return match accept(&state, request).await {
            Ok(request) => next.run(request).await,
            Err(refusal) => refusal,
        };
    }
    if !is_edit(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    match leader(&state).await {
        Ok(None) => next.run(request).await,
        Ok(Some(holder)) => pass(&state, &holder, request).await,
        Err(refusal) => refusal,
    }
}

fn is_edit(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) && !POST_READS.contains(&path)
}

/// Who takes this edit: `None` this replica (alone or leading), else the leader. While no
/// replica leads, waits for one up to a takeover.
async fn leader(state: &AppState) -> Result<Option<Holder>, Response> {
    let leadership = &state.monitor.leadership;
    let mut standing = leadership.subscribe();
    let wait = Duration::from_secs(leadership.takeover_secs());
    // Only whether it settled is kept: the watch's guard must not live across an await.
    let _ = tokio::time::timeout(
        wait,
        standing.wait_for(|s| !matches!(s, Standing::Follower { leader: None })),
    )
    .await
    .map(|settled| settled.map(|_| ()));
    let now = leadership.standing();
    match now {
        Standing::Alone | Standing::Leader { .. } => Ok(None),
        Standing::Follower { leader: Some(holder) } => Ok(Some(holder)),
        Standing::Follower { leader: None } => Err(unavailable(format!(
            "no replica leads right now (replica {} waited {} s for one to take over); retry shortly",
            leadership.replica(),
            wait.as_secs()
        ))),
    }
}

/// The signed text: method, path, identity, time and the body's hash, one per line.
fn message(method: &Method, path: &str, identity: &str, at: i64, body: &[u8]) -> Vec<u8> {
    format!(
        "{method}\n{path}\n{identity}\n{at}\n{}",
        hex::encode(Sha256::digest(body))
    )
    .into_bytes()
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn path_of(uri: &axum::http::Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

/// Sends the edit to `holder` and answers with its answer.
async fn pass(state: &AppState, holder: &Holder, request: Request) -> Response {
    let leadership = &state.monitor.leadership;
    let (Some(key), Some(client)) = (leadership.forward_key(), state.forwarder.as_ref()) else {
        return unavailable(
            "this replica cannot pass edits on: the shared store holds no replica key".into(),
        );
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return (
            StatusCode::BAD_REQUEST,
            "the request's body could not be read\n",
        )
            .into_response();
    };
    let identity = parts
        .extensions
        .get::<Identity>()
        .cloned()
        .unwrap_or_else(|| Identity::anonymous(Role::Viewer, None));
    let identity = hex::encode(serde_json::to_vec(&identity).unwrap_or_default());
    let path = path_of(&parts.uri);
    let at = crate::http::auth::now_unix_ms();
    let mut signature = mac(key);
    signature.update(&message(&parts.method, path, &identity, at, &body));
    let signature = hex::encode(signature.finalize().into_bytes());
    let url = format!(
        "{}{}{path}",
        holder.address.trim_end_matches('/'),
        state.settings.base_path()
    );
    let mut out = axum::http::Request::builder()
        .method(parts.method.clone())
        .uri(&url);
    for name in PASSED_ON {
        if let Some(value) = parts.headers.get(&name) {
            out = out.header(name, value);
        }
    }
    let out = out
        .header(FORWARDED_BY, leadership.replica())
        .header(IDENTITY, identity)
        .header(AT, at.to_string())
        .header(SIGNATURE, signature)
        .body(Full::new(body));
    let out = match out {
        Ok(out) => out,
        Err(err) => {
            return unavailable(format!("the leader's address {url:?} is not usable: {err}"))
        }
    };
    let cannot = |why: String| {
        tracing::warn!(leader = %holder.name, %why, "Cannot pass an edit to the leader");
        unavailable(format!(
            "this replica ({}) passes edits to the leader {} at {}, which did not answer: {why}; retry shortly",
            leadership.replica(),
            holder.name,
            holder.address
        ))
    };
    let answer = match tokio::time::timeout(LEADER_TIMEOUT, client.request(out)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) => return cannot(err.to_string()),
        Err(_) => return cannot(format!("no answer within {} s", LEADER_TIMEOUT.as_secs())),
    };
    let (answer_parts, answer_body) = answer.into_parts();
    let answer_body = match Limited::new(answer_body, MAX_ANSWER).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => return cannot(err.to_string()),
    };
    if answer_parts.status.is_success() {
        // Read-your-writes on this replica: the edit is in the store; take it in now
        // rather than at the next follower round.
        if let Err(err) = state.monitor.catch_up().await {
            tracing::warn!(%err, "Cannot catch up after passing an edit on");
        }
        if path.contains("silence") || path.contains("acknowledge") || path.contains("alert") {
            state.monitor.alerting.refresh();
        }
        if path.contains("token") {
            if let Err(err) = state.tokens.load().await {
                tracing::warn!(%err, "Cannot reload the API tokens after passing an edit on");
            }
        }
    }
    let mut response = Response::new(Body::from(answer_body));
    *response.status_mut() = answer_parts.status;
    for name in PASSED_BACK {
        if let Some(value) = answer_parts.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// The leader's side: checks the signature and takes the caller's identity from the
/// edit; anything else carrying the headers is refused.
async fn accept(state: &AppState, request: Request) -> Result<Request, Response> {
    let method = request.method().clone();
    let path = path_of(request.uri()).to_owned();
    let refuse = |why: &str| {
        tracing::warn!(%why, %path, "Refused an edit said to be passed on by a replica");
        (StatusCode::UNAUTHORIZED, format!("{FORWARDED_BY}: {why}\n")).into_response()
    };
    let Some(key) = state.monitor.leadership.forward_key() else {
        return Err(refuse("this perfpilot is not a replica of a shared store"));
    };
    let (mut parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(identity_hex), Some(at), Some(signature)) =
        (header(IDENTITY), header(AT), header(SIGNATURE))
    else {
        return Err(refuse("the identity, time or signature is missing"));
    };
    let Ok(at) = at.parse::<i64>() else {
        return Err(refuse("the time is not a number"));
    };
    if (crate::http::auth::now_unix_ms() - at).abs() > FRESH_MS {
        return Err(refuse(
            "the edit is too old (or the replicas' clocks differ by over 30 s)",
        ));
    }
    let Ok(signature) = hex::decode(signature) else {
        return Err(refuse("the signature is not hex"));
    };
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return Err((StatusCode::BAD_REQUEST, "the body could not be read\n").into_response());
    };
    let mut check = mac(key);
    check.update(&message(&method, &path, &identity_hex, at, &body));
    if check.verify_slice(&signature).is_err() {
        return Err(refuse("the signature does not match"));
    }
    let identity: Option<Identity> = hex::decode(&identity_hex)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok());
    let Some(identity) = identity else {
        return Err(refuse("the identity does not parse"));
    };
    parts.extensions.insert(identity);
    Ok(Request::from_parts(parts, Body::from(body)))
}

fn unavailable(why: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
        format!("{why}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_are_edits_and_the_post_reads_are_not() {
        assert!(is_edit(&Method::POST, "/api/set_target"));
        assert!(is_edit(&Method::DELETE, "/api/v1/silences/3"));
        assert!(is_edit(&Method::PUT, "/api/v1/resources/cpu/target"));
        assert!(!is_edit(&Method::GET, "/api/v1/audit"));
        for read in POST_READS {
            assert!(!is_edit(&Method::POST, read), "{read}");
        }
    }

    #[test]
    fn the_signed_message_binds_method_path_identity_time_and_body() {
        let base = message(&Method::POST, "/api/x", "ab", 5, b"body");
        for other in [
            message(&Method::PUT, "/api/x", "ab", 5, b"body"),
            message(&Method::POST, "/api/y", "ab", 5, b"body"),
            message(&Method::POST, "/api/x", "ac", 5, b"body"),
            message(&Method::POST, "/api/x", "ab", 6, b"body"),
            message(&Method::POST, "/api/x", "ab", 5, b"bodz"),
        ] {
            assert_ne!(base, other);
        }
    }
}

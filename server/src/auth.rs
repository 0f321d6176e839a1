//! Who is asking: puts an [`Identity`] into every request's extensions before any handler
//! runs. Interim: a direct loopback peer is an anonymous admin, anyone else an anonymous
//! viewer. Proxy headers, tokens and roles mapping replace this.

use std::net::SocketAddr;

use app::identity::{Identity, Role};
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;

pub async fn identify(mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let role = match peer {
        Some(ip) if ip.is_loopback() => Role::Admin,
        _ => Role::Viewer,
    };
    request
        .extensions_mut()
        .insert(Identity::anonymous(role, peer));
    next.run(request).await
}

//! Who is asking. [`identify`] runs before every handler and puts an [`Identity`] into the
//! request's extensions; server functions enforce roles with `app::backend::require`, the
//! other routes check `Identity::may` on the extension. Three sources, strongest first:
//!
//! 1. `Authorization: Bearer pp_…` — an API token (stored hashed; a wrong or revoked token
//!    is a 401, never a silent downgrade to anonymous, so automation notices).
//! 2. In `proxy` mode, identity headers (`Remote-User`, `X-Forwarded-User`, …) — trusted
//!    **only** when the TCP peer is inside the `trusted_proxies` CIDRs (Grafana's auth
//!    proxy rule). From any other peer they are ignored and the attempt is logged.
//! 3. Anonymous. In `none` mode on a loopback listener, a *direct* local user (no
//!    forwarding headers: not relayed by a proxy on the same host) is an admin — the
//!    single-person local case. Everyone else is a viewer, unless `allow_anonymous_edit`
//!    makes them editors.
//!
//! The client IP follows the same trust rule: `X-Forwarded-For` is read only when the peer
//! is a trusted proxy, and then the right-most address that is not itself a trusted proxy
//! is the client (the left part of the header is whatever the client chose to send).
//!
//! The settings enforced here ([`AuthSettings`]) are resolved from the flags and the
//! `[auth]` table by [`crate::config::auth`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use app::identity::{AuthSource, Identity, Role, TokenInfo};
use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::config::auth::{AuthMode, AuthSettings};

/// Tokens are `pp_` + 32 random bytes in hex: 256 bits, so a plain SHA-256 is a safe
/// verifier (no password-style stretching needed) and a lookup is one hash.
const TOKEN_PREFIX: &str = "pp_";
const TOKEN_NAME_MAX: usize = 64;
/// At most one "forged identity header" warning per this many ms, so a scanner cannot
/// flood the log.
const FORGED_LOG_EVERY_MS: i64 = 10_000;

/// A stored token: never the secret itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredToken {
    pub info: TokenInfo,
    pub hash_hex: String,
}

fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// API tokens in memory, keyed by hash. Durability is the persistence layer's job: it
/// loads them at start-up and records creations and revocations.
#[derive(Debug, Default)]
pub struct Tokens {
    by_hash: RwLock<HashMap<String, StoredToken>>,
}

impl Tokens {
    /// Replaces every token (start-up, from the database).
    pub fn replace_all(&self, tokens: impl IntoIterator<Item = StoredToken>) {
        *engine::sync::write(&self.by_hash) = tokens
            .into_iter()
            .map(|t| (t.hash_hex.clone(), t))
            .collect();
    }

    /// Mints a token without keeping it: the caller stores it durably, then
    /// [`Tokens::insert`]s it. The secret is returned once and never stored.
    pub fn mint(
        &self,
        name: &str,
        role: Role,
        by: &Identity,
        now_unix_ms: i64,
    ) -> Result<(StoredToken, String), String> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > TOKEN_NAME_MAX {
            return Err(format!(
                "name: must be 1–{TOKEN_NAME_MAX} characters and not blank, got {} characters",
                name.chars().count()
            ));
        }
        engine::text::check_free_text("name", name)?;
        if !by.may(role) {
            return Err(format!(
                "role: you ({}) cannot mint a token with more rights than your own",
                by.role
            ));
        }
        let mut secret_bytes = [0u8; 32];
        getrandom::fill(&mut secret_bytes).map_err(|err| format!("no randomness: {err}"))?;
        let secret = format!("{TOKEN_PREFIX}{}", hex::encode(secret_bytes));
        let hash_hex = hash_token(&secret);
        let token = StoredToken {
            info: TokenInfo {
                // The id is public (lists, audit); it is not derived from the secret.
                id: hex::encode(&Sha256::digest(hash_hex.as_bytes())[..6]),
                name: name.to_owned(),
                role,
                created_by: by.user.clone(),
                created_at_unix_ms: now_unix_ms,
                revoked_at_unix_ms: None,
            },
            hash_hex,
        };
        Ok((token, secret))
    }

    pub fn insert(&self, token: StoredToken) {
        self.by_hash
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.hash_hex.clone(), token);
    }

    /// Whether `id` names a token that may be revoked; the error names the rule.
    pub fn check_revocable(&self, id: &str) -> Result<(), String> {
        let tokens = engine::sync::read(&self.by_hash);
        match tokens.values().find(|t| t.info.id == id) {
            None => Err(format!("id: no token {id:?}")),
            Some(t) if t.info.revoked_at_unix_ms.is_some() => {
                Err(format!("id: token {id:?} is already revoked"))
            }
            Some(_) => Ok(()),
        }
    }

    /// Marks a token revoked; the error names the rule when there is nothing to revoke.
    pub fn revoke(&self, id: &str, now_unix_ms: i64) -> Result<StoredToken, String> {
        let mut tokens = engine::sync::write(&self.by_hash);
        let token = tokens
            .values_mut()
            .find(|t| t.info.id == id)
            .ok_or_else(|| format!("id: no token {id:?}"))?;
        if token.info.revoked_at_unix_ms.is_some() {
            return Err(format!("id: token {id:?} is already revoked"));
        }
        token.info.revoked_at_unix_ms = Some(now_unix_ms);
        Ok(token.clone())
    }

    /// Newest first.
    pub fn list(&self) -> Vec<TokenInfo> {
        let mut list: Vec<TokenInfo> = self
            .by_hash
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|t| t.info.clone())
            .collect();
        list.sort_by(|a, b| {
            b.created_at_unix_ms
                .cmp(&a.created_at_unix_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        list
    }

    fn verify(&self, secret: &str) -> Option<TokenInfo> {
        let tokens = engine::sync::read(&self.by_hash);
        let token = tokens.get(&hash_token(secret))?;
        token
            .info
            .revoked_at_unix_ms
            .is_none()
            .then(|| token.info.clone())
    }
}

/// The authentication runtime shared by every request.
#[derive(Debug)]
pub struct Auth {
    pub settings: AuthSettings,
    /// Whether the main listener is on loopback (anonymous local users may then edit).
    loopback_listener: bool,
    pub tokens: Tokens,
    last_forged_log_ms: AtomicI64,
}

/// Why a request got no identity at all.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    BadToken,
}

impl Auth {
    pub fn new(settings: AuthSettings, listen: SocketAddr, tokens: Tokens) -> Auth {
        Auth {
            settings,
            loopback_listener: listen.ip().is_loopback(),
            tokens,
            last_forged_log_ms: AtomicI64::new(i64::MIN / 2),
        }
    }

    /// What the start-up log says about who may do what.
    pub fn describe(&self) -> String {
        let anonymous = self.anonymous_role(false);
        let relayed = self.anonymous_role(true);
        let mode = match self.settings.mode {
            AuthMode::None => "none",
            AuthMode::Proxy => "proxy",
        };
        let proxies = self
            .settings
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let mut text = format!("auth mode {mode}: anonymous users are {anonymous}s");
        if relayed != anonymous {
            text.push_str(&format!(
                " when they connect directly on loopback, {relayed}s when a proxy relays them"
            ));
        }
        if self.settings.mode == AuthMode::Proxy {
            text.push_str(&format!(
                "; identity headers are trusted only from {proxies}"
            ));
        }
        text.push_str("; API tokens are accepted as `Authorization: Bearer`");
        text
    }

    fn anonymous_role(&self, relayed: bool) -> Role {
        let local_single_user =
            self.settings.mode == AuthMode::None && self.loopback_listener && !relayed;
        if local_single_user {
            Role::Admin
        } else if self.settings.allow_anonymous_edit {
            Role::Editor
        } else {
            Role::Viewer
        }
    }

    fn trusted(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| {
            let ip = canonical(ip);
            self.settings
                .trusted_proxies
                .iter()
                .any(|net| net.contains(&ip))
        })
    }

    /// The client address: the peer, or for a trusted proxy the right-most
    /// `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        if !self.trusted(peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|part| part.trim().parse::<IpAddr>().ok())
            .collect();
        forwarded
            .iter()
            .rev()
            .copied()
            .find(|ip| !self.trusted(Some(*ip)))
            .or_else(|| forwarded.first().copied())
            .or(peer)
    }

    pub fn identify(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        now_unix_ms: i64,
    ) -> Result<Identity, Rejection> {
        let client_ip = self.client_ip(peer, headers);
        if let Some(secret) = bearer(headers) {
            let token = self.tokens.verify(secret).ok_or(Rejection::BadToken)?;
            return Ok(Identity {
                user: format!("token:{}", token.name),
                role: token.role,
                source: AuthSource::Token,
                client_ip,
            });
        }
        let user = first_value(headers, &self.settings.user_headers)
            .or_else(|| first_value(headers, &self.settings.email_headers));
        if self.settings.mode == AuthMode::Proxy {
            if let Some(user) = &user {
                if self.trusted(peer) {
                    return Ok(Identity {
                        user: user.clone(),
                        role: self.role_of_groups(headers),
                        source: AuthSource::Proxy,
                        client_ip,
                    });
                }
                self.log_forged(peer, user, now_unix_ms);
            }
        }
        let relayed = ["x-forwarded-for", "forwarded", "x-real-ip"]
            .iter()
            .any(|name| headers.contains_key(*name))
            || user.is_some();
        Ok(Identity::anonymous(self.anonymous_role(relayed), client_ip))
    }

    fn role_of_groups(&self, headers: &HeaderMap) -> Role {
        self.settings
            .groups_headers
            .iter()
            .flat_map(|name| headers.get_all(name).iter())
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([',', ';']))
            .filter_map(|group| self.settings.group_roles.get(group.trim()).copied())
            .fold(self.settings.default_role, Role::max)
    }

    fn log_forged(&self, peer: Option<IpAddr>, user: &str, now_unix_ms: i64) {
        let last = self.last_forged_log_ms.load(Ordering::Relaxed);
        if now_unix_ms - last < FORGED_LOG_EVERY_MS {
            return;
        }
        if self
            .last_forged_log_ms
            .compare_exchange(last, now_unix_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                peer = ?peer,
                claimed_user = %user.chars().take(64).collect::<String>(),
                "Ignored identity headers from a peer outside trusted_proxies (further ones are logged at most every 10 s)"
            );
        }
    }
}

/// IPv4-mapped IPv6 peers (dual-stack listeners) are matched as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| secret.trim())
}

fn first_value(headers: &HeaderMap, names: &[HeaderName]) -> Option<String> {
    names.iter().find_map(|name| {
        let value = headers.get(name)?.to_str().ok()?.trim();
        (!value.is_empty() && value.len() <= 256).then(|| value.to_owned())
    })
}

pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The middleware: every request leaves with an [`Identity`] in its extensions, or a 401
/// for a bad token.
/// The TCP peer, as `into_make_service_with_connect_info` (or a test's
/// `MockConnectInfo`) reports it.
pub fn peer_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| extensions.get::<MockConnectInfo<SocketAddr>>().map(|c| c.0))
        .map(|addr| addr.ip())
}

pub async fn identify(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    let peer = peer_ip(request.extensions());
    match auth.identify(peer, request.headers(), now_unix_ms()) {
        Ok(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Err(Rejection::BadToken) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the API token is unknown or revoked\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(mode: AuthMode, listen: &str) -> Auth {
        let mut settings = AuthSettings {
            mode,
            ..AuthSettings::default()
        };
        settings
            .group_roles
            .insert("perf-editors".into(), Role::Editor);
        settings
            .group_roles
            .insert("perf-admins".into(), Role::Admin);
        Auth::new(settings, listen.parse().unwrap(), Tokens::default())
    }

    fn with(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn loopback_single_user_is_admin_but_not_when_relayed_or_remote() {
        let local = auth(AuthMode::None, "127.0.0.1:3000");
        let direct = local.identify(ip("127.0.0.1"), &with(&[]), 0).unwrap();
        assert_eq!(
            (direct.role, direct.source),
            (Role::Admin, AuthSource::Anonymous)
        );
        let relayed = local
            .identify(
                ip("127.0.0.1"),
                &with(&[("x-forwarded-for", "10.0.0.9")]),
                0,
            )
            .unwrap();
        assert_eq!(relayed.role, Role::Viewer);
        let public = auth(AuthMode::None, "0.0.0.0:3000");
        assert_eq!(
            public.identify(ip("10.1.1.1"), &with(&[]), 0).unwrap().role,
            Role::Viewer
        );
    }

    #[test]
    fn proxy_headers_count_only_from_trusted_peers() {
        let proxy = auth(AuthMode::Proxy, "127.0.0.1:3000");
        let headers = with(&[
            ("remote-user", "alice"),
            ("remote-groups", "staff, perf-editors"),
            ("x-forwarded-for", "203.0.113.7, 127.0.0.1"),
        ]);
        let trusted = proxy.identify(ip("127.0.0.1"), &headers, 0).unwrap();
        assert_eq!(trusted.user, "alice");
        assert_eq!(trusted.role, Role::Editor);
        assert_eq!(trusted.source, AuthSource::Proxy);
        assert_eq!(trusted.client_ip, ip("203.0.113.7"));

        let forged = proxy.identify(ip("198.51.100.2"), &headers, 0).unwrap();
        assert_eq!(forged.user, Identity::ANONYMOUS);
        assert_eq!(forged.role, Role::Viewer);
        assert_eq!(
            forged.client_ip,
            ip("198.51.100.2"),
            "XFF ignored from untrusted"
        );
    }

    #[test]
    fn highest_group_wins_and_unmapped_users_get_the_default_role() {
        let proxy = auth(AuthMode::Proxy, "127.0.0.1:3000");
        let both = with(&[
            ("x-forwarded-user", "bob"),
            ("x-forwarded-groups", "perf-editors,perf-admins"),
        ]);
        assert_eq!(
            proxy.identify(ip("127.0.0.1"), &both, 0).unwrap().role,
            Role::Admin
        );
        let none = with(&[("x-forwarded-email", "carol@example.com")]);
        let carol = proxy.identify(ip("127.0.0.1"), &none, 0).unwrap();
        assert_eq!(
            (carol.user.as_str(), carol.role),
            ("carol@example.com", Role::Viewer)
        );
    }

    #[test]
    fn tokens_verify_until_revoked_and_bad_ones_are_rejected() {
        let local = auth(AuthMode::None, "0.0.0.0:3000");
        let admin = Identity::anonymous(Role::Admin, None);
        let (token, secret) = local
            .tokens
            .mint("ci deploy", Role::Editor, &admin, 5)
            .unwrap();
        local.tokens.insert(token.clone());
        assert!(secret.starts_with("pp_") && secret.len() == 3 + 64);
        assert_ne!(token.hash_hex, secret, "only the hash is kept");
        let bearer = with(&[("authorization", &format!("Bearer {secret}"))]);
        let who = local.identify(ip("10.0.0.1"), &bearer, 0).unwrap();
        assert_eq!(
            (who.user.as_str(), who.role),
            ("token:ci deploy", Role::Editor)
        );
        local.tokens.revoke(&token.info.id, 6).unwrap();
        assert_eq!(
            local.identify(ip("10.0.0.1"), &bearer, 0),
            Err(Rejection::BadToken)
        );
        assert!(local
            .tokens
            .revoke(&token.info.id, 7)
            .unwrap_err()
            .contains("already revoked"));
        let wrong = with(&[("authorization", "Bearer pp_nope")]);
        assert_eq!(
            local.identify(ip("10.0.0.1"), &wrong, 0),
            Err(Rejection::BadToken)
        );
    }

    #[test]
    fn a_token_cannot_outrank_its_creator() {
        let tokens = Tokens::default();
        let editor = Identity::anonymous(Role::Editor, None);
        let err = tokens.mint("x", Role::Admin, &editor, 0).unwrap_err();
        assert!(err.starts_with("role:"), "{err}");
        assert!(tokens
            .mint("  ", Role::Viewer, &editor, 0)
            .unwrap_err()
            .starts_with("name:"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_cidrs() {
        let proxy = auth(AuthMode::Proxy, "[::]:3000");
        let headers = with(&[("remote-user", "dave")]);
        let who = proxy.identify(ip("::ffff:127.0.0.1"), &headers, 0).unwrap();
        assert_eq!(who.user, "dave");
    }
}

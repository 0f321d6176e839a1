//! The webhook actuator: POSTs a JSON description of the breach (the
//! [`ActionRequest`] plus `"phase": "apply"`) to `url`, optionally signed with
//! `X-Perfpilot-Signature: sha256=<HMAC>`, with retries and backoff. Its receiver's state
//! cannot be read, so the capture is empty and the read-back is the receiver's 2xx; the
//! rollback, when `rollback_url` is set, POSTs the same body with `"phase": "rollback"`.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use engine::actions::ActionRequest;
use engine::actuator::{Actuator, Captured, Done, Expect, StepError};
use engine::model::WebhookAction;
use engine::source::BoxFuture;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;

use super::excerpt;

/// Header carrying `sha256=<hex HMAC-SHA256 of the body>` when a secret is configured.
pub const SIGNATURE_HEADER: &str = "X-Perfpilot-Signature";
const MAX_RESPONSE: usize = 64 * 1024;

pub type Client =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One pooled client for `http://` and `https://` (the system's CA roots; without any, an
/// `https://` receiver fails with a certificate error that says so).
pub fn client() -> Client {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = match builder.with_provider_and_native_roots(provider.clone()) {
        Ok(builder) => builder,
        Err(err) => {
            tracing::warn!(%err, "No CA certificates found; https receivers will be refused");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector)
}

/// Hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub struct Webhook {
    action: WebhookAction,
    client: Client,
    /// The signing secret, or why the one named is missing.
    secret: Result<Option<String>, String>,
}

/// One POST's result.
pub enum Attempt {
    Done(String),
    /// Worth retrying (connection error, timeout, 5xx, 429).
    Retry(String),
    Fatal(String),
}

impl Webhook {
    pub fn new(
        action: WebhookAction,
        client: Client,
        secrets: &BTreeMap<String, String>,
    ) -> Webhook {
        let secret =
            match &action.secret {
                None => Ok(None),
                Some(name) => secrets.get(name).cloned().map(Some).ok_or_else(|| {
                    format!("signing secret `{name}` is not configured on the server")
                }),
            };
        Webhook {
            action,
            client,
            secret,
        }
    }

    async fn deliver(
        &self,
        url: &str,
        phase: &str,
        request: &ActionRequest,
    ) -> Result<Done, StepError> {
        let mut body = serde_json::to_value(request).expect("an ActionRequest always serializes");
        body["phase"] = serde_json::Value::from(phase);
        let secret = match &self.secret {
            Ok(secret) => secret.as_deref(),
            Err(why) => {
                return Err(StepError {
                    error: why.clone(),
                    attempts: 0,
                })
            }
        };
        let timeout = Duration::from_millis(u64::from(self.action.timeout_ms));
        post_json(
            &self.client,
            url,
            &body,
            secret,
            timeout,
            self.action.max_retries + 1,
        )
        .await
    }
}

/// POSTs `body` to `url` (signed when `secret` is given), retrying connection errors,
/// timeouts, 5xx and 429 with exponential backoff up to `tries` attempts; the answer is
/// the receiver's status and the start of its body. Shared by the webhook actuator and
/// the hooks perfpilot calls (a cache's invalidation).
pub async fn post_json(
    client: &Client,
    url: &str,
    body: &serde_json::Value,
    secret: Option<&str>,
    timeout: Duration,
    tries: u32,
) -> Result<Done, StepError> {
    let body = Bytes::from(body.to_string());
    let signature = secret.map(|s| sign(s.as_bytes(), &body));
    // Errors are audited and shown: a credential in the URL is not.
    let shown = engine::redact::redact(url);
    let mut last = String::new();
    for attempt in 1..=tries {
        if attempt > 1 {
            // Exponential backoff keeps a struggling receiver from being hammered.
            tokio::time::sleep(Duration::from_millis(100 << (attempt - 2).min(6))).await;
        }
        let headers: Vec<(&str, String)> = signature
            .iter()
            .map(|sig| (SIGNATURE_HEADER, format!("sha256={sig}")))
            .collect();
        match post_once(client, url, &shown, body.clone(), &headers, timeout).await {
            Attempt::Done(detail) => {
                return Ok(Done {
                    detail,
                    attempts: attempt,
                })
            }
            Attempt::Fatal(error) => {
                return Err(StepError {
                    error,
                    attempts: attempt,
                })
            }
            Attempt::Retry(error) => last = error,
        }
    }
    Err(StepError {
        error: format!("{last} (after {tries} attempts)"),
        attempts: tries,
    })
}

/// One JSON POST. Errors name the receiver as `shown` (an alert channel's URL may carry
/// its token, so it shows only its scheme and host).
pub async fn post_once(
    client: &Client,
    url: &str,
    shown: &str,
    body: Bytes,
    headers: &[(&str, String)],
    timeout: Duration,
) -> Attempt {
    let mut req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "perfpilot");
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let req = match req.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return Attempt::Fatal(format!("invalid request to {shown}: {e}")),
    };
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| {
            // hyper's error says "client error (Connect)"; the cause says what happened.
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            format!("POST {shown}: {e}{cause}")
        })?;
        let status = resp.status();
        let text = match Limited::new(resp.into_body(), MAX_RESPONSE).collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Err(_) => String::new(),
        };
        Ok::<_, String>((status, text))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Attempt::Retry(format!(
            "POST {shown}: no response within {} ms",
            timeout.as_millis()
        )),
        Ok(Err(e)) => Attempt::Retry(e),
        Ok(Ok((status, text))) => {
            let detail = format!("HTTP {}{}", status.as_u16(), excerpt(&text));
            if status.is_success() {
                Attempt::Done(detail)
            } else if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
                Attempt::Retry(detail)
            } else {
                Attempt::Fatal(detail)
            }
        }
    }
}

impl Actuator for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn describe(&self, request: &ActionRequest) -> String {
        format!(
            "POST {} ({})",
            engine::redact::redact(&self.action.url),
            request.recommendation.summary
        )
    }

    fn capture<'a>(&'a self, _: &'a ActionRequest) -> BoxFuture<'a, Result<Captured, StepError>> {
        Box::pin(async {
            Ok(Captured::nothing(
                "a webhook receiver's state cannot be read",
            ))
        })
    }

    fn apply<'a>(
        &'a self,
        request: &'a ActionRequest,
        _: &'a Captured,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(self.deliver(&self.action.url, "apply", request))
    }

    fn read_back<'a>(
        &'a self,
        _: &'a ActionRequest,
        expect: Expect<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        // The receiver's 2xx is the only evidence a webhook can give.
        let detail = match expect {
            Expect::Applied(done) => format!("the receiver accepted it ({})", done.detail),
            Expect::Restored(_) => "the rollback receiver accepted it".to_owned(),
        };
        Box::pin(async move {
            Ok(Done {
                detail,
                attempts: 0,
            })
        })
    }

    fn can_roll_back(&self) -> bool {
        self.action.rollback_url.is_some()
    }

    fn roll_back<'a>(
        &'a self,
        request: &'a ActionRequest,
        _: &'a Captured,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            match &self.action.rollback_url {
                Some(url) => self.deliver(url, "rollback", request).await,
                None => Err(StepError::new("no rollback_url is configured")),
            }
        })
    }
}

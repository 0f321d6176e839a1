//! Email over SMTP (lettre): `smtps://host:465` (TLS), `smtp+starttls://host:587`
//! (STARTTLS, refused if the server cannot upgrade) or `smtp://host:25` (plain: a local
//! relay). A plain-text message whose subject says what happened; its `Message-ID` is
//! derived from the notification's key, so a mail client shows a repeated delivery once.

use engine::alerts::{Notification, NotificationKind};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};

use super::ChannelEntry;
use crate::actuators::webhook::Attempt;

/// How the server is reached, from the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Tls,
    StartTls,
    Plain,
}

/// Scheme, host and port of an SMTP URL, or the rule it breaks.
pub fn parse_url(url: &str) -> Result<(Security, String, u16), String> {
    // The URL itself is not repeated: it may hold credentials.
    let rule = || {
        "url: an email channel needs smtps://host[:port], smtp+starttls://host[:port] or smtp://host[:port] (no user or password in it)".to_owned()
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(rule)?;
    let (security, default_port) = match scheme {
        "smtps" => (Security::Tls, 465),
        "smtp+starttls" => (Security::StartTls, 587),
        "smtp" => (Security::Plain, 25),
        _ => return Err(rule()),
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains(['/', '@', '?']) || authority.is_empty() {
        return Err(rule());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| rule())?),
        None => (authority, default_port),
    };
    if host.is_empty() {
        return Err(rule());
    }
    Ok((security, host.to_owned(), port))
}

/// Checks the email fields of a channel entry.
pub fn validate(entry: &ChannelEntry) -> Result<(), String> {
    parse_url(&entry.url)?;
    let from = entry
        .from
        .as_deref()
        .ok_or("from: an email channel needs a sender address")?;
    from.parse::<Mailbox>()
        .map_err(|err| format!("from: {from:?} is not an email address ({err})"))?;
    if entry.to.is_empty() {
        return Err("to: an email channel needs at least one recipient".into());
    }
    for to in &entry.to {
        to.parse::<Mailbox>()
            .map_err(|err| format!("to: {to:?} is not an email address ({err})"))?;
    }
    crate::sources::secret::validate(&entry.password_file, &entry.password_env)?;
    if entry.username.is_none() && (entry.password_file.is_some() || entry.password_env.is_some()) {
        return Err("username: a password needs a username".into());
    }
    Ok(())
}

/// "[perfpilot] FIRING cpu: p95 90 % > target 65 % for 5 m"
pub fn subject(n: &Notification) -> String {
    let what = match n.kind {
        NotificationKind::Firing => "FIRING",
        NotificationKind::Resolved => "RESOLVED",
        NotificationKind::Outcome => "OPTIMIZER",
        NotificationKind::Test => "TEST",
        NotificationKind::Report => "REPORT",
        NotificationKind::Forecast => "FORECAST",
    };
    let subject = format!("[perfpilot] {what} {}: {}", n.resource, n.summary);
    // Headers are one line; long subjects are cut, not folded.
    subject
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

pub fn body(n: &Notification) -> String {
    let mut text = format!("{}\n\n", n.summary);
    if n.resource_name.is_empty() || n.resource_name == n.resource {
        text.push_str(&format!("Resource: {}\n", n.resource));
    } else {
        text.push_str(&format!("Resource: {} ({})\n", n.resource_name, n.resource));
    }
    if let Some(target) = &n.target {
        text.push_str(&format!("Target:   {target}\n"));
    }
    if let Some(started) = n.started_ms {
        text.push_str(&format!("Since:    {}\n", engine::model::utc_iso(started)));
    }
    if let Some(ended) = n.ended_ms {
        text.push_str(&format!("Until:    {}\n", engine::model::utc_iso(ended)));
    }
    if let Some(url) = &n.url {
        text.push_str(&format!("\n{url}\n"));
    }
    text.push_str(&format!("\n-- \nperfpilot · notification {}\n", n.key));
    text
}

/// `<hex>@perfpilot`: the same key always gives the same id.
pub fn message_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("<{}@perfpilot>", hex::encode(&digest[..16]))
}

pub async fn send(entry: &ChannelEntry, n: &Notification, shown: &str) -> Attempt {
    let (security, host, port) = match parse_url(&entry.url) {
        Ok(parsed) => parsed,
        Err(rule) => return Attempt::Fatal(rule),
    };
    let mut message = Message::builder()
        .subject(subject(n))
        .message_id(Some(message_id(&n.key)))
        .header(ContentType::TEXT_PLAIN);
    match entry.from.as_deref().map(str::parse::<Mailbox>) {
        Some(Ok(from)) => message = message.from(from),
        _ => return Attempt::Fatal("from: not an email address".into()),
    }
    for to in &entry.to {
        match to.parse::<Mailbox>() {
            Ok(to) => message = message.to(to),
            Err(err) => return Attempt::Fatal(format!("to: {to:?}: {err}")),
        }
    }
    let message = match message.body(body(n)) {
        Ok(m) => m,
        Err(err) => return Attempt::Fatal(format!("the message could not be built: {err}")),
    };
    let builder = match security {
        Security::Plain => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            host.as_str(),
        )),
        Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&host),
        Security::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host),
    };
    let mut builder = match builder {
        Ok(b) => b
            .port(port)
            .timeout(Some(std::time::Duration::from_millis(entry.timeout_ms))),
        Err(err) => return Attempt::Fatal(format!("SMTP {shown}: {err}")),
    };
    if let Some(user) = &entry.username {
        match crate::sources::secret::read(&entry.password_file, &entry.password_env).await {
            Ok(password) => {
                builder = builder
                    .credentials(Credentials::new(user.clone(), password.unwrap_or_default()));
            }
            Err(why) => return Attempt::Fatal(why),
        }
    }
    match builder.build().send(message).await {
        Ok(response) => Attempt::Done(format!(
            "SMTP {}{}",
            response.code(),
            response
                .message()
                .next()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )),
        Err(err) if err.is_permanent() => Attempt::Fatal(format!("SMTP {shown}: {err}")),
        Err(err) => Attempt::Retry(format!("SMTP {shown}: {err}")),
    }
}

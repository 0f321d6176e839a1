//! HAProxy's runtime API (the stats socket, unix or TCP): one command per connection (the
//! non-interactive mode), `show info` and `show stat` parsed by their header names, and
//! the server commands failover and traffic shaping use.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Refusal;

/// The most an answer may be (`show stat` of a large configuration stays far below).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Where the runtime API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl Endpoint {
    /// `/run/haproxy/admin.sock`, `unix:/path`, `127.0.0.1:9999` or `tcp:host:port`.
    pub fn parse(text: &str) -> Result<Endpoint, Refusal> {
        let text = text.trim();
        if let Some(path) = text
            .strip_prefix("unix:")
            .or(text.starts_with('/').then_some(text))
        {
            if path.is_empty() || !path.starts_with('/') {
                return Err(Refusal::new(
                    "socket",
                    format!("a unix socket needs an absolute path, got {text:?}"),
                ));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let address = text.strip_prefix("tcp:").unwrap_or(text);
        match crate::sources::probe::split_host_port(address) {
            Some(_) => Ok(Endpoint::Tcp(address.to_owned())),
            None => Err(Refusal::new(
                "socket",
                format!("must be a unix socket path (/run/haproxy/admin.sock) or host:port, got {text:?}"),
            )),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tcp(address) => write!(f, "{address}"),
        }
    }
}

/// Sends one command and answers HAProxy's whole answer.
pub async fn command(endpoint: &Endpoint, line: &str, timeout: Duration) -> Result<String, String> {
    let exchange = async {
        match endpoint {
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|err| connect_words(endpoint, &err))?;
                exchange(stream, endpoint, line).await
            }
            Endpoint::Tcp(address) => {
                let stream = tokio::net::TcpStream::connect(address)
                    .await
                    .map_err(|err| connect_words(endpoint, &err))?;
                exchange(stream, endpoint, line).await
            }
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        format!(
            "HAProxy's runtime API at {endpoint} did not answer in {} ms",
            timeout.as_millis()
        )
    })?
}

/// Writes `line`, reads until HAProxy closes (non-interactive mode: one command each).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    endpoint: &Endpoint,
    line: &str,
) -> Result<String, String> {
    let failed = |err: std::io::Error| format!("HAProxy's runtime API at {endpoint}: {err}");
    stream
        .write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(failed)?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER as u64)
        .read_to_end(&mut answer)
        .await
        .map_err(failed)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn connect_words(endpoint: &Endpoint, err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("HAProxy's runtime API at {endpoint}: connection refused (is HAProxy running, with a `stats socket` there?)")
        }
        std::io::ErrorKind::NotFound => {
            format!("HAProxy's runtime API at {endpoint}: no such socket (is HAProxy running, with a `stats socket` there?)")
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("HAProxy's runtime API at {endpoint}: permission denied (the socket's mode or owner; `stats socket … mode 660 group …`)")
        }
        _ => format!("HAProxy's runtime API at {endpoint}: {err}"),
    }
}

/// What `show info` says that perfpilot uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Info {
    pub version: String,
    pub pid: u64,
    pub uptime_s: u64,
}

pub fn parse_info(text: &str) -> Result<Info, String> {
    let fields: HashMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let number = |name: &str| fields.get(name).and_then(|v| v.parse::<u64>().ok());
    match (fields.get("Version"), number("Pid"), number("Uptime_sec")) {
        (Some(version), Some(pid), Some(uptime_s)) => Ok(Info {
            version: version.to_string(),
            pid,
            uptime_s,
        }),
        _ => Err(format!(
            "`show info` did not answer as HAProxy does: {:?}",
            text.chars().take(120).collect::<String>()
        )),
    }
}

/// One row of `show stat`: a backend's total or one of its servers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatRow {
    pub proxy: String,
    /// `BACKEND` for the backend's total, else the server's name.
    pub name: String,
    pub addr: Option<String>,
    /// `UP`, `DOWN`, `MAINT`, `DRAIN`, `no check`, `UP 1/3`…
    pub status: String,
    pub weight: Option<u32>,
    pub sessions: Option<u64>,
    pub queue: Option<u64>,
    /// Sessions per second over the last second.
    pub rate: Option<u64>,
    /// HTTP requests (backends in http mode) or sessions, ever.
    pub requests: Option<u64>,
    /// 5xx answers + connection errors + response errors, ever.
    pub errors: Option<u64>,
    /// Average response time over the last 1024 requests, ms.
    pub rtime_ms: Option<u64>,
    /// HAProxy's own health check, when it runs one: `L4CON` and its words
    /// (`Layer4 connection problem`), with the detail when it has one.
    pub check: Option<String>,
}

/// Parses `show stat` CSV by its header, keeping the rows of `backend`.
pub fn parse_stat(text: &str, backend: &str) -> Result<Vec<StatRow>, String> {
    let mut lines = text.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| {
            format!(
                "`show stat` did not answer as HAProxy does: {:?}",
                text.chars().take(120).collect::<String>()
            )
        })?;
    let columns: HashMap<&str, usize> =
        header.split(',').enumerate().map(|(i, c)| (c, i)).collect();
    let index = |name: &str| columns.get(name).copied();
    let (px, sv) = (index("pxname"), index("svname"));
    let (Some(px), Some(sv)) = (px, sv) else {
        return Err("`show stat` has no pxname/svname columns".into());
    };
    let mut rows = Vec::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.get(px) != Some(&backend) {
            continue;
        }
        let text = |name: &str| {
            index(name)
                .and_then(|i| cells.get(i))
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string())
        };
        let number = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok());
        let name = cells.get(sv).unwrap_or(&"").to_string();
        if name == "FRONTEND" {
            continue;
        }
        let errors = ["hrsp_5xx", "econ", "eresp"]
            .iter()
            .map(|c| number(c))
            .fold(None, |sum: Option<u64>, v| match (sum, v) {
                (None, v) => v,
                (s, None) => s,
                (Some(s), Some(v)) => Some(s + v),
            });
        rows.push(StatRow {
            proxy: backend.to_owned(),
            name,
            addr: text("addr"),
            status: text("status").unwrap_or_default(),
            weight: number("weight").map(|w| w as u32),
            sessions: number("scur"),
            queue: number("qcur"),
            rate: number("rate"),
            requests: number("req_tot").or_else(|| number("stot")),
            errors,
            rtime_ms: number("rtime"),
            check: text("check_status").map(|status| {
                match (text("check_desc"), text("last_chk")) {
                    (Some(desc), Some(last)) => format!("{status} {desc}: {last}"),
                    (Some(desc), None) => format!("{status} {desc}"),
                    _ => status,
                }
            }),
        });
    }
    Ok(rows)
}

/// The backends (proxies that are not only frontends) `show stat` lists.
pub fn backends(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cells = line.split(',');
            let proxy = cells.next()?;
            (cells.next()? == "BACKEND").then(|| proxy.to_owned())
        })
        .collect();
    names.dedup();
    names
}

/// `set server <backend>/<server> state <state>` — an answer other than empty is
/// HAProxy's refusal.
pub async fn set_state(
    endpoint: &Endpoint,
    backend: &str,
    server: &str,
    state: engine::lb::AdminState,
    timeout: Duration,
) -> Result<(), String> {
    let answer = command(
        endpoint,
        &format!("set server {backend}/{server} state {}", state.as_str()),
        timeout,
    )
    .await?;
    refused(&answer)
}

pub async fn set_weight(
    endpoint: &Endpoint,
    backend: &str,
    server: &str,
    weight: u32,
    timeout: Duration,
) -> Result<(), String> {
    let answer = command(
        endpoint,
        &format!("set weight {backend}/{server} {weight}"),
        timeout,
    )
    .await?;
    refused(&answer)
}

/// `get weight`: the current weight (HAProxy answers `10 (initial 10)`).
pub async fn get_weight(
    endpoint: &Endpoint,
    backend: &str,
    server: &str,
    timeout: Duration,
) -> Result<u32, String> {
    let answer = command(endpoint, &format!("get weight {backend}/{server}"), timeout).await?;
    answer
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| {
            format!(
                "HAProxy refused `get weight {backend}/{server}`: {}",
                answer.trim()
            )
        })
}

fn refused(answer: &str) -> Result<(), String> {
    let answer = answer.trim();
    if answer.is_empty() {
        Ok(())
    } else {
        Err(format!("HAProxy refused it: {answer}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo\n\
fe,FRONTEND,,,1,2,2000,10,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,1,0,2,,,,0,9,0,0,1,0,,1,2,10,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,\n\
web,a,0,0,1,1,,5,0,0,,0,,0,0,0,0,no check,10,1,0,,,5,,,1,3,1,,5,,2,1,,1,,,,0,5,0,0,0,0,,,,5,0,0,,,,,1,,,0,0,4,6,,,,,,,,,,,,127.0.0.1:8001,,http,\n\
web,b,0,0,0,1,,5,0,0,,0,,1,0,0,0,MAINT,5,1,0,,,5,,,1,3,2,,5,,2,0,,1,,,,0,3,0,0,2,0,,,,5,0,0,,,,,1,,,0,0,90,91,,,,,,,,,,,,127.0.0.1:8002,,http,\n\
web,BACKEND,2,3,1,2,200,10,0,0,0,0,,1,0,0,0,UP,15,2,0,,0,5,0,,1,3,0,,10,,1,1,,2,,,,0,8,0,0,2,0,,,,10,0,0,0,0,0,0,1,,,0,0,47,48,,,,,,,,,,,,,,http,roundrobin\n";

    #[test]
    fn show_stat_is_read_by_its_header() {
        let rows = parse_stat(STAT, "web").unwrap();
        assert_eq!(rows.len(), 3);
        let a = &rows[0];
        assert_eq!(
            (a.name.as_str(), a.addr.as_deref(), a.status.as_str()),
            ("a", Some("127.0.0.1:8001"), "no check")
        );
        assert_eq!(
            (a.weight, a.sessions, a.requests, a.rtime_ms),
            (Some(10), Some(1), Some(5), Some(4))
        );
        assert_eq!(rows[1].errors, Some(3), "2 5xx + 1 connection error");
        let total = &rows[2];
        assert_eq!(
            (total.name.as_str(), total.queue, total.requests),
            ("BACKEND", Some(2), Some(10))
        );
        assert_eq!(backends(STAT), ["web"]);
        assert!(parse_stat(STAT, "nope").unwrap().is_empty());
        assert!(parse_stat("Unknown command", "web").is_err());
    }

    #[test]
    fn show_info_gives_version_pid_and_uptime() {
        let info =
            parse_info("Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nPid: 4242\nUptime_sec: 17\n")
                .unwrap();
        assert_eq!(
            info,
            Info {
                version: "2.6.12-1+deb12u4".into(),
                pid: 4242,
                uptime_s: 17
            }
        );
        assert!(parse_info("Permission denied.").is_err());
    }

    #[test]
    fn endpoints_parse_and_say_what_is_wrong() {
        assert_eq!(
            Endpoint::parse("/run/haproxy/admin.sock"),
            Ok(Endpoint::Unix("/run/haproxy/admin.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("unix:/tmp/s"),
            Ok(Endpoint::Unix("/tmp/s".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp:127.0.0.1:9999"),
            Ok(Endpoint::Tcp("127.0.0.1:9999".into()))
        );
        assert_eq!(
            Endpoint::parse("127.0.0.1:9999"),
            Ok(Endpoint::Tcp("127.0.0.1:9999".into()))
        );
        assert_eq!(Endpoint::parse("admin.sock").unwrap_err().field, "socket");
        assert_eq!(
            Endpoint::parse("unix:relative").unwrap_err().field,
            "socket"
        );
    }
}

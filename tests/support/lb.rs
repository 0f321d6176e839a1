//! Load balancing: [`TestBackend`]s that can be made slow, failing or dead, a throwaway
//! [`Haproxy`] in front of them, and [`HttpLoad`], clients counting what they saw.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fs::TempDir;
use crate::sys::{free_port, now_ms};

/// How a [`TestBackend`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendMode {
    Ok,
    /// Answers after this many milliseconds.
    Slow(u64),
    /// `503 Service Unavailable`.
    Failing,
}

/// A small HTTP backend on a free loopback port that can be made slow, failing or dead
/// (its listener closed: connections refused) and brought back, on command.
pub struct TestBackend {
    pub port: u16,
    mode: Arc<std::sync::Mutex<BackendMode>>,
    alive: Arc<std::sync::atomic::AtomicBool>,
    served: Arc<std::sync::atomic::AtomicU64>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Open connections, closed by `kill` as a dying process's would be.
    open: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl TestBackend {
    pub fn start() -> TestBackend {
        let backend = TestBackend {
            port: free_port(),
            mode: Arc::new(std::sync::Mutex::new(BackendMode::Ok)),
            alive: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            served: Arc::default(),
            thread: std::sync::Mutex::new(None),
            open: Arc::default(),
        };
        backend.revive();
        backend
    }

    pub fn set(&self, mode: BackendMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Closes the listener: new connections are refused.
    pub fn kill(&self) {
        use std::sync::atomic::Ordering;
        self.alive.store(false, Ordering::SeqCst);
        // Wakes the accept loop so it drops the listener.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.lock().unwrap().take() {
            let _ = thread.join();
        }
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    pub fn revive(&self) {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = loop {
            match std::net::TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => break listener,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        self.alive.store(true, Ordering::SeqCst);
        let (mode, alive, served) = (self.mode.clone(), self.alive.clone(), self.served.clone());
        let open = self.open.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if !alive.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    let mut open = open.lock().unwrap();
                    open.retain(|s| s.peer_addr().is_ok());
                    open.push(clone);
                }
                let (mode, served) = (mode.clone(), served.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 2048];
                    // Several requests may come on one keep-alive connection.
                    loop {
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buffer) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buffer[..n]),
                            }
                        }
                        let end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        request.drain(..end);
                        let current = *mode.lock().unwrap();
                        let answer: &[u8] = match current {
                            BackendMode::Ok => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                            BackendMode::Slow(ms) => {
                                std::thread::sleep(Duration::from_millis(ms));
                                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                            }
                            BackendMode::Failing => {
                                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
                            }
                        };
                        if stream.write_all(answer).is_err() {
                            return;
                        }
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        *self.thread.lock().unwrap() = Some(thread);
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A throwaway HAProxy 2.6 (Debian's) in front of test backends: its own config in a temp
/// dir, a frontend and an admin-level stats socket, run in the foreground as a child.
/// `reload` does what `haproxy -sf` does in production. Stopped on drop.
pub struct Haproxy {
    pub port: u16,
    pub socket: PathBuf,
    config: PathBuf,
    _dir: TempDir,
    child: std::sync::Mutex<std::process::Child>,
}

impl Haproxy {
    /// Backend `web` with `servers` (name, port) at weight 10, round robin; HAProxy's own
    /// health checks off, so perfpilot's checks decide.
    pub fn start(servers: &[(&str, u16)]) -> Haproxy {
        Self::start_with(servers, "")
    }

    /// As [`Haproxy::start`], with `options` after every `server` line (`check inter
    /// 200` turns HAProxy's own health checks on).
    pub fn start_with(servers: &[(&str, u16)], options: &str) -> Haproxy {
        let port = free_port();
        let mut text = format!(
            "global\n    maxconn 2000\n\n\
             defaults\n    mode http\n    timeout connect 500ms\n    timeout client 10s\n    timeout server 10s\n\n\
             frontend fe\n    bind 127.0.0.1:{port}\n    default_backend web\n\n\
             backend web\n    balance roundrobin\n"
        );
        for (name, server_port) in servers {
            text.push_str(&format!(
                "    server {name} 127.0.0.1:{server_port} weight 10 {options}\n"
            ));
        }
        Self::start_config(&text, port)
    }

    /// HAProxy running `config` (a whole file, e.g. one from `docs/`) with an admin stats
    /// socket added to its `global` section; `port` is what its frontend binds.
    pub fn start_config(config_text: &str, port: u16) -> Haproxy {
        let dir = TempDir::new("perfpilot-haproxy");
        let socket = dir.0.join("admin.sock");
        let config = dir.0.join("haproxy.cfg");
        let text = config_text.replacen(
            "global\n",
            &format!(
                "global\n    stats socket {} mode 600 level admin\n",
                socket.display()
            ),
            1,
        );
        std::fs::write(&config, text).expect("write haproxy.cfg");
        let child = Self::spawn(&config, None);
        let haproxy = Haproxy {
            port,
            socket,
            config,
            _dir: dir,
            child: std::sync::Mutex::new(child),
        };
        haproxy.wait_ready(None);
        haproxy
    }

    fn spawn(config: &std::path::Path, replacing: Option<u32>) -> std::process::Child {
        let mut command = Command::new("haproxy");
        command.arg("-db").arg("-f").arg(config);
        if let Some(old) = replacing {
            command.arg("-sf").arg(old.to_string());
        }
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start haproxy (Debian's haproxy package)")
    }

    /// Waits until the stats socket answers, from a process other than `old`.
    fn wait_ready(&self, old: Option<u32>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(pid) = self.try_pid() {
                if Some(pid) != old {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "haproxy did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_pid(&self) -> Option<u32> {
        let info = self.try_command("show info")?;
        info.lines()
            .find_map(|l| l.strip_prefix("Pid: "))
            .and_then(|p| p.trim().parse().ok())
    }

    pub fn pid(&self) -> u32 {
        self.try_pid().expect("haproxy answers show info")
    }

    fn try_command(&self, line: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(format!("{line}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// One runtime API command's answer.
    pub fn command(&self, line: &str) -> String {
        self.try_command(line)
            .unwrap_or_else(|| panic!("haproxy did not answer {line:?}"))
    }

    /// The `status` column of `show stat` for server `name` of backend `web`.
    pub fn status(&self, name: &str) -> String {
        let stat = self.command("show stat web 4 -1");
        let mut lines = stat.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = header.iter().position(|c| *c == "status").unwrap();
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|cells| cells.get(1) == Some(&name))
            .map(|cells| cells[column].to_owned())
            .unwrap_or_default()
    }

    /// What `get weight web/<name>` says (the current weight).
    pub fn weight(&self, name: &str) -> u32 {
        self.command(&format!("get weight web/{name}"))
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no weight for {name}"))
    }

    /// A new process takes over (`haproxy -sf <old>`), forgetting every runtime change;
    /// answers when the new one serves the socket. Returns the new process id.
    pub fn reload(&self) -> u32 {
        let old = self.pid();
        let new = Self::spawn(&self.config, Some(old));
        let mut child = self.child.lock().unwrap();
        let mut previous = std::mem::replace(&mut *child, new);
        drop(child);
        self.wait_ready(Some(old));
        let _ = previous.wait();
        self.pid()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Requests through a load balancer from a few threads, counting what clients saw.
pub struct HttpLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// (unix ms the request was sent, status or 0 for a connection error, ms it took).
    pub results: Arc<std::sync::Mutex<Vec<(i64, u16, f64)>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl HttpLoad {
    /// `clients` threads, each sending one request at a time to `port`.
    pub fn start(port: u16, clients: usize) -> HttpLoad {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let results: Arc<std::sync::Mutex<Vec<(i64, u16, f64)>>> = Arc::default();
        let threads = (0..clients)
            .map(|_| {
                let (stop, results) = (stop.clone(), results.clone());
                std::thread::spawn(move || {
                    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let started = Instant::now();
                        let at = now_ms();
                        let status = try_get(addr);
                        let ms = started.elapsed().as_secs_f64() * 1000.0;
                        results.lock().unwrap().push((at, status, ms));
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        HttpLoad {
            stop,
            results,
            threads,
        }
    }

    /// Client errors (not 200) of requests sent in `[from, to)` unix ms, and all sent there.
    pub fn errors_between(&self, from: i64, to: i64) -> (usize, usize) {
        let results = self.results.lock().unwrap();
        let inside: Vec<_> = results
            .iter()
            .filter(|(at, _, _)| *at >= from && *at < to)
            .collect();
        (
            inside
                .iter()
                .filter(|(_, status, _)| *status != 200)
                .count(),
            inside.len(),
        )
    }

    /// The p95 of response times (ms) of requests sent in `[from, to)`.
    pub fn p95_between(&self, from: i64, to: i64) -> Option<f64> {
        let results = self.results.lock().unwrap();
        let mut times: Vec<f64> = results
            .iter()
            .filter(|(at, status, _)| *at >= from && *at < to && *status == 200)
            .map(|(_, _, ms)| *ms)
            .collect();
        if times.is_empty() {
            return None;
        }
        times.sort_by(f64::total_cmp);
        Some(times[((times.len() as f64 * 0.95).ceil() as usize).saturating_sub(1)])
    }
}

impl Drop for HttpLoad {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One `GET /` with `Connection: close`: the status, or 0 when the connection failed.
fn try_get(addr: SocketAddr) -> u16 {
    let attempt = || -> std::io::Result<u16> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let text = String::from_utf8_lossy(&answer);
        Ok(text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    };
    attempt().unwrap_or(0)
}

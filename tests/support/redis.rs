//! Throwaway caches: [`Redis`] (plain, with a password, or TLS-only) and [`Memcached`],
//! and [`Load`], a steady stream of GETs with a chosen hit ratio.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::sys::{free_port, run};

/// A throwaway Redis for one test binary: Debian's `redis-server` on a free loopback
/// port, no persistence, its files in a temp dir. Stopped on drop.
pub struct Redis {
    pub port: u16,
    pub password: Option<String>,
    /// For a TLS-only server: the CA that signed its certificate (PEM).
    pub ca_file: Option<PathBuf>,
    dir: PathBuf,
    args: Vec<String>,
}

impl Redis {
    /// Starts one; `password` becomes `requirepass`, `extra` are more `redis-server`
    /// arguments (e.g. `--rename-command CONFIG ""`).
    pub fn start(password: Option<&str>, extra: &[&str]) -> Redis {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("perfpilot-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the redis dir");
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--daemonize".into(),
            "yes".into(),
            "--pidfile".into(),
            dir.join("redis.pid").display().to_string(),
            "--logfile".into(),
            dir.join("redis.log").display().to_string(),
            "--dir".into(),
            dir.display().to_string(),
        ];
        if let Some(password) = password {
            args.extend(["--requirepass".into(), password.to_owned()]);
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let redis = Redis {
            port,
            password: password.map(str::to_owned),
            ca_file: None,
            dir,
            args,
        };
        redis.restart();
        redis
    }

    /// A TLS-only one (`--port 0 --tls-port P`), its certificate for 127.0.0.1 signed by a
    /// throwaway CA made with `openssl` (at [`Redis::ca_file`]).
    pub fn start_tls() -> Redis {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("perfpilot-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the redis dir");
        let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(&dir).args(args));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=perfpilot test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        let path = |name: &str| dir.join(name).display().to_string();
        let args: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            &path("server.crt"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.crt"),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "yes",
            "--pidfile",
            &path("redis.pid"),
            "--logfile",
            &path("redis.log"),
            "--dir",
            &path(""),
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        let redis = Redis {
            port,
            password: None,
            ca_file: Some(dir.join("ca.crt")),
            dir,
            args,
        };
        redis.restart();
        redis
    }

    /// Starts it (again, after [`Redis::kill`]) on the same port, empty.
    pub fn restart(&self) {
        let _ = std::fs::remove_file(self.dir.join("redis.pid"));
        run(Command::new("redis-server").args(&self.args));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.try_cli(&["PING"]).as_deref() != Some("PONG") {
            assert!(std::time::Instant::now() < deadline, "redis did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("redis.pid")) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).output();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while self.try_cli(&["PING"]).is_some() {
                assert!(std::time::Instant::now() < deadline, "redis did not stop");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string()]);
        if let Some(ca) = &self.ca_file {
            command.arg("--tls").arg("--cacert").arg(ca);
        }
        command.args(args);
        if let Some(password) = &self.password {
            command.env("REDISCLI_AUTH", password);
        }
        let out = command.stdin(Stdio::null()).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.starts_with("Could not connect") && !text.is_empty())
            .then_some(text)
    }

    /// Runs one command with `redis-cli`; returns its answer.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    /// Sends `gets` GETs a second (`hit_pct` % of them for keys that exist) until the
    /// returned flag is cleared; the load runs on its own thread.
    pub fn load(&self, gets_per_s: u32, hit_pct: u32) -> Load {
        let commands = {
            let mut batch = String::new();
            if let Some(password) = &self.password {
                batch.push_str(&format!("AUTH {password}\r\n"));
            }
            batch.push_str("SET load:hit 1\r\n");
            batch
        };
        let per_tick = (gets_per_s / 10).max(1);
        let hits = per_tick * hit_pct / 100;
        let mut tick = String::new();
        for i in 0..per_tick {
            tick.push_str(if i < hits {
                "GET load:hit\r\n"
            } else {
                "GET load:miss\r\n"
            });
        }
        Load::start(self.port, commands, tick)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A throwaway memcached for one test binary on a free loopback port. Stopped on drop.
pub struct Memcached {
    pub port: u16,
    pid_file: PathBuf,
}

impl Memcached {
    pub fn start() -> Memcached {
        let port = free_port();
        let pid_file = std::env::temp_dir().join(format!(
            "perfpilot-memcached-{}-{port}.pid",
            std::process::id()
        ));
        run(Command::new("memcached").args([
            "-p",
            &port.to_string(),
            "-l",
            "127.0.0.1",
            "-U",
            "0",
            "-m",
            "64",
            "-u",
            "nobody",
            "-d",
            "-P",
            &pid_file.display().to_string(),
        ]));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "memcached did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Memcached { port, pid_file }
    }

    /// `gets_per_s` gets a second, `hit_pct` % of them for a key that exists.
    pub fn load(&self, gets_per_s: u32, hit_pct: u32) -> Load {
        let per_tick = (gets_per_s / 10).max(1);
        let hits = per_tick * hit_pct / 100;
        let mut tick = String::new();
        for i in 0..per_tick {
            tick.push_str(if i < hits {
                "get load:hit\r\n"
            } else {
                "get load:miss\r\n"
            });
        }
        Load::start(self.port, "set load:hit 0 0 1\r\nx\r\n".into(), tick)
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).output();
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// A steady load of text-protocol commands on one connection, ten batches a second, until
/// dropped; answers are read and discarded on another thread.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Load {
    fn start(port: u16, first: String, tick: String) -> Load {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let running = stop.clone();
        std::thread::spawn(move || {
            let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                return;
            };
            drain(&stream);
            let _ = stream.write_all(first.as_bytes());
            while !running.load(Ordering::Relaxed) {
                if stream.write_all(tick.as_bytes()).is_err() {
                    // The server went away (a restart in the test): connect again.
                    std::thread::sleep(Duration::from_millis(200));
                    match std::net::TcpStream::connect(("127.0.0.1", port)) {
                        Ok(s) => {
                            stream = s;
                            drain(&stream);
                            let _ = stream.write_all(first.as_bytes());
                        }
                        Err(_) => continue,
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Load { stop }
    }
}

/// Reads and discards what `stream` answers, on its own thread.
fn drain(stream: &TcpStream) {
    if let Ok(mut reader) = stream.try_clone() {
        std::thread::spawn(move || {
            let mut sink = [0u8; 8192];
            while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
        });
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

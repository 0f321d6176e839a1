//! A throwaway MariaDB 10.11 server ([`Mariadb`]) with a monitoring user: the `mysql`
//! client as root, a crash and a restart.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys::{free_port, run};

/// A throwaway MariaDB 10.11 for one test binary: Debian's `mariadbd`, started by root and
/// running as the `mysql` OS user, on a free loopback port with its data, socket and logs
/// in a temp dir, `performance_schema` on (unless `extra` says otherwise), and the user
/// [`Mariadb::USER`] (password [`Mariadb::PASSWORD`]) holding what the source and the
/// settings actuator need. Never the system's own server. Killed and removed on drop.
pub struct Mariadb {
    pub port: u16,
    pub dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Mariadb {
    pub const USER: &'static str = "perf";
    pub const PASSWORD: &'static str = "maria-secret-Vb4nQ8";

    pub fn start() -> Mariadb {
        Mariadb::start_with(&[])
    }

    /// One started with `extra` `mariadbd` options after the harness's own (a later
    /// option wins: `--performance-schema=OFF`).
    pub fn start_with(extra: &[&str]) -> Mariadb {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("perfpilot-mariadb-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the MariaDB dir");
        // Its own temporary directory: bootstraps started at the same moment by tests
        // running side by side otherwise clash on the same `#sql-temptable-…` names in /tmp.
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).expect("create the MariaDB tmp dir");
        run(Command::new("chown").args(["-R", "mysql:mysql"]).arg(&dir));
        run(Command::new("chmod").arg("700").arg(&dir));
        let data = dir.join("data");
        // A small redo log: the default 96 MB file is written out on every start.
        run(Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--user=mysql",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                "--innodb-log-file-size=8M",
            ])
            .stdin(Stdio::null()));
        let path = |name: &str| dir.join(name).display().to_string();
        let mut args: Vec<String> = vec![
            "--no-defaults".into(),
            format!("--datadir={}", data.display()),
            format!("--tmpdir={}", tmp.display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", path("mysqld.sock")),
            format!("--pid-file={}", path("mariadbd.pid")),
            format!("--log-error={}", path("error.log")),
            "--user=mysql".into(),
            "--skip-name-resolve".into(),
            "--skip-log-bin".into(),
            "--performance-schema=ON".into(),
            "--innodb-buffer-pool-size=32M".into(),
            "--innodb-log-file-size=8M".into(),
            "--innodb-flush-log-at-trx-commit=0".into(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let mut db = Mariadb {
            port,
            dir,
            args,
            child: None,
        };
        db.restart();
        db.mysql(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; \
             GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SUPER ON *.* TO '{user}'@'%'; \
             GRANT SELECT ON performance_schema.* TO '{user}'@'%'",
            user = Mariadb::USER,
            password = Mariadb::PASSWORD
        ));
        db
    }

    /// `mysql://perf@127.0.0.1:<port>/<db>`: no password, as perfpilot takes it.
    pub fn url(&self, db: &str) -> String {
        format!("mysql://{}@127.0.0.1:{}/{db}", Mariadb::USER, self.port)
    }

    /// Stops the server at once (SIGKILL, as a crash would), leaving its data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again, after [`Mariadb::kill`]) on the same port and waits until it
    /// answers (crash recovery included).
    pub fn restart(&mut self) {
        self.kill();
        let out =
            std::fs::File::create(self.dir.join("mariadbd.out")).expect("create mariadbd.out");
        let err = out.try_clone().expect("clone mariadbd.out");
        // Kept at once, so a start that fails the test is still killed on drop.
        self.child = Some(
            Command::new("/usr/sbin/mariadbd")
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect(
                    "start /usr/sbin/mariadbd (scripts/setup.sh --test installs mariadb-server)",
                ),
        );
        let log = || std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.answers() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("mariadbd exited before answering ({status}): {}", log());
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not answer within 60 s: {}",
                log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn client(&self) -> Command {
        let mut command = Command::new("mariadb");
        command
            .arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.join("mysqld.sock").display()
            ))
            .args(["-uroot", "-N", "-B"])
            .stdin(Stdio::null());
        command
    }

    fn answers(&self) -> bool {
        self.client()
            .args(["-e", "SELECT 1"])
            .output()
            .is_ok_and(|out| out.status.success())
    }

    /// Runs `sql` (one or more statements) as root over the private socket; returns the
    /// client's tab-separated output without headers.
    pub fn mysql(&self, sql: &str) -> String {
        let out = self
            .client()
            .args(["-e", sql])
            .output()
            .expect("run mariadb");
        assert!(
            out.status.success(),
            "mariadb {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! A throwaway PostgreSQL 15 cluster ([`Postgres`]): psql, pgbench, a session idle in a
//! transaction, a crash and a restart.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::sys::{free_port, run};

/// Where Debian's PostgreSQL 15 keeps its programs (they are not on PATH).
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A throwaway PostgreSQL 15 cluster for one test binary: `initdb` in a temp dir, run as
/// the `postgres` OS user (PostgreSQL refuses root), listening on a free loopback port and
/// a private socket directory, `pg_stat_statements` preloaded. Never the system's own
/// cluster. Stopped and removed on drop.
pub struct Postgres {
    pub port: u16,
    pub dir: PathBuf,
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = crate::sys::unique_temp_path("perfpilot-pg");
        std::fs::create_dir_all(dir.join("sock")).expect("create the cluster dir");
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir));
        run(Command::new("chmod").arg("700").arg(&dir));
        let data = dir.join("data");
        run(as_postgres(&format!("{PG_BIN}/initdb"))
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-D",
            ])
            .arg(&data));
        let pg = Postgres {
            port: free_port(),
            dir,
        };
        pg.start_server();
        pg.psql("postgres", "CREATE EXTENSION pg_stat_statements");
        pg
    }

    fn start_server(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c shared_preload_libraries=pg_stat_statements -c fsync=off",
            self.port,
            self.dir.join("sock").display()
        );
        run(as_postgres(&format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]));
    }

    /// Stops the server at once (`-m immediate`, as a crash would), leaving its data.
    pub fn kill(&self) {
        run(as_postgres(&format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"]));
    }

    /// Starts it again after [`Postgres::kill`], on the same port.
    pub fn restart(&self) {
        self.start_server();
    }

    /// Runs `sql` as the superuser over the private socket; returns psql's unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = as_postgres(&format!("{PG_BIN}/psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.join("sock"))
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Opens a session that begins a transaction and then sits idle in it until the
    /// returned child is killed (or dropped with its stdin).
    pub fn idle_in_transaction(&self, db: &str) -> std::process::Child {
        let mut child = as_postgres(&format!("{PG_BIN}/psql"))
            .args(["-X", "-q", "-h"])
            .arg(self.dir.join("sock"))
            .args(["-p", &self.port.to_string(), "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start psql");
        child
            .stdin
            .as_mut()
            .expect("psql's stdin")
            .write_all(b"BEGIN; SELECT 1;\n")
            .expect("write to psql");
        child
    }

    /// Runs pgbench against `db` over the socket with `args` (e.g. `-i`, or `-c 4 -T 5`).
    pub fn pgbench(&self, db: &str, args: &[&str]) {
        run(as_postgres(&format!("{PG_BIN}/pgbench"))
            .arg("-h")
            .arg(self.dir.join("sock"))
            .args(["-p", &self.port.to_string()])
            .args(args)
            .arg(db));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn as_postgres(program: &str) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--", program]);
    command.stdin(Stdio::null());
    command
}

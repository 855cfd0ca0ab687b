//! What the server-backend tests share: the servers of `scripts/servers.sh` (from the
//! environment, or private ones a test starts and may restart), and unique table names.

#![allow(dead_code)] // each test binary uses a part of it

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// True under CI (or `DISKSTORE_REQUIRE_SERVERS=1`, set by .ci/run): a missing server
/// fails the test instead of skipping it.
pub fn servers_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("DISKSTORE_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// The server URL of `var`, or `None` (skip) outside CI when it is not set or nothing
/// answers at its address.
pub fn server(var: &str) -> Option<String> {
    let url = std::env::var(var).unwrap_or_default();
    let why = if url.is_empty() {
        Some(format!("{var} is not set (run scripts/servers.sh start)"))
    } else if !reachable(&url) {
        Some(format!("{var}={url} is not reachable"))
    } else {
        None
    };
    let Some(why) = why else {
        return Some(url);
    };
    assert!(
        !servers_required(),
        "CI must provide the test servers: {why}"
    );
    eprintln!("skipped: {why}");
    None
}

/// True when something accepts TCP connections at the URL's host and port.
pub fn reachable(url: &str) -> bool {
    use std::net::ToSocketAddrs;
    let rest = url.split("://").nth(1).unwrap_or("");
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    host_port.to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
    })
}

/// A table name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The URL with `name=value` appended to its query.
pub fn with_param(url: &str, name: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{name}={value}")
}

/// Servers of `scripts/servers.sh` of a test's own (own directory and ports), which the
/// test may stop, crash and restart without disturbing tests that run beside it.
/// Stopped and deleted when dropped.
pub struct PrivateServers {
    dir: tempfile::TempDir,
    pg_port: u16,
    redis_port: u16,
    redis_tls_port: u16,
    appendonly: bool,
    pg_options: String,
}

impl PrivateServers {
    /// Starts the servers named (`"postgres"`, `"redis"`); `None` (skip) where the shared
    /// test servers are missing, since then the machine does not run servers at all.
    /// `appendonly`: Redis logs and syncs every write (`appendfsync always`).
    pub fn start(which: &[&str], appendonly: bool) -> Option<PrivateServers> {
        Self::start_with(which, appendonly, "")
    }

    /// As [`PrivateServers::start`], PostgreSQL with more settings (`-c name=value …`).
    pub fn start_with(
        which: &[&str],
        appendonly: bool,
        pg_options: &str,
    ) -> Option<PrivateServers> {
        server("DISKSTORE_TEST_POSTGRES")?;
        let s = PrivateServers {
            dir: tempfile::tempdir().unwrap(),
            pg_port: free_port(),
            redis_port: free_port(),
            redis_tls_port: free_port(),
            appendonly,
            pg_options: pg_options.to_owned(),
        };
        for w in which {
            s.run(&format!("start-{w}"));
        }
        Some(s)
    }

    /// Runs `scripts/servers.sh cmd` on these servers; panics when it fails.
    pub fn run(&self, cmd: &str) {
        if let Err(e) = self.try_run(cmd) {
            panic!("servers.sh {cmd}: {e}");
        }
    }

    fn try_run(&self, cmd: &str) -> Result<(), String> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/servers.sh");
        let mut c = Command::new("bash");
        c.arg(script)
            .arg(cmd)
            .env("DISKSTORE_SERVERS_DIR", self.dir.path())
            .env("DISKSTORE_PG_PORT", self.pg_port.to_string())
            .env("DISKSTORE_REDIS_PORT", self.redis_port.to_string())
            .env("DISKSTORE_REDIS_TLS_PORT", self.redis_tls_port.to_string())
            .env(
                "DISKSTORE_REDIS_APPENDONLY",
                if self.appendonly { "1" } else { "0" },
            )
            .env("DISKSTORE_PG_OPTIONS", &self.pg_options);
        // Reuse the shared servers' certificates rather than make new ones.
        if let Some(ca) = std::env::var_os("DISKSTORE_TEST_TLS_CA")
            && let Some(tls_dir) = PathBuf::from(ca).parent()
        {
            c.env("DISKSTORE_TLS_DIR", tls_dir);
        }
        let out = c.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The URL of the private PostgreSQL (plain text, trusted user `postgres`).
    pub fn postgres(&self) -> String {
        format!("{}?sslmode=disable", self.postgres_as("postgres"))
    }

    /// The URL of the private PostgreSQL for `user`, without parameters.
    pub fn postgres_as(&self, user: &str) -> String {
        format!(
            "postgresql://{user}@127.0.0.1:{}/diskstore_test",
            self.pg_port
        )
    }

    /// The URL of the private Redis.
    pub fn redis(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.redis_port)
    }

    /// Runs `redis-cli` against the private Redis.
    pub fn redis_cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.redis_port.to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PrivateServers {
    fn drop(&mut self) {
        let _ = self.try_run("stop");
    }
}

/// Runs one SQL statement with `psql` on `url`; its output, trimmed.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql (from PostgreSQL's client package) must be installed");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

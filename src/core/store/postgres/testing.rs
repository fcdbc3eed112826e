//! A real PostgreSQL server for tests: one per test process, started on first use from the
//! Debian binaries (`/usr/lib/postgresql/<newest>/bin`, else `PATH`) in a temporary folder,
//! listening on 127.0.0.1 at a free port, with a fresh database per test.
//!
//! The server outlives no test process: a watchdog shell started with it polls the test
//! process and stops the server (`pg_ctl stop -m immediate`) and removes its folder once the
//! process is gone, however it ended (a `Drop` on a static never runs; a killed binary runs
//! nothing). `initdb` and `pg_ctl` refuse root, so as root they run as `postgres`.
//!
//! Only std, tokio and sqlx: `tests/support/postgres.rs` includes this file as it is (by
//! `#[path]`), so the library's suite and the integration tests share one harness.

#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use sqlx::Connection;

/// The superuser `initdb` creates; connections are trusted on 127.0.0.1 only.
const SUPERUSER: &str = "recbot";

/// The running server of this test process.
pub struct TestServer {
    port: u16,
    dir: PathBuf,
}

static SERVER: OnceLock<TestServer> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// The server, started on first call (blocking: call it off the runtime, as
/// [`new_database`] does).
pub fn server() -> &'static TestServer {
    SERVER.get_or_init(|| TestServer::start().unwrap_or_else(|e| panic!("test PostgreSQL: {e}")))
}

/// A new, empty database on the test server: its URL.
pub async fn new_database() -> String {
    let server = tokio::task::spawn_blocking(server).await.unwrap();
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&server.url("postgres"))
        .await
        .expect("the test PostgreSQL answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
    admin.close().await.ok();
    server.url(&name)
}

impl TestServer {
    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    fn start() -> Result<TestServer, String> {
        let bin = binaries()?;
        let dir =
            std::env::temp_dir().join(format!("recbot-pg-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let as_root = is_root();
        if as_root {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
        }
        let data = dir.join("data");
        let tool = |name: &str| -> Command {
            let program = bin.join(name);
            if as_root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                Command::new(program)
            }
        };
        run(tool("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync"])
            .arg("--locale=C"))?;
        let port = free_port();
        let server_options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            dir.display()
        );
        // Started first: the server never outlives this process, even if `start` fails.
        watchdog(&tool("pg_ctl"), &data, &dir)?;
        run(tool("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &server_options, "start"]))?;
        Ok(TestServer { port, dir })
    }
}

/// The newest Debian PostgreSQL's `bin` folder, else the folder of `initdb` on `PATH`.
fn binaries() -> Result<PathBuf, String> {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max();
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| dir.join("initdb").exists())
        .ok_or_else(|| "no initdb (apt-get install postgresql)".to_string())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs `command` to its end; its output is in the error when it fails.
fn run(command: &mut Command) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{command:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// A shell, in its own process group (a Ctrl-C to the tests does not end it early), that
/// waits for this process to end, then stops the server and removes its folder.
fn watchdog(pg_ctl: &Command, data: &Path, dir: &Path) -> Result<(), String> {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let mut stop: Vec<String> = vec![quote(pg_ctl.get_program())];
    stop.extend(pg_ctl.get_args().map(quote));
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {stop} -D {data} stop -m immediate; rm -rf {dir}",
        pid = std::process::id(),
        stop = stop.join(" "),
        data = quote(data.as_os_str()),
        dir = quote(dir.as_os_str()),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("the PostgreSQL watchdog: {e}"))
}

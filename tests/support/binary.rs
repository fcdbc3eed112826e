//! The `recbot` binary run as a child process (console front-end on stdin/stdout), for tests
//! that kill it for real.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_recbot");
/// How long a wait for a line lasts before the test fails.
const LINE_WITHIN: Duration = Duration::from_secs(20);

pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// `recbot run --config <config>`, its stdout read line by line on a thread.
    pub fn start(config: &Path) -> Running {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// Types a command on the console.
    pub fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The first stdout line containing `needle` (blocking; for `spawn_blocking` code).
    pub fn wait_for_blocking(&self, needle: &str) -> String {
        let deadline = Instant::now() + LINE_WITHIN;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no line with {needle:?}; saw {seen:#?}"),
            }
        }
    }

    /// The same without blocking the runtime (fakes served by the test's runtime go on).
    pub async fn wait_for(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + LINE_WITHIN;
        let mut seen = Vec::new();
        loop {
            while let Ok(line) = self.lines.try_recv() {
                if line.contains(needle) {
                    return line;
                }
                seen.push(line);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no line with {needle:?}; saw {seen:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

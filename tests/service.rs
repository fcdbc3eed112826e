//! The `recbot` binary end to end: check-config, the console front-end, restart persistence,
//! signals, and that secrets never reach its output.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_recbot");

/// A config whose outside endpoints all point at a closed local port (tests never reach the
/// internet), plus `extra` sections.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("recbot.toml");
    let text =
        recbot::config::testing::offline(&format!("[storage]\ndata_dir = \"data\"\n{extra}"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `recbot run` with its stdout lines arriving on a channel.
struct Service {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Service {
    fn start(config: &Path, env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Chat logging must never reach Twitch from a test: a closed local port.
        cmd.env("RECBOT_TWITCH__IRC_HOST", "127.0.0.1")
            .env("RECBOT_TWITCH__IRC_PORT", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            std::io::Read::read_to_string(&mut stderr, &mut all).unwrap();
            all
        });
        let stdin = child.stdin.take();
        Service {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Collects stdout lines until one contains `needle`; panics after 10 s.
    fn wait_for(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; saw {seen:#?}"),
            }
        }
    }

    /// SIGTERM, then waits for the exit; returns (success, all remaining stdout, stderr).
    fn terminate(mut self) -> (bool, String, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "recbot did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let rest: Vec<String> = self.lines.iter().collect();
        (exit.success(), rest.join("\n"), self.stderr.join().unwrap())
    }
}

#[test]
fn console_add_list_remove_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let mut bot = Service::start(&config, &[]);
    bot.wait_for("started, watching 0");
    bot.send("add foo");
    let lines = bot.wait_for("Watching foo");
    let last = lines.last().unwrap();
    // "2026-11-21T21:45:47Z Watching foo (…)": a UTC timestamp, then the reply.
    let (stamp, _) = last.split_once(' ').unwrap();
    assert!(stamp.ends_with('Z') && stamp.len() == 20, "{last}");
    bot.send("/rec add @Bar quality=720p60");
    bot.wait_for("Watching bar");
    bot.send("list");
    bot.wait_for("bar — Twitch, quality 720p60");
    bot.wait_for("foo — Twitch, quality best");
    bot.send("remove foo");
    bot.wait_for("Stopped watching foo");
    bot.send("add ../../etc");
    bot.wait_for("not a valid Twitch login");
    let (ok, rest, stderr) = bot.terminate();
    assert!(ok, "exit was not clean: {stderr}");
    assert!(rest.contains("recbot is stopping"), "{rest}");

    let mut bot = Service::start(&config, &[]);
    bot.wait_for("started, watching 1");
    bot.send("list");
    let lines = bot.wait_for("Watching 1:");
    let more = bot.wait_for("bar");
    let all = [lines, more].concat().join("\n");
    assert!(!all.contains("foo —"), "{all}");
    assert!(!dir.path().join("etc").exists());
    let (ok, _, _) = bot.terminate();
    assert!(ok);
}

#[test]
fn closing_stdin_does_not_stop_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let mut bot = Service::start(&config, &[]);
    bot.wait_for("started");
    drop(bot.stdin.take());
    std::thread::sleep(Duration::from_millis(500));
    assert!(bot.child.try_wait().unwrap().is_none(), "exited on EOF");
    let (ok, _, stderr) = bot.terminate();
    assert!(ok, "{stderr}");
    assert!(stderr.contains("console input closed"), "{stderr}");
}

#[test]
fn secrets_never_reach_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[twitch]\nclient_id = \"publicid\"\nclient_secret = \"TWITCHSECRET1\"\n\
         [youtube]\nclient_id = \"x.apps.googleusercontent.com\"\nclient_secret = \"GOOGLESECRET2\"\n\
         [console]\nenabled = true\n",
    );
    let mut bot = Service::start(
        &config,
        &[
            ("RUST_LOG", "trace"),
            ("RECBOT_DISCORD__OPERATORS", "[\"1\"]"),
            ("RECBOT_TWITCH__CLIENT_SECRET", "ENVSECRET3"),
        ],
    );
    bot.wait_for("started");
    bot.send("code youtube 4/0PASTEDSECRET4");
    bot.wait_for("No youtube authorization is waiting");
    bot.send("code twitch http://localhost:3000/?code=PASTEDSECRET5&scope=chat%3Aread");
    bot.wait_for("No twitch authorization is waiting");
    // The consent link carries the client id, never the secret (built locally, nothing sent).
    bot.send("auth youtube");
    let link = bot.wait_for("Open this link");
    assert!(
        link.iter().all(|l| !l.contains("GOOGLESECRET2")),
        "{link:?}"
    );
    let (ok, stdout, stderr) = bot.terminate();
    assert!(ok);
    for secret in [
        "TWITCHSECRET1",
        "GOOGLESECRET2",
        "ENVSECRET3",
        "PASTEDSECRET4",
        "PASTEDSECRET5",
    ] {
        assert!(!stdout.contains(secret), "{secret} in stdout");
        assert!(!stderr.contains(secret), "{secret} in the log:\n{stderr}");
    }
    assert!(stderr.contains("TRACE") || stderr.contains("DEBUG") || stderr.contains("INFO"));

    let check = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .env("RECBOT_TWITCH__CLIENT_SECRET", "ENVSECRET3")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success());
    assert!(!shown.contains("SECRET"), "{shown}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let mut cmd = Command::new(BIN);
    cmd.args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 2, "{stderr}");
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(value.get("level").is_some(), "{line}");
    }
}

#[test]
fn check_config_accepts_the_example_and_names_bad_keys() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/recbot.example.toml");
    let out = Command::new(BIN)
        .args(["check-config", "--config", example])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("is valid"), "{text}");
    assert!(text.contains("front-ends:      console"), "{text}");
    assert!(text.contains("recbot.sqlite"), "{text}");
    assert!(
        text.contains(
            "segments:        at most 256 MiB and 100 Mbit/s each, 4 x the target duration \
             (at least 20 s); fsync every 30 s; gap notices at most every 60 s"
        ),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    for (body, fragments) in [
        (
            "[twitch]\npoll_interval = 5\n",
            vec!["line 2", "`twitch.poll_interval`", "unknown field"],
        ),
        (
            "[youtube]\nprivacy = \"hidden\"\n",
            vec!["line 2", "`youtube.privacy`", "unknown variant"],
        ),
        (
            "[storage]\nwarn_usage_percent = 0\n",
            vec!["line 2", "`storage.warn_usage_percent`"],
        ),
        (
            "[postprocess]\ncrf = 60\n",
            vec!["line 2", "`postprocess.crf`", "between 0 and 51"],
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, body).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{body}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml"), "{err}");
        for f in fragments {
            assert!(err.contains(f), "{body}: {err} lacks {f}");
        }
    }
    let out = Command::new(BIN)
        .args(["check-config", "--config", "/nonexistent/recbot.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn check_config_runs_ffmpeg_when_post_processing_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recbot.toml");
    let check = |body: &str| {
        std::fs::write(&path, body).unwrap();
        Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    // mode = "none" (the default) never runs it.
    let out = check("[postprocess]\nffmpeg = \"/nonexistent/ffmpeg\"\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("post-process:    none"), "{text}");
    assert!(!text.contains("ffmpeg:"), "{text}");

    let out = check("[postprocess]\nmode = \"remux\"\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("post-process:    remux to MP4"), "{text}");
    assert!(text.contains("ffmpeg:          ffmpeg version"), "{text}");

    let out = check("[postprocess]\nmode = \"transcode\"\nffmpeg = \"/nonexistent/ffmpeg\"\n");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ffmpeg:          MISSING: cannot run `/nonexistent/ffmpeg`"),
        "{text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[postprocess] mode = \"transcode\" needs ffmpeg"),
        "{err}"
    );
}

#[test]
fn help_explains_the_subcommands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "run",
        "check-config",
        "--log-format",
        "config/recbot.example.toml",
    ] {
        assert!(text.contains(needle), "{text}");
    }
    let out = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--config") && text.contains("SIGTERM"),
        "{text}"
    );
}

#[test]
fn readme_command_table_matches_the_parser() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = recbot_commands::markdown_table();
    assert!(
        readme.contains(&table),
        "README's command table is out of date; replace it with:\n{table}"
    );
}

//! A local Twitch-like IRC server for tests: answers CAP REQ, PASS/NICK (001…376), JOIN/PART
//! (echoes), PING, records what clients send (with JOIN times), and lets the test push lines
//! into any connection, send RECONNECT, or drop it. Serves TCP (`bind`) or in-memory streams
//! (`in_memory`, for paused-time tests).

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recbot::chat::transport::{Dialer, Stream};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How the server behaves; may be changed while it runs.
#[derive(Debug, Clone)]
pub struct Behavior {
    pub ack_caps: bool,
    pub answer_pings: bool,
    /// Refuse any PASS with "Login authentication failed".
    pub refuse_pass: bool,
    /// Confirm JOINs with the echo (off: rooms are joined but the client is never told).
    pub echo_joins: bool,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            ack_caps: true,
            answer_pings: true,
            refuse_pass: false,
            echo_joins: true,
        }
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub behavior: Behavior,
    /// When each connection was accepted.
    pub accepted: Vec<Instant>,
    /// Every line each connection sent, in order.
    pub received: Vec<Vec<String>>,
    /// (time, connection, room) of every JOINed room.
    pub joins: Vec<(Instant, usize, String)>,
    pub parts: Vec<(usize, String)>,
    /// Rooms each connection is in.
    pub rooms: Vec<HashSet<String>>,
    pub open: Vec<bool>,
    pub pings_from_client: usize,
}

#[derive(Debug)]
enum Out {
    Line(Vec<u8>),
    Close,
}

/// The test's handle on one accepted connection.
#[derive(Debug, Clone)]
pub struct ServerConn {
    pub id: usize,
    tx: mpsc::Sender<Out>,
}

impl ServerConn {
    /// Sends `line` + CR LF.
    pub async fn send(&self, line: &str) {
        self.send_bytes(line.as_bytes()).await;
    }

    pub async fn send_bytes(&self, line: &[u8]) {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\n");
        let _ = self.tx.send(Out::Line(bytes)).await;
    }

    pub async fn close(&self) {
        let _ = self.tx.send(Out::Close).await;
    }
}

pub struct FakeTwitch {
    pub state: Arc<Mutex<State>>,
    conns: tokio::sync::Mutex<mpsc::Receiver<ServerConn>>,
    conns_tx: mpsc::Sender<ServerConn>,
    pub port: u16,
    memory: Option<mpsc::Sender<tokio::io::DuplexStream>>,
}

impl FakeTwitch {
    pub async fn bind() -> Arc<FakeTwitch> {
        FakeTwitch::listen(None).await
    }

    /// Accepts TCP connections on a free port, with TLS when given an acceptor.
    async fn listen(tls: Option<tokio_rustls::TlsAcceptor>) -> Arc<FakeTwitch> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = FakeTwitch::new(port, None);
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let f = f.clone();
                match tls.clone() {
                    None => f.serve(stream),
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                f.serve(stream);
                            }
                        });
                    }
                }
            }
        });
        fake
    }

    /// Like [`FakeTwitch::bind`], speaking TLS with the test certificate for `localhost`
    /// (tests/data/tls-test-*.pem, signed by tests/data/tls-test-ca.pem).
    pub async fn bind_tls() -> Arc<FakeTwitch> {
        FakeTwitch::listen(Some(super::tls::acceptor())).await
    }

    /// The test CA, for a client that trusts the TLS fake.
    pub fn test_roots() -> tokio_rustls::rustls::RootCertStore {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::CertificateDer;
        let ca = CertificateDer::from_pem_file(super::tls::CA_FILE).unwrap();
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        roots
    }

    /// Served over in-memory streams; connect with [`FakeTwitch::dialer`].
    pub fn in_memory() -> Arc<FakeTwitch> {
        let (tx, mut rx) = mpsc::channel::<tokio::io::DuplexStream>(16);
        let fake = FakeTwitch::new(0, Some(tx));
        let f = fake.clone();
        tokio::spawn(async move {
            while let Some(stream) = rx.recv().await {
                f.clone().serve(stream);
            }
        });
        fake
    }

    fn new(port: u16, memory: Option<mpsc::Sender<tokio::io::DuplexStream>>) -> Arc<FakeTwitch> {
        let (conns_tx, conns) = mpsc::channel(64);
        Arc::new(FakeTwitch {
            state: Arc::new(Mutex::new(State::default())),
            conns: tokio::sync::Mutex::new(conns),
            conns_tx,
            port,
            memory,
        })
    }

    pub fn dialer(&self) -> Dialer {
        match &self.memory {
            None => Dialer::new("127.0.0.1", self.port, false).unwrap(),
            Some(tx) => {
                let tx = tx.clone();
                Dialer::custom("in-memory fake Twitch", move || {
                    let tx = tx.clone();
                    async move {
                        let (client, server) = tokio::io::duplex(1 << 20);
                        tx.send(server)
                            .await
                            .map_err(|_| std::io::Error::other("fake stopped"))?;
                        Ok(Box::new(client) as Stream)
                    }
                })
            }
        }
    }

    pub fn set_behavior(&self, f: impl FnOnce(&mut Behavior)) {
        f(&mut self.state.lock().unwrap().behavior);
    }

    /// The next connection that finished its login.
    pub async fn next_conn(&self) -> ServerConn {
        tokio::time::timeout(Duration::from_secs(300), self.conns.lock().await.recv())
            .await
            .expect("no connection within 30 s")
            .unwrap()
    }

    /// Waits (up to 30 s of real time; paused tokio time advances meanwhile) until `check`
    /// holds.
    pub async fn wait_until(&self, what: &str, check: impl Fn(&State) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if check(&self.state.lock().unwrap()) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "fake Twitch: timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn rooms_of(&self, conn: usize) -> HashSet<String> {
        self.state.lock().unwrap().rooms[conn].clone()
    }

    fn serve<S: AsyncRead + AsyncWrite + Send + 'static>(self: Arc<Self>, stream: S) {
        let id = {
            let mut s = self.state.lock().unwrap();
            s.accepted.push(Instant::now());
            s.received.push(Vec::new());
            s.rooms.push(HashSet::new());
            s.open.push(true);
            s.accepted.len() - 1
        };
        let (tx, mut rx) = mpsc::channel::<Out>(1024);
        let handle = ServerConn { id, tx };
        let state = self.state.clone();
        let conns_tx = self.conns_tx.clone();
        tokio::spawn(async move {
            let (read, mut write) = tokio::io::split(stream);
            let mut lines = BufReader::new(read).lines();
            let mut nick = String::new();
            let mut pass = None;
            loop {
                tokio::select! {
                    out = rx.recv() => match out {
                        Some(Out::Line(bytes)) => {
                            if write.write_all(&bytes).await.is_err() { break; }
                        }
                        Some(Out::Close) | None => break,
                    },
                    line = lines.next_line() => {
                        let Ok(Some(line)) = line else { break };
                        let replies = {
                            let mut s = state.lock().unwrap();
                            s.received[id].push(line.clone());
                            respond(&mut s, id, &line, &mut nick, &mut pass)
                        };
                        let welcomed = replies.iter().any(|r| r.contains(" 376 "));
                        let refused = replies.iter().any(|r| r.contains("authentication failed"));
                        for r in replies {
                            if write.write_all(format!("{r}\r\n").as_bytes()).await.is_err() {
                                break;
                            }
                        }
                        if refused {
                            break;
                        }
                        if welcomed {
                            let _ = conns_tx.send(handle.clone()).await;
                        }
                    }
                }
            }
            let _ = write.shutdown().await;
            let mut s = state.lock().unwrap();
            s.open[id] = false;
            s.rooms[id].clear();
        });
    }
}

fn respond(
    s: &mut State,
    id: usize,
    line: &str,
    nick: &mut String,
    pass: &mut Option<String>,
) -> Vec<String> {
    let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
    let mut out = Vec::new();
    match command {
        "CAP" => {
            let caps = rest.strip_prefix("REQ :").unwrap_or(rest);
            let verb = if s.behavior.ack_caps { "ACK" } else { "NAK" };
            out.push(format!(":tmi.twitch.tv CAP * {verb} :{caps}"));
        }
        "PASS" => *pass = Some(rest.to_string()),
        "NICK" => {
            *nick = rest.trim_start_matches(':').to_string();
            if pass.is_some() && s.behavior.refuse_pass {
                out.push(":tmi.twitch.tv NOTICE * :Login authentication failed".into());
                return out;
            }
            for (code, text) in [
                ("001", "Welcome, GLHF!"),
                ("002", "Your host is tmi.twitch.tv"),
                ("003", "This server is rather new"),
                ("004", "-"),
                ("375", "-"),
                ("372", "You are in a maze of twisty passages, all alike."),
                ("376", ">"),
            ] {
                out.push(format!(":tmi.twitch.tv {code} {nick} :{text}"));
            }
        }
        "JOIN" => {
            for room in rest.trim_start_matches(':').split(',') {
                let room = room.trim().trim_start_matches('#').to_string();
                s.joins.push((Instant::now(), id, room.clone()));
                s.rooms[id].insert(room.clone());
                if s.behavior.echo_joins {
                    out.push(format!(":{nick}!{nick}@{nick}.tmi.twitch.tv JOIN #{room}"));
                }
            }
        }
        "PART" => {
            let room = rest.trim_start_matches('#').to_string();
            s.rooms[id].remove(&room);
            s.parts.push((id, room.clone()));
            out.push(format!(":{nick}!{nick}@{nick}.tmi.twitch.tv PART #{room}"));
        }
        "PING" => {
            s.pings_from_client += 1;
            if s.behavior.answer_pings {
                let arg = rest.trim_start_matches(':');
                out.push(format!(":tmi.twitch.tv PONG tmi.twitch.tv :{arg}"));
            }
        }
        _ => {}
    }
    out
}

/// The sample lines of `shared/notes/irc-samples.txt` (a copy lives in tests/data).
pub fn samples() -> Vec<Vec<u8>> {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/irc-samples.txt"
    ))
    .unwrap();
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(b"# "))
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .collect()
}

/// The chat worker's settings for tests against the fake server `dialer` reaches: short
/// intervals, day files under `dir`, no replay, no stream.
pub fn chat_settings(dialer: Dialer, dir: &std::path::Path) -> recbot::chat::ChatSettings {
    use recbot::chat::shard::Timing;
    use recbot::chat::subtitles::SubtitleSettings;
    use recbot::chat::writer::{Compression, WriterSettings};
    recbot::chat::ChatSettings {
        dialer,
        login: recbot::config::ChatLogin::Anonymous,
        id_url: "http://127.0.0.1:9".into(),
        channels_per_connection: 90,
        connect_interval: Duration::from_millis(10),
        join_limit: 1000,
        join_window: Duration::from_secs(1),
        timing: Timing {
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(2),
            rejoin_interval: Duration::from_secs(3600),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
        },
        writer: WriterSettings {
            dir: dir.to_path_buf(),
            flush_interval: Duration::from_millis(20),
            fsync_interval: Duration::from_millis(100),
            queue_lines: 10_000,
            patience: Duration::from_secs(2),
            max_open_files: 64,
            compression: Compression::Zstd { level: 3 },
        },
        // `[chat] subtitles = []`; the replay's test turns it on.
        replay: SubtitleSettings::off(),
        stream: None,
        rooms: recbot::chat::platform_room::RoomConfig::from_config(
            &recbot::config::Config::default(),
        ),
    }
}

//! A small real SMTP server for the e-mail tests (RFC 5321 subset): EHLO/HELO, MAIL, RCPT, DATA
//! with dot-unstuffing, RSET, NOOP, QUIT, and STARTTLS (RFC 3207) or implicit TLS with the test
//! certificate for `localhost`. It can be down (connections closed at once) and answer the end
//! of DATA with scripted codes (4xx, 5xx).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How the server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain SMTP, no STARTTLS offered.
    Plain,
    /// Plain at first; STARTTLS offered and taken.
    StartTls,
    /// TLS from the first byte (`smtps://`, port 465 style).
    Implicit,
}

/// A mail the server took.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, dot-unstuffed, CRLF line ends.
    pub data: String,
    /// Whether it came over TLS.
    pub encrypted: bool,
}

#[derive(Debug, Default)]
pub struct SmtpState {
    pub mails: Vec<Mail>,
    /// Answers to the next ends of DATA (250 when empty).
    pub answers: VecDeque<u16>,
    /// Close every connection at once, before the greeting.
    pub down: bool,
    /// Connections accepted, down or not.
    pub connections: usize,
    /// Ends of DATA answered, whatever the answer.
    pub data_ends: usize,
    /// Every command line received.
    pub commands: Vec<String>,
}

#[derive(Debug)]
pub struct SmtpServer {
    pub port: u16,
    security: Security,
    state: Arc<Mutex<SmtpState>>,
}

impl SmtpServer {
    /// A plain server (the tests set `allow_plaintext`).
    pub async fn start() -> SmtpServer {
        SmtpServer::start_with(Security::Plain).await
    }

    pub async fn start_with(security: Security) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(SmtpState::default()));
        let shared = state.clone();
        let acceptor = super::tls::acceptor();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (state, acceptor) = (shared.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let _ = connection(stream, state, security, acceptor).await;
                });
            }
        });
        SmtpServer {
            port,
            security,
            state,
        }
    }

    /// `smtp://127.0.0.1:<port>`, or `smtps://localhost:<port>` for implicit TLS (the test
    /// certificate names `localhost`; STARTTLS servers are reached as `localhost` too).
    pub fn url(&self) -> String {
        match self.security {
            Security::Plain => format!("smtp://127.0.0.1:{}", self.port),
            Security::StartTls => format!("smtp://localhost:{}", self.port),
            Security::Implicit => format!("smtps://localhost:{}", self.port),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, SmtpState> {
        self.state.lock().unwrap()
    }
}

/// `<addr>` out of `MAIL FROM:<addr> BODY=8BITMIME`.
fn address(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_string()
}

async fn connection(
    stream: TcpStream,
    state: Arc<Mutex<SmtpState>>,
    security: Security,
    acceptor: TlsAcceptor,
) -> std::io::Result<()> {
    {
        let mut s = state.lock().unwrap();
        s.connections += 1;
        if s.down {
            return Ok(());
        }
    }
    let fresh = Session {
        greet: true,
        offer_starttls: false,
        encrypted: false,
    };
    match security {
        Security::Plain => session(stream, &state, fresh).await.map(drop),
        Security::Implicit => {
            let stream = acceptor.accept(stream).await?;
            let encrypted = Session {
                encrypted: true,
                ..fresh
            };
            session(stream, &state, encrypted).await.map(drop)
        }
        Security::StartTls => {
            let offer = Session {
                offer_starttls: true,
                ..fresh
            };
            let Some(plain) = session(stream, &state, offer).await? else {
                return Ok(());
            };
            let stream = acceptor.accept(plain).await?;
            // After STARTTLS the client starts over with EHLO, without a new greeting.
            let upgraded = Session {
                greet: false,
                offer_starttls: false,
                encrypted: true,
            };
            session(stream, &state, upgraded).await.map(drop)
        }
    }
}

/// How one SMTP conversation (or its part after STARTTLS) goes.
#[derive(Debug, Clone, Copy)]
struct Session {
    greet: bool,
    offer_starttls: bool,
    encrypted: bool,
}

/// Serves commands until QUIT or the end of the stream; on STARTTLS hands the stream back to
/// be upgraded.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    state: &Mutex<SmtpState>,
    how: Session,
) -> std::io::Result<Option<S>> {
    let mut stream = BufReader::new(stream);
    if how.greet {
        stream.write_all(b"220 fake.test ESMTP\r\n").await?;
    }
    let (mut from, mut to): (Option<String>, Vec<String>) = (None, Vec::new());
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end().to_string();
        state.lock().unwrap().commands.push(line.clone());
        let upper = line.to_ascii_uppercase();
        let answer: String = if upper.starts_with("EHLO") {
            let starttls = if how.offer_starttls {
                "250-STARTTLS\r\n"
            } else {
                ""
            };
            format!("250-fake.test\r\n{starttls}250-8BITMIME\r\n250 SIZE 10000000")
        } else if upper == "STARTTLS" && how.offer_starttls {
            stream.write_all(b"220 2.0.0 go ahead\r\n").await?;
            stream.flush().await?;
            return Ok(Some(stream.into_inner()));
        } else if upper.starts_with("HELO") {
            "250 fake.test".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = Some(address(&line));
            to.clear();
            "250 2.1.0 OK".into()
        } else if upper.starts_with("RCPT TO:") {
            if from.is_none() {
                "503 5.5.1 MAIL first".into()
            } else {
                to.push(address(&line));
                "250 2.1.5 OK".into()
            }
        } else if upper == "DATA" {
            if from.is_none() || to.is_empty() {
                "503 5.5.1 RCPT first".into()
            } else {
                stream.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let data = read_data(&mut stream).await?;
                let mut s = state.lock().unwrap();
                s.data_ends += 1;
                let code = s.answers.pop_front().unwrap_or(250);
                if code == 250 {
                    s.mails.push(Mail {
                        from: from.take().unwrap_or_default(),
                        to: std::mem::take(&mut to),
                        data,
                        encrypted: how.encrypted,
                    });
                }
                from = None;
                to.clear();
                format!("{code} scripted answer")
            }
        } else if upper == "RSET" {
            from = None;
            to.clear();
            "250 2.0.0 OK".into()
        } else if upper == "NOOP" {
            "250 2.0.0 OK".into()
        } else if upper == "QUIT" {
            stream.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(None);
        } else {
            "500 5.5.2 unknown command".into()
        };
        stream.write_all(format!("{answer}\r\n").as_bytes()).await?;
    }
}

/// DATA lines up to the lone `.`, with leading dots unstuffed (RFC 5321 §4.5.2).
async fn read_data<S: AsyncRead + AsyncWrite + Unpin>(
    lines: &mut BufReader<S>,
) -> std::io::Result<String> {
    let mut data = String::new();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == ".\r\n" || line == ".\n" {
            return Ok(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}

//! A small real SMTP server for the e-mail tests (RFC 5321 subset over plain TCP): EHLO/HELO,
//! MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT. It can be down (connections closed
//! at once) and answer the end of DATA with scripted codes (4xx, 5xx).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A mail the server took.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, dot-unstuffed, CRLF line ends.
    pub data: String,
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
    state: Arc<Mutex<SmtpState>>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(SmtpState::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = session(stream, state).await;
                });
            }
        });
        SmtpServer { port, state }
    }

    /// `smtp://127.0.0.1:<port>` (plaintext: the tests set `allow_plaintext`).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
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

async fn session(stream: TcpStream, state: Arc<Mutex<SmtpState>>) -> std::io::Result<()> {
    {
        let mut s = state.lock().unwrap();
        s.connections += 1;
        if s.down {
            return Ok(());
        }
    }
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 fake.test ESMTP\r\n").await?;
    let (mut from, mut to): (Option<String>, Vec<String>) = (None, Vec::new());
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        state.lock().unwrap().commands.push(line.clone());
        let upper = line.to_ascii_uppercase();
        let answer: String = if upper.starts_with("EHLO") {
            "250-fake.test\r\n250-8BITMIME\r\n250 SIZE 10000000".into()
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
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let data = read_data(&mut lines).await?;
                let mut s = state.lock().unwrap();
                s.data_ends += 1;
                let code = s.answers.pop_front().unwrap_or(250);
                if code == 250 {
                    s.mails.push(Mail {
                        from: from.take().unwrap_or_default(),
                        to: std::mem::take(&mut to),
                        data,
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
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "500 5.5.2 unknown command".into()
        };
        write.write_all(format!("{answer}\r\n").as_bytes()).await?;
    }
}

/// DATA lines up to the lone `.`, with leading dots unstuffed (RFC 5321 §4.5.2).
async fn read_data(
    lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
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

//! The byte stream under an IRC connection: a [`Dialer`] (TCP, optionally TLS through
//! tokio-rustls with the ring provider and the webpki roots; or a custom stream for tests and
//! future transports) and a [`LineReader`] that cuts the stream into raw lines, keeping the
//! exact bytes, capping line length and surviving invalid UTF-8.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::ServerName, RootCertStore};
use tokio_rustls::TlsConnector;

/// Any bidirectional byte stream.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Stream = Box<dyn Io>;

type DialFn = dyn Fn() -> Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>> + Send + Sync;

/// Opens connections to the chat server.
#[derive(Clone)]
pub enum Dialer {
    Tcp {
        host: String,
        port: u16,
        tls: Option<TlsConnector>,
    },
    /// A stream from elsewhere (in-memory streams in tests).
    Custom { name: String, dial: Arc<DialFn> },
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Dialer {
    /// `host:port`, with TLS verified against the webpki roots when `tls`.
    pub fn new(host: &str, port: u16, tls: bool) -> Result<Dialer, rustls::Error> {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Dialer::with_roots(host, port, tls.then_some(roots))
    }

    /// Like [`Dialer::new`] with the given trust roots (`None`: plain TCP).
    pub fn with_roots(
        host: &str,
        port: u16,
        roots: Option<RootCertStore>,
    ) -> Result<Dialer, rustls::Error> {
        let tls = match roots {
            Some(roots) => {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(TlsConnector::from(Arc::new(config)))
            }
            None => None,
        };
        Ok(Dialer::Tcp {
            host: host.to_string(),
            port,
            tls,
        })
    }

    pub fn custom<F, Fut>(name: &str, dial: F) -> Dialer
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<Stream>> + Send + 'static,
    {
        Dialer::Custom {
            name: name.to_string(),
            dial: Arc::new(move || Box::pin(dial())),
        }
    }

    /// `irc.chat.twitch.tv:6697 (TLS)`.
    pub fn describe(&self) -> String {
        match self {
            Dialer::Tcp { host, port, tls } => {
                format!("{host}:{port}{}", if tls.is_some() { " (TLS)" } else { "" })
            }
            Dialer::Custom { name, .. } => name.clone(),
        }
    }

    pub async fn dial(&self, timeout: Duration) -> io::Result<Stream> {
        let connect = async {
            match self {
                Dialer::Tcp { host, port, tls } => {
                    let tcp = TcpStream::connect((host.as_str(), *port)).await?;
                    tcp.set_nodelay(true)?;
                    match tls {
                        None => Ok(Box::new(tcp) as Stream),
                        Some(tls) => {
                            let name = ServerName::try_from(host.clone()).map_err(|e| {
                                io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
                            })?;
                            let stream = tls.connect(name, tcp).await?;
                            Ok(Box::new(stream) as Stream)
                        }
                    }
                }
                Dialer::Custom { dial, .. } => dial().await,
            }
        };
        tokio::time::timeout(timeout, connect)
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {} s", timeout.as_secs_f64()),
                ))
            })
    }
}

/// Longest line kept; Twitch lines are a few KiB at most.
pub const MAX_LINE: usize = 64 * 1024;

/// One raw line out of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum RawLine<'a> {
    /// Without CR LF.
    Line(&'a [u8]),
    /// The first [`MAX_LINE`] bytes of a longer line; the rest is skipped.
    TooLong(&'a [u8]),
}

/// Cuts a byte stream into lines without copying them.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Inside an overlong line: drop bytes until its end.
    skipping: bool,
    max_line: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R) -> LineReader<R> {
        LineReader::with_max_line(inner, MAX_LINE)
    }

    pub fn with_max_line(inner: R, max_line: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: vec![0; max_line * 2].into_boxed_slice(),
            start: 0,
            end: 0,
            skipping: false,
            max_line,
        }
    }

    /// Reads once (cancel-safe). `Ok(0)`: the peer closed the stream.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.buf.len() - self.end < self.max_line {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.inner.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// The next complete line already read, if any. Empty lines are skipped.
    pub fn next_line(&mut self) -> Option<RawLine<'_>> {
        loop {
            let window = &self.buf[self.start..self.end];
            match memchr::memchr(b'\n', window) {
                Some(i) => {
                    let (s, mut e) = (self.start, self.start + i);
                    self.start += i + 1;
                    if self.skipping {
                        self.skipping = false;
                        continue;
                    }
                    if e > s && self.buf[e - 1] == b'\r' {
                        e -= 1;
                    }
                    if e == s {
                        continue;
                    }
                    if e - s > self.max_line {
                        return Some(RawLine::TooLong(&self.buf[s..s + self.max_line]));
                    }
                    return Some(RawLine::Line(&self.buf[s..e]));
                }
                None if self.skipping => {
                    self.start = self.end;
                    return None;
                }
                None if window.len() >= self.max_line => {
                    let s = self.start;
                    self.start = self.end;
                    self.skipping = true;
                    return Some(RawLine::TooLong(&self.buf[s..s + self.max_line]));
                }
                None => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn lines_of(chunks: &[&[u8]], max_line: usize) -> Vec<String> {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        for c in chunks {
            tx.write_all(c).await.unwrap();
        }
        drop(tx);
        let mut reader = LineReader::with_max_line(rx, max_line);
        let mut out = Vec::new();
        while reader.fill().await.unwrap() > 0 {
            while let Some(line) = reader.next_line() {
                out.push(match line {
                    RawLine::Line(l) => String::from_utf8_lossy(l).into_owned(),
                    RawLine::TooLong(l) => format!("TOO LONG {}", l.len()),
                });
            }
        }
        out
    }

    #[tokio::test]
    async fn cuts_lines_across_reads() {
        let got = lines_of(
            &[b"PING :a\r\nPRIV", b"MSG #c :x\r\n\r\nbare\n", b"tail"],
            64,
        )
        .await;
        assert_eq!(got, ["PING :a", "PRIVMSG #c :x", "bare"]);
    }

    #[tokio::test]
    async fn overlong_lines_are_cut_and_the_next_line_survives() {
        let long = vec![b'x'; 300];
        let got = lines_of(&[b"a\r\n", &long, b"\r\nb\r\n"], 100).await;
        assert_eq!(got, ["a", "TOO LONG 100", "b"]);
        // Also when the whole long line arrives in one read.
        let long = [vec![b'y'; 150], b"\r\nc\r\n".to_vec()].concat();
        let got = lines_of(&[&long], 100).await;
        assert_eq!(got, ["TOO LONG 100", "c"]);
    }

    #[tokio::test]
    async fn invalid_utf8_is_kept_byte_for_byte() {
        let (mut tx, rx) = tokio::io::duplex(1024);
        tx.write_all(b"PRIVMSG #c :\xff\xfe\r\n").await.unwrap();
        let mut reader = LineReader::new(rx);
        reader.fill().await.unwrap();
        assert_eq!(
            reader.next_line(),
            Some(RawLine::Line(&b"PRIVMSG #c :\xff\xfe"[..]))
        );
    }

    #[tokio::test]
    async fn a_plain_dialer_reaches_a_local_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dialer = Dialer::new("127.0.0.1", port, false).unwrap();
        assert_eq!(dialer.describe(), format!("127.0.0.1:{port}"));
        let (stream, accepted) =
            tokio::join!(dialer.dial(Duration::from_secs(5)), listener.accept());
        stream.unwrap();
        accepted.unwrap();
        // TLS against a server that does not speak it fails with an error, not a hang.
        let tls = Dialer::new("localhost", port, true).unwrap();
        assert!(tls.describe().ends_with("(TLS)"));
        let serve = async {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"not tls\r\n").await.unwrap();
        };
        let (result, _) = tokio::join!(tls.dial(Duration::from_secs(5)), serve);
        assert!(result.is_err());
    }
}

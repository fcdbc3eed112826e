//! The resumable-upload fake over a plain TcpListener: HTTP/1.1 with keep-alive, chunk bodies
//! streamed and counted (never buffered, so a 2 GiB upload costs it nothing), and transport
//! faults wiremock cannot make: cutting the connection mid-chunk, or stalling it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::youtube_state::{Answer, State, Step, UPLOAD_PATH};

/// Transport faults, by data bytes received over the server's whole life.
#[derive(Debug, Default)]
pub struct Control {
    /// Close the connection once this many data bytes have arrived (then forget the limit).
    pub cut_at: AtomicU64,
    /// Stop reading once this many data bytes have arrived, until `stall_at` is raised.
    pub stall_at: AtomicU64,
    /// Data bytes received so far.
    pub received: AtomicU64,
    /// A connection is stalled right now.
    pub stalled: AtomicBool,
}

pub struct TcpYoutube {
    pub state: Arc<Mutex<State>>,
    pub control: Arc<Control>,
    pub addr: SocketAddr,
}

impl TcpYoutube {
    pub async fn start(token: &str) -> TcpYoutube {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::new(&format!("http://{addr}"), token)));
        let control = Arc::new(Control {
            cut_at: AtomicU64::new(u64::MAX),
            stall_at: AtomicU64::new(u64::MAX),
            ..Control::default()
        });
        let (s, c) = (state.clone(), control.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, c) = (s.clone(), c.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, s, c).await;
                });
            }
        });
        TcpYoutube {
            state,
            control,
            addr,
        }
    }

    /// The `[youtube] upload_url` to configure.
    pub fn upload_url(&self) -> String {
        format!("http://{}{UPLOAD_PATH}", self.addr)
    }
}

async fn serve(
    stream: TcpStream,
    state: Arc<Mutex<State>>,
    control: Arc<Control>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut stream = BufReader::with_capacity(256 * 1024, stream);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let mut h = String::new();
            stream.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        assert!(
            !headers.iter().any(|(k, _)| k == "transfer-encoding"),
            "chunks must carry a Content-Length"
        );
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let step = if method == "POST" {
            let mut body = vec![0u8; length];
            stream.read_exact(&mut body).await?;
            state
                .lock()
                .unwrap()
                .request(&method, &target, &header, &body)
        } else {
            state
                .lock()
                .unwrap()
                .request(&method, &target, &header, &[])
        };
        let answer = match step {
            Step::Answer(answer) => {
                if method != "POST" {
                    // Drain an unexpected body so the connection stays usable.
                    let mut left = length;
                    while left > 0 {
                        let want = left.min(buf.len());
                        let n = stream.read(&mut buf[..want]).await?;
                        if n == 0 {
                            return Ok(());
                        }
                        left -= n;
                    }
                }
                answer
            }
            Step::ReadChunk {
                session,
                start,
                len,
            } => {
                let mut got = 0u64;
                while got < len {
                    while control.received.load(Ordering::SeqCst)
                        >= control.stall_at.load(Ordering::SeqCst)
                    {
                        control.stalled.store(true, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    control.stalled.store(false, Ordering::SeqCst);
                    let want = ((len - got) as usize).min(buf.len());
                    let n = match stream.read(&mut buf[..want]).await {
                        Ok(0) | Err(_) => {
                            state.lock().unwrap().chunk_cut(session, start, got);
                            return Ok(());
                        }
                        Ok(n) => n,
                    };
                    got += n as u64;
                    let total = control.received.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                    if total >= control.cut_at.load(Ordering::SeqCst) {
                        control.cut_at.store(u64::MAX, Ordering::SeqCst);
                        state.lock().unwrap().chunk_cut(session, start, got);
                        return Ok(());
                    }
                }
                state
                    .lock()
                    .unwrap()
                    .chunk_received(session, start, got, &header)
            }
        };
        write_answer(stream.get_mut(), &answer).await?;
    }
}

async fn write_answer(stream: &mut TcpStream, answer: &Answer) -> std::io::Result<()> {
    tokio::time::sleep(answer.delay).await;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\n",
        answer.status,
        reason(answer.status),
        answer.body.len()
    );
    for (k, v) in &answer.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(&answer.body);
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        308 => "Resume Incomplete",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

//! The console front-end: commands from stdin (one per line, with or without a leading `/rec`),
//! replies and events to stdout, one per line, each prefixed with a UTC timestamp. The console
//! user is an operator. End of input does not stop the service.

use chrono::{SecondsFormat, Utc};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::render;
use crate::core::{CoreHandle, Origin};

/// Runs until `shutdown`, then keeps printing until the core has published its last notice.
/// `notices` comes from [`CoreHandle::subscribe`], taken before the core starts so that the
/// first notices are not missed.
pub async fn run<R, W>(
    core: CoreHandle,
    mut notices: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::core::Notice>>,
    input: R,
    mut output: W,
    invocation: String,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut lines = input.lines();
    let mut input_open = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            line = lines.next_line(), if input_open => match line {
                Ok(Some(line)) => {
                    let text = recbot_commands::strip_invocation(&line, &invocation).trim();
                    if text.is_empty() {
                        continue;
                    }
                    let reply = core.submit(text, Origin::console()).await;
                    let reply = render::reply(&reply, render::Markup::Plain);
                    write_lines(&mut output, &reply.text).await?;
                }
                Ok(None) => {
                    input_open = false;
                    info!("console input closed; recbot keeps running until SIGINT or SIGTERM");
                }
                Err(e) => {
                    input_open = false;
                    info!(error = %e, "console input unreadable; recbot keeps running");
                }
            },
            notice = notices.recv() => match notice {
                Ok(notice) => write_lines(&mut output, &render::event_line(&notice.event)).await?,
                Err(RecvError::Lagged(n)) => {
                    write_lines(&mut output, &format!("({n} events not shown here; the event log has them)")).await?;
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    // Show what the core says while it drains (stopping, files finished), then stop.
    loop {
        tokio::select! {
            biased;
            notice = notices.recv() => match notice {
                Ok(notice) => write_lines(&mut output, &render::event_line(&notice.event)).await?,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
            _ = core.stopped() => {
                while let Ok(notice) = notices.try_recv() {
                    write_lines(&mut output, &render::event_line(&notice.event)).await?;
                }
                break;
            }
        }
    }
    output.flush().await
}

/// Prints `text` line by line, each stamped. Whatever a reply or event carries, no control
/// character (an ANSI escape clearing the screen, a `\r` overwriting the stamp) or
/// bidirectional override reaches the terminal.
async fn write_lines<W: AsyncWrite + Unpin>(output: &mut W, text: &str) -> std::io::Result<()> {
    let stamp = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let text = render::safe_text(text);
    let mut buf = String::with_capacity(text.len() + 32);
    for line in text.lines() {
        buf.push_str(&stamp);
        buf.push(' ');
        buf.push_str(line);
        buf.push('\n');
    }
    output.write_all(buf.as_bytes()).await?;
    output.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn control_characters_never_reach_the_terminal() {
        let mut out = Vec::new();
        write_lines(
            &mut out,
            "title \x1b[2J\x1b]0;x\x07 \u{202E}evil\rover\nsecond",
        )
        .await
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out:?}");
        assert!(lines[0].ends_with(" title [2J]0;x evilover"), "{out:?}");
        assert!(lines[1].ends_with(" second"), "{out:?}");
        assert!(!out.contains(['\x1b', '\x07', '\r', '\u{202E}']), "{out:?}");
    }
}

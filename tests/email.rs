//! E-mail digests against a real SMTP server started by the test (`support/smtp.rs`): several
//! events in one mail to every recipient, an outage and a restart that delay mail but lose or
//! repeat none, a 4xx retried, a 5xx reported once and not retried, and no plaintext without
//! `allow_plaintext`; STARTTLS and implicit TLS against a server with a private CA (`ca_file`),
//! and nothing for a certificate nobody vouches for.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use recbot::config::Config;
use recbot::event::{Event, EventKind};
use recbot::frontend::{email, render};
use support::smtp::{Mail, Security, SmtpServer};
use support::{is, Bot};

/// `[email]` for `server` with a short digest window and fast retries, plus `extra` lines.
fn config(dir: &Path, server: &SmtpServer, extra: &str) -> Arc<Config> {
    let email = format!(
        "[email]\nsmtp_url = {:?}\nfrom = \"recbot@example.org\"\n\
         to = [\"ops@example.org\", \"Night Shift <night@example.org>\"]\n\
         events = [\"ChatDropped\", \"LiveCheckFailed\"]\n\
         digest_minutes = 0.01\ntimeout_secs = 2\nretry_initial_ms = 20\nretry_max_secs = 1\n\
         {extra}",
        server.url()
    );
    support::config(dir, "", &email)
}

fn plaintext(dir: &Path, server: &SmtpServer) -> Arc<Config> {
    config(dir, server, "allow_plaintext = true\n")
}

async fn start(config: Arc<Config>) -> Bot {
    Bot::with_front_end(config, |config, core, notices, _, tracker| {
        email::run(config, core, notices, tracker)
    })
    .await
}

async fn dropped(bot: &Bot, lines: u64) {
    let event = Event::now(None, EventKind::ChatDropped { lines });
    bot.events.send(event).await;
}

/// Waits (at most 15 s) until the server's state satisfies `done`.
async fn until(server: &SmtpServer, what: &str, done: impl Fn(&support::smtp::SmtpState) -> bool) {
    for _ in 0..1500 {
        if done(&server.state()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never {what}: {:#?}", server.state().mails);
}

/// A header's value, unfolded, with RFC 2047 encoded words decoded.
fn header(mail: &Mail, name: &str) -> String {
    let head = mail
        .data
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replace("\r\n ", " ");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let value = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {}", mail.data))[prefix.len()..]
        .trim()
        .to_string();
    value
        .split(' ')
        .map(|word| {
            let parts: Vec<&str> = word.split('?').collect();
            if parts.len() == 5 && parts[0] == "=" && parts[2].eq_ignore_ascii_case("b") {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(parts[3])
                    .unwrap();
                String::from_utf8(bytes).unwrap()
            } else {
                format!("{word} ")
            }
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The body, quoted-printable decoded.
fn body(mail: &Mail) -> String {
    let encoded = mail
        .data
        .split_once("\r\n\r\n")
        .unwrap()
        .1
        .replace("=\r\n", "");
    let mut bytes = Vec::new();
    let mut rest = encoded.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'=' && tail.len() >= 2 {
            let hex = std::str::from_utf8(&tail[..2]).unwrap();
            bytes.push(u8::from_str_radix(hex, 16).unwrap());
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).unwrap()
}

/// Every mailed `ChatDropped` number, over all mails.
fn mailed_drops(mails: &[Mail]) -> Vec<u64> {
    let mut drops = Vec::new();
    for mail in mails {
        for line in body(mail).lines() {
            if let Some((_, rest)) = line.split_once("recbot: ") {
                if let Some((n, _)) = rest.split_once(" chat line(s)") {
                    drops.push(n.parse().unwrap());
                }
            }
        }
    }
    drops
}

#[tokio::test]
async fn events_within_the_window_go_in_one_mail_to_every_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start().await;
    let bot = start(plaintext(dir.path(), &server)).await;
    dropped(&bot, 1).await;
    let not_listed = EventKind::ChatDisconnected {
        reason: "test".into(),
    };
    bot.events.send(Event::now(None, not_listed)).await;
    let failing = EventKind::LiveCheckFailed {
        reason: "Helix answered 500".into(),
        cycles: 3,
    };
    bot.events.send(Event::now(None, failing.clone())).await;
    dropped(&bot, 2).await;
    until(&server, "mailed", |s| !s.mails.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = server.state().mails.clone();
    assert_eq!(mails.len(), 1, "one digest");
    let mail = &mails[0];
    assert_eq!(mail.from, "recbot@example.org");
    assert_eq!(mail.to, ["ops@example.org", "night@example.org"]);
    assert!(header(mail, "To").contains("Night Shift"), "{}", mail.data);
    let subject = header(mail, "Subject");
    // The count and the first event's line (spaces aside: encoded words drop them at folds).
    let first = render::event_line(&Event::now(None, EventKind::ChatDropped { lines: 1 }));
    let squeeze = |s: &str| s.replace(' ', "");
    assert_eq!(
        squeeze(&subject),
        squeeze(&format!("recbot: 3 events, first: {first}")),
        "{subject}"
    );
    let text = body(mail);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].ends_with(&render::event_line(&Event::now(None, failing))));
    assert!(!text.contains("disconnected"), "an unlisted event: {text}");
    assert_eq!(mailed_drops(&mails), [1, 2]);
    bot.stop().await;
}

#[tokio::test]
async fn an_outage_and_a_restart_delay_mail_but_lose_or_repeat_none() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start().await;
    server.state().down = true;
    let config = plaintext(dir.path(), &server);
    let mut bot = start(config.clone()).await;
    dropped(&bot, 1).await;
    let failing = bot.wait_for("the report", is("DeliveryFailing")).await;
    let line = render::event_line(&failing);
    assert!(line.contains("delivery to e-mail failed 8 times"), "{line}");
    bot.stop().await;

    let bot = start(config.clone()).await;
    dropped(&bot, 2).await;
    let tried = server.state().connections;
    until(&server, "tried again after the restart", |s| {
        s.connections > tried
    })
    .await;
    assert!(server.state().mails.is_empty());
    server.state().down = false;
    until(&server, "both mailed", |s| {
        mailed_drops(&s.mails).len() == 2
    })
    .await;
    dropped(&bot, 3).await;
    until(&server, "the next one mailed", |s| {
        mailed_drops(&s.mails).len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bot.stop().await;
    // A restart with nothing new mails nothing again.
    let bot = start(config).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    bot.stop().await;
    assert_eq!(mailed_drops(&server.state().mails), [1, 2, 3]);
}

#[tokio::test]
async fn a_4xx_answer_is_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start().await;
    server.state().answers.push_back(451);
    let bot = start(plaintext(dir.path(), &server)).await;
    dropped(&bot, 7).await;
    until(&server, "mailed", |s| !s.mails.is_empty()).await;
    assert_eq!(server.state().data_ends, 2, "refused once, then taken");
    assert_eq!(mailed_drops(&server.state().mails), [7]);
    bot.stop().await;
}

#[tokio::test]
async fn a_5xx_answer_is_reported_once_and_not_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start().await;
    server.state().answers.push_back(554);
    let mut bot = start(plaintext(dir.path(), &server)).await;
    dropped(&bot, 1).await;
    let report = bot.wait_for("the refusal", is("EmailRefused")).await;
    let EventKind::EmailRefused {
        code,
        events,
        first,
        last,
        ..
    } = &report.kind
    else {
        unreachable!()
    };
    assert_eq!((*code, *events), (554, 1));
    assert_eq!(first, last);
    let line = render::event_line(&report);
    assert!(
        line.contains("refused a mail of 1 event(s) with 554"),
        "{line}"
    );
    dropped(&bot, 2).await;
    until(&server, "the next mailed", |s| !s.mails.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.state().data_ends,
        2,
        "the refused mail is not sent again"
    );
    assert_eq!(mailed_drops(&server.state().mails), [2]);
    let mut reports = 0;
    while let Ok(notice) = bot.notices.try_recv() {
        reports += usize::from(notice.event.kind_name() == "EmailRefused");
    }
    assert_eq!(reports, 0, "reported once");
    bot.stop().await;
}

#[tokio::test]
async fn nothing_goes_out_in_plaintext_without_allow_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start().await;
    // smtp:// without allow_plaintext requires STARTTLS, which this server does not offer.
    let bot = start(config(dir.path(), &server, "")).await;
    dropped(&bot, 1).await;
    until(&server, "tried", |s| s.connections >= 2).await;
    bot.stop().await;
    let state = server.state();
    assert!(state.mails.is_empty());
    assert!(
        !state.commands.iter().any(|c| c.starts_with("MAIL")),
        "{:?}",
        state.commands
    );
}

/// `[email]` for a TLS `server` whose certificate the test CA signed (`ca_file`).
fn trusting_the_test_ca(dir: &Path, server: &SmtpServer) -> Arc<Config> {
    config(
        dir,
        server,
        &format!("ca_file = {:?}\n", support::tls::CA_FILE),
    )
}

#[tokio::test]
async fn starttls_is_taken_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start_with(Security::StartTls).await;
    let bot = start(trusting_the_test_ca(dir.path(), &server)).await;
    dropped(&bot, 3).await;
    until(&server, "mailed", |s| !s.mails.is_empty()).await;
    bot.stop().await;
    let state = server.state();
    assert!(state.mails[0].encrypted);
    assert_eq!(mailed_drops(&state.mails), [3]);
    // The plain part of the conversation: EHLO and STARTTLS, nothing else.
    let starttls = state.commands.iter().position(|c| c == "STARTTLS");
    let starttls = starttls.unwrap_or_else(|| panic!("{:?}", state.commands));
    assert!(state.commands[..starttls]
        .iter()
        .all(|c| c.starts_with("EHLO")));
    assert!(
        state.commands[starttls + 1].starts_with("EHLO"),
        "EHLO again over TLS"
    );
}

#[tokio::test]
async fn smtps_speaks_tls_from_the_first_byte() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start_with(Security::Implicit).await;
    let bot = start(trusting_the_test_ca(dir.path(), &server)).await;
    dropped(&bot, 4).await;
    until(&server, "mailed", |s| !s.mails.is_empty()).await;
    bot.stop().await;
    let state = server.state();
    assert!(state.mails[0].encrypted);
    assert_eq!(mailed_drops(&state.mails), [4]);
}

#[tokio::test]
async fn a_certificate_nobody_vouches_for_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start_with(Security::Implicit).await;
    // Without ca_file the test CA is not trusted: the handshake fails, tried again later.
    let bot = start(config(dir.path(), &server, "")).await;
    dropped(&bot, 1).await;
    until(&server, "tried twice", |s| s.connections >= 2).await;
    bot.stop().await;
    let state = server.state();
    assert!(state.mails.is_empty());
    assert!(state.commands.is_empty(), "{:?}", state.commands);
}

#[test]
fn ca_file_must_hold_certificates_and_needs_tls() {
    let dir = tempfile::tempdir().unwrap();
    let load = |url: &str, extra: &str| {
        let text = format!(
            "[storage]\ndata_dir = {:?}\n[email]\nsmtp_url = {url:?}\nfrom = \"r@example.org\"\n\
             to = [\"o@example.org\"]\n{extra}",
            dir.path().to_str().unwrap()
        );
        let text = recbot::config::testing::offline(&text);
        Config::from_text(&text, &dir.path().join("recbot.toml"), &[]).map(|_| ())
    };
    let ca = format!("ca_file = {:?}\n", support::tls::CA_FILE);
    load("smtps://mail.example.org", &ca).unwrap();
    let error = load(
        "smtp://127.0.0.1:25",
        &format!("allow_plaintext = true\n{ca}"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("email.ca_file") && error.contains("without TLS"),
        "{error}"
    );
    let missing = dir.path().join("nope.pem");
    let error = load(
        "smtps://mail.example.org",
        &format!("ca_file = {missing:?}\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("cannot read") && error.contains("nope.pem"),
        "{error}"
    );
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let error = load(
        "smtps://mail.example.org",
        &format!("ca_file = {empty:?}\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("no PEM certificate"), "{error}");
}

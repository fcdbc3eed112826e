//! The Twitch viewer login (`auth twitch-viewer`, `code twitch-viewer <token>`): recording the
//! source a logged-out viewer is denied, refusals falling back to logged-out recording with a
//! notice, and a login that arrives mid-broadcast moving the recording to the better rendition
//! in a new part without losing or repeating a segment. Twitch's id endpoints, GQL and usher
//! are local fakes; every log line is searched for the tokens.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use recbot::archive::sidecar::Sidecar;
use recbot::config::Config;
use recbot::event::{Event, EventKind};
use recbot::rendition::Codec;
use support::origin::{eventually, segment_bytes, sequences, End, Origin, StreamConfig};
use support::twitch::{
    TwitchFake, USER_CODE, VIEWER_CLIENT_ID, VIEWER_DEVICE_CODE, VIEWER_LOGIN, WEB_CLIENT_ID,
};
use support::*;

/// A browser's `auth-token` (30 letters and digits).
const BROWSER_TOKEN: &str = "abcdefghij0123456789klmnopqrst";

/// The test plays the live watcher (its Helix does not answer: see `testing::offline`).
fn viewer_config(dir: &Path, origin: &Origin, twitch: &TwitchFake) -> Arc<Config> {
    let text = format!(
        "[storage]\ndata_dir = {:?}\n{}offline_grace_secs = 1\npoll_interval_secs = 1\n\
         client_id = \"cid\"\nclient_secret = \"secret\"\nid_url = {:?}\n",
        dir.to_str().unwrap(),
        origin.twitch_config(),
        twitch.id_url(),
    );
    let text = recbot::config::testing::offline(&text);
    Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap())
}

async fn start(dir: &Path, origin: &Origin, twitch: &TwitchFake) -> Bot {
    // Every test here searches the logs for tokens.
    capture_logs();
    Bot::start(viewer_config(dir, origin, twitch))
        .await
        .keeping_unmatched()
}

/// A stream whose 1440p60 HEVC source only a logged-in viewer gets.
fn gated(segments: u64, end: End) -> StreamConfig {
    StreamConfig {
        segments,
        end,
        hevc_source: true,
        source_needs_login: true,
        ..Default::default()
    }
}

fn finished(event: &Event) -> Option<(PathBuf, PathBuf)> {
    match &event.kind {
        EventKind::RecordingPartFinished { file, sidecar, .. } => {
            Some((file.clone(), sidecar.clone()))
        }
        _ => None,
    }
}

async fn status_says(bot: &Bot, what: &str) {
    for _ in 0..100 {
        if bot.command("status").await.contains(what) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "status never said {what:?}: {}",
        bot.command("status").await
    );
}

#[tokio::test]
async fn the_viewer_login_records_the_source_a_logged_out_viewer_is_denied() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let twitch = TwitchFake::start("unused-code-123", "unused-refresh").await;
    twitch.state().pending_polls = 1;
    let mut bot = start(dir.path(), &origin, &twitch).await;
    status_says(&bot, "twitch viewer: logged out").await;

    // The device flow, with Twitch's TV client id and no secret; nothing needs pasting.
    let reply = bot.run("auth twitch-viewer").await;
    assert!(reply.ok && reply.private, "{reply:?}");
    assert!(reply.text.contains(USER_CODE), "{reply:?}");
    assert!(reply.text.contains("twitch.tv/activate"), "{reply:?}");
    assert!(!reply.text.contains(VIEWER_DEVICE_CODE));
    let done = bot.wait_for("AuthCompleted", is("AuthCompleted")).await;
    assert!(
        matches!(&done.kind, EventKind::AuthCompleted { service, account }
            if service == "twitch-viewer" && account.as_deref() == Some(VIEWER_LOGIN)),
        "{done:?}"
    );
    let forms = twitch.state().forms.clone();
    assert!(forms
        .iter()
        .all(|(_, f)| field(f, "client_id") == Some(VIEWER_CLIENT_ID)
            && field(f, "client_secret").is_none()));
    origin.accept_viewer("viewer-access-1", VIEWER_CLIENT_ID);
    status_says(&bot, &format!("twitch viewer: logged in as {VIEWER_LOGIN}")).await;

    bot.command("add foo").await;
    origin.go_live("foo", gated(16, End::Endlist));
    bot.live("foo", "s1", "t").await;
    let part = bot
        .wait_for("RecordingPartFinished", is("RecordingPartFinished"))
        .await;
    let (file, sidecar) = finished(&part).unwrap();
    let want: Vec<u8> = (0..16)
        .flat_map(|s| segment_bytes("foo", s, 3000))
        .collect();
    same_bytes(&std::fs::read(&file).unwrap(), &want);
    let sidecar = Sidecar::read(&sidecar).await.unwrap();
    assert_eq!(sidecar.quality, "1440p60");
    assert_eq!(sidecar.codec, Some(Codec::H265));
    assert!(sidecar.withheld.is_empty(), "{:?}", sidecar.withheld);
    // Every token request went out as the viewer, with the viewer's own client id.
    let headers = origin.gql_headers();
    assert!(!headers.is_empty());
    for (client, auth) in &headers {
        assert_eq!(client, VIEWER_CLIENT_ID);
        assert_eq!(auth.as_deref(), Some("OAuth viewer-access-1"));
    }
    bot.wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    let stored = stored_token(&bot.config, "twitch-viewer").await;
    assert_eq!(stored.client_id.as_deref(), Some(VIEWER_CLIENT_ID));
    assert_eq!(stored.account.as_deref(), Some(VIEWER_LOGIN));
    bot.stop().await;
    assert_not_logged(&[
        "viewer-access-1",
        "viewer-refresh-secret",
        VIEWER_DEVICE_CODE,
    ]);
}

#[tokio::test]
async fn pasted_tokens_are_checked_and_a_refused_login_falls_back_to_logged_out() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let twitch = TwitchFake::start("unused-code-123", "unused-refresh").await;
    let mut bot = start(dir.path(), &origin, &twitch).await;

    // Not a token, and a token Twitch does not know: refused, nothing stored.
    let reply = bot
        .run("code twitch-viewer http://localhost:3000/?code=abcdefghij0123456789")
        .await;
    assert!(!reply.ok && reply.text.contains("auth-token"), "{reply:?}");
    let reply = bot
        .run(&format!("code twitch-viewer {BROWSER_TOKEN}"))
        .await;
    assert!(
        !reply.ok && reply.text.contains("does not accept"),
        "{reply:?}"
    );
    assert!(!reply.text.contains(BROWSER_TOKEN));
    assert!(open_store(&bot.config)
        .await
        .token("twitch-viewer")
        .await
        .unwrap()
        .is_none());

    // A browser's token: validated (the web client's), stored, used with the web client id.
    twitch
        .state()
        .viewer_valid
        .push((BROWSER_TOKEN.into(), WEB_CLIENT_ID.into()));
    let reply = bot
        .run(&format!("code twitch-viewer {BROWSER_TOKEN}"))
        .await;
    assert!(reply.ok && reply.private, "{reply:?}");
    assert!(reply.text.contains(VIEWER_LOGIN), "{reply:?}");
    assert!(!reply.text.contains(BROWSER_TOKEN));
    status_says(&bot, "logged in as").await;

    // GQL refuses it (signed out everywhere): the recording goes on logged out, at 1080p,
    // and operators are told what is lost.
    bot.command("add foo").await;
    origin.go_live("foo", gated(12, End::Endlist));
    bot.live("foo", "s1", "t").await;
    let (service, reason, url) = auth_required(&mut bot).await;
    assert_eq!(service, "twitch-viewer");
    assert!(reason.contains("above 1080p"), "{reason}");
    assert!(url.is_none());
    let part = bot
        .wait_for("RecordingPartFinished", is("RecordingPartFinished"))
        .await;
    let sidecar = Sidecar::read(&finished(&part).unwrap().1).await.unwrap();
    assert_eq!(sidecar.quality, "1080p60");
    assert_eq!(sidecar.withheld.len(), 1, "{:?}", sidecar.withheld);
    let headers = origin.gql_headers();
    assert_eq!(
        headers[0],
        (
            WEB_CLIENT_ID.to_string(),
            Some(format!("OAuth {BROWSER_TOKEN}"))
        )
    );
    assert!(
        headers[1..].iter().all(|(_, auth)| auth.is_none()),
        "after the refusal only logged-out requests: {headers:?}"
    );
    status_says(&bot, "twitch viewer: logged out").await;
    bot.stop().await;
    assert_not_logged(&[BROWSER_TOKEN]);
}

#[tokio::test]
async fn a_login_mid_broadcast_moves_the_recording_to_the_source_in_a_new_part() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let twitch = TwitchFake::start("unused-code-123", "unused-refresh").await;
    let mut bot = start(dir.path(), &origin, &twitch).await;
    bot.command("add foo").await;
    origin.go_live("foo", gated(1000, End::Never));
    bot.live("foo", "s1", "t").await;
    bot.wait_for("RecordingStarted", is("RecordingStarted"))
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    twitch
        .state()
        .viewer_valid
        .push((BROWSER_TOKEN.into(), WEB_CLIENT_ID.into()));
    origin.accept_viewer(BROWSER_TOKEN, WEB_CLIENT_ID);
    let reply = bot
        .run(&format!("code twitch-viewer {BROWSER_TOKEN}"))
        .await;
    assert!(reply.ok, "{reply:?}");
    let first = bot
        .wait_for("RecordingPartFinished", is("RecordingPartFinished"))
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    origin.go_offline("foo");
    let second = bot
        .wait_for("RecordingPartFinished", is("RecordingPartFinished"))
        .await;

    let mut seen = Vec::new();
    for (event, quality) in [(&first, "1080p60"), (&second, "1440p60")] {
        let (file, sidecar) = finished(event).unwrap();
        assert_eq!(Sidecar::read(&sidecar).await.unwrap().quality, quality);
        seen.extend(sequences("foo", &std::fs::read(&file).unwrap(), 3000));
    }
    // The second part goes on exactly where the first stopped: nothing lost, nothing twice.
    let want: Vec<u64> = (seen[0]..seen[0] + seen.len() as u64).collect();
    assert_eq!(seen, want);
    eventually(Duration::from_secs(5), || {
        origin
            .gql_headers()
            .last()
            .is_some_and(|(_, a)| a.is_some())
    })
    .await;
    bot.stop().await;
}

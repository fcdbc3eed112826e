//! Chzzk through the core, against the fake Chzzk API (`support::chzzk`) and the local HLS
//! origin (`support::origin`, fMP4 with `EXT-X-MAP` as Chzzk serves): `add` by address and by
//! id (display name looked up, unknown channels and Bilibili refused with nothing stored),
//! live detection on the stepped schedule (seen in `status`), recording from the oldest
//! segment to a part with its sidecar, the playlist token renewed mid-stream without a gap,
//! and adult-only streams announced rather than skipped.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use recbot::archive::sidecar::Sidecar;
use recbot::config::Config;
use recbot::event::EventKind;
use support::chzzk::{ChzzkFake, Live};
use support::origin::{init_bytes, segment_bytes, End, Origin, StreamConfig};
use support::{is, same_bytes, Bot};

const ID: &str = "c68b8ef525fb3d2fa146344d84991753";
const NAME: &str = "치지직 스트리머";
/// The origin's name for the stream the fake Chzzk points at.
const STREAM: &str = "chz";

/// The Twitch watcher stays silent (Helix credentials, a Helix that does not answer).
const PLAYED_WATCHER: &str = "client_id = \"cid\"\nclient_secret = \"secret\"\n";

fn config(dir: &Path, origin: &Origin, chzzk: &ChzzkFake, schedule: &str) -> Arc<Config> {
    let text = format!(
        "[storage]\ndata_dir = {:?}\n{}offline_grace_secs = 1\npoll_interval_secs = 1\n{PLAYED_WATCHER}\
         [chzzk]\napi_url = \"{}\"\nchat_api_url = \"{}\"\npoll_schedule = {schedule}\n",
        dir.to_str().unwrap(),
        origin.twitch_config(),
        chzzk.api_url(),
        chzzk.chat_api_url(),
    );
    let text = recbot::config::testing::offline(&text);
    Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap())
}

async fn start(dir: &Path, origin: &Origin, chzzk: &ChzzkFake, schedule: &str) -> Bot {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("recbot=debug")
        .with_test_writer()
        .try_init();
    Bot::start(config(dir, origin, chzzk, schedule))
        .await
        .keeping_unmatched()
}

/// Checks of an offline channel a second apart.
const FAST: &str = "[\"1s\"]";

fn live_detail_requests(chzzk: &ChzzkFake) -> usize {
    chzzk
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&format!("{ID}/live-detail")))
        .count()
}

fn fmp4_stream(segments: u64) -> StreamConfig {
    StreamConfig {
        fmp4: true,
        segments,
        end: End::Endlist,
        ..Default::default()
    }
}

/// The channel is live on the fake Chzzk, its HLS master the origin's stream.
fn open_on(chzzk: &ChzzkFake, origin: &Origin) {
    chzzk.set(
        ID,
        Live::Open {
            master: format!("{}/hls/{STREAM}/master.m3u8", origin.url()),
        },
    );
}

/// What a part recording the origin's fMP4 stream from its first segment holds.
fn expected(segments: u64, filler: usize) -> Vec<u8> {
    let mut want = init_bytes(STREAM);
    for seq in 0..segments {
        want.extend(segment_bytes(STREAM, seq, filler));
    }
    want
}

#[tokio::test]
async fn chzzk_channels_are_added_by_address_or_id_and_unknown_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let chzzk = ChzzkFake::start().await;
    chzzk.add(ID, NAME);
    let bot = start(dir.path(), &origin, &chzzk, FAST).await;

    let added = bot
        .command(&format!("add https://chzzk.naver.com/live/{ID}"))
        .await;
    assert!(
        added.contains(NAME) && added.contains(&format!("chzzk:{ID}")),
        "{added}"
    );
    let again = bot.command(&format!("add chzzk {ID}")).await;
    assert!(again.starts_with("Already watching"), "{again}");
    let list = bot.command("list").await;
    assert!(list.contains(NAME) && list.contains("Chzzk"), "{list}");

    let unknown = "0123456789abcdef0123456789abcdef";
    let refused = bot.run(&format!("add chzzk {unknown}")).await;
    assert!(!refused.ok, "{refused:?}");
    assert!(refused.text.contains("has no channel"), "{}", refused.text);
    let bilibili = bot.run("add bilibili 23058").await;
    assert!(!bilibili.ok);
    assert!(
        bilibili
            .text
            .contains("Bilibili recording is not available yet"),
        "{}",
        bilibili.text
    );
    let list = bot.command("list").await;
    assert!(list.starts_with("Watching 1:"), "{list}");
    assert!(
        !list.contains(unknown) && !list.contains("bilibili"),
        "{list}"
    );

    // Removed by its key, as `list` shows it.
    bot.command(&format!("remove chzzk:{ID}")).await;
    assert!(bot.command("list").await.starts_with("Not watching"));
    bot.stop().await;
}

#[tokio::test]
async fn a_live_chzzk_channel_is_recorded_and_its_part_finished_when_it_goes_offline() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let chzzk = ChzzkFake::start().await;
    chzzk.add(ID, NAME);
    let stream = fmp4_stream(12);
    let (segments, filler) = (stream.segments, stream.body_len);
    origin.go_live(STREAM, stream);
    open_on(&chzzk, &origin);
    let mut bot = start(dir.path(), &origin, &chzzk, FAST).await;
    bot.command(&format!("add chzzk {ID}")).await;

    let live = bot.wait_for("LiveDetected", is("LiveDetected")).await;
    assert_eq!(live.login.as_ref().unwrap().as_str(), format!("chzzk:{ID}"));
    assert!(live.session.is_some());
    let EventKind::LiveDetected {
        display_name,
        stream_id,
        ..
    } = &live.kind
    else {
        unreachable!()
    };
    assert_eq!(display_name.as_deref(), Some(NAME));
    assert_eq!(stream_id.as_deref(), Some("101"));

    let part = bot.wait_for("part", is("RecordingPartFinished")).await;
    let EventKind::RecordingPartFinished { file, sidecar, .. } = &part.kind else {
        unreachable!()
    };
    // The key becomes a folder name without `:`.
    assert!(
        file.parent()
            .unwrap()
            .ends_with(format!("recordings/chzzk-{ID}")),
        "{file:?}"
    );
    assert_eq!(file.extension().unwrap(), "mp4");
    same_bytes(&std::fs::read(file).unwrap(), &expected(segments, filler));
    let sidecar = Sidecar::read(sidecar).await.unwrap();
    assert_eq!(sidecar.platform.as_deref(), Some("chzzk"));
    assert_eq!(sidecar.display_name.as_deref(), Some(NAME));

    chzzk.set(ID, Live::Close);
    origin.go_offline(STREAM);
    bot.wait_for("StreamOffline", is("StreamOffline")).await;
    bot.wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    assert!(bot
        .seen
        .iter()
        .all(|n| n.event.kind_name() != "RecordingGap"));
    bot.stop().await;
}

#[tokio::test]
async fn an_expiring_playlist_token_is_renewed_mid_stream_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let chzzk = ChzzkFake::start().await;
    chzzk.add(ID, NAME);
    // 10 s of stream; the token lives 6 s, so it is due (a third of its life before its
    // end) after 4 s, mid-stream.
    let stream = fmp4_stream(40);
    let (segments, filler) = (stream.segments, stream.body_len);
    origin.go_live(STREAM, stream);
    let now = chrono::Utc::now().timestamp();
    chzzk.set(
        ID,
        Live::Open {
            master: format!(
                "{}/hls/{STREAM}/master.m3u8?hdnts=st={now}~exp={}~acl=*~hmac=00",
                origin.url(),
                now + 6
            ),
        },
    );
    let mut bot = start(dir.path(), &origin, &chzzk, FAST).await;
    bot.command(&format!("add chzzk {ID}")).await;
    let part = bot.wait_for("part", is("RecordingPartFinished")).await;
    let EventKind::RecordingPartFinished { file, .. } = &part.kind else {
        unreachable!()
    };
    // One part, every segment once, in order: the renewal continued at the next segment.
    same_bytes(&std::fs::read(file).unwrap(), &expected(segments, filler));
    // The master was asked again (through live-detail) at least once after the first time.
    assert!(
        origin.requests("usher") >= 2,
        "master fetched {} times",
        origin.requests("usher")
    );
    assert!(bot
        .seen
        .iter()
        .all(|n| !matches!(n.event.kind_name(), "RecordingGap" | "RecordingFailed")));
    bot.stop().await;
}

#[tokio::test]
async fn an_adult_only_stream_without_cookies_is_announced_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let chzzk = ChzzkFake::start().await;
    chzzk.add(ID, NAME);
    chzzk.set_adult(ID, true);
    origin.go_live(STREAM, fmp4_stream(12));
    open_on(&chzzk, &origin);
    let mut bot = start(dir.path(), &origin, &chzzk, FAST).await;
    bot.command(&format!("add chzzk {ID}")).await;
    let notice = bot.wait_for("LiveAdultOnly", is("LiveAdultOnly")).await;
    let line = recbot::frontend::render::event_line(&notice);
    assert!(
        line.contains("adults only") && line.contains("nid_aut"),
        "{line}"
    );
    // Checked again (live: every first step), but announced once per broadcast.
    let before = live_detail_requests(&chzzk);
    support::origin::eventually(Duration::from_secs(10), || {
        live_detail_requests(&chzzk) >= before + 2
    })
    .await;
    let status = bot.command(&format!("status chzzk:{ID}")).await;
    assert!(status.contains("Next live check in"), "{status}");
    while let Ok(n) = bot.notices.try_recv() {
        bot.seen.push(n);
    }
    let kinds: Vec<&str> = bot.seen.iter().map(|n| n.event.kind_name()).collect();
    assert!(!kinds.contains(&"LiveAdultOnly"), "{kinds:?}");
    assert!(!kinds.contains(&"RecordingStarted"), "{kinds:?}");
    bot.stop().await;
}

#[tokio::test]
async fn an_offline_channel_steps_down_the_schedule_as_status_shows() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let chzzk = ChzzkFake::start().await;
    chzzk.add(ID, NAME);
    let bot = start(dir.path(), &origin, &chzzk, "[\"1s x2\", \"10m\"]").await;
    bot.command(&format!("add chzzk {ID}")).await;
    // Checked at once, then twice a second apart; after the third miss the wait is 10 min.
    support::origin::eventually(Duration::from_secs(10), || {
        live_detail_requests(&chzzk) >= 3
    })
    .await;
    // The third answer may still be on its way to the schedule.
    let mut status = String::new();
    for _ in 0..50 {
        status = bot.command(&format!("status chzzk:{ID}")).await;
        if status.contains("Next live check in 9m") || status.contains("Next live check in 10m") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        status.contains("Next live check in 9m") || status.contains("Next live check in 10m"),
        "{status}"
    );
    assert!(status.contains(NAME), "{status}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        live_detail_requests(&chzzk),
        3,
        "no check before the 10 min"
    );
    // Added again (removed first): back to the top of the schedule.
    bot.command(&format!("remove chzzk {ID}")).await;
    bot.command(&format!("add chzzk {ID}")).await;
    support::origin::eventually(Duration::from_secs(10), || {
        live_detail_requests(&chzzk) >= 5
    })
    .await;
    bot.stop().await;
}

#[tokio::test]
async fn a_chzzk_channels_chat_is_logged_and_saved_beside_its_part() {
    use support::chzzk::{chat_frame, ChatServer};
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let chzzk = ChzzkFake::start().await;
    chzzk.add(ID, NAME);
    origin.go_live(STREAM, fmp4_stream(40));
    open_on(&chzzk, &origin);
    let cid = chzzk.state.lock().unwrap().channels[ID]
        .chat_channel_id
        .clone();
    let chat = ChatServer::start().await;
    let mut config = (*config(dir.path(), &origin, &chzzk, FAST)).clone();
    config.chzzk.chat_ws_url = chat.url.clone();
    let mut bot = Bot::start(Arc::new(config)).await.keeping_unmatched();
    bot.command(&format!("add chzzk {ID}")).await;
    bot.wait_for("RecordingStarted", is("RecordingStarted"))
        .await;
    let joined = bot.wait_for("ChatJoined", is("ChatJoined")).await;
    assert_eq!(
        joined.login.as_ref().unwrap().as_str(),
        format!("chzzk:{ID}")
    );
    let t = chrono::Utc::now().timestamp_millis();
    chat.push(&chat_frame(&cid, &[("u1", "치즈", "녹화 중 채팅", t)]));

    let saved = bot.wait_for("ChatSaved", is("ChatSaved")).await;
    let EventKind::ChatSaved { file, lines, .. } = &saved.kind else {
        unreachable!()
    };
    assert_eq!(*lines, 1, "{saved:?}");
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.contains("녹화 중 채팅") && text.contains("\"platform\":\"chzzk\""),
        "{text}"
    );
    // The day files are in the key's path-safe folder.
    assert!(dir.path().join(format!("chat/chzzk-{ID}")).is_dir());
    bot.stop().await;
}

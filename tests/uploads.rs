//! Uploads end to end in one process: the recorder is played by sending
//! `RecordingPartFinished` with a real file and sidecar; YouTube's upload endpoint and Google's
//! token endpoint are local fakes.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use recbot::archive::sidecar::Sidecar;
use recbot::config::Config;
use recbot::core::store::JobState;
use recbot::event::EventKind;
use recbot::upload::quota;
use support::youtube_state::Fault;
use support::youtube_tcp::TcpYoutube;
use support::*;

const MIB: u64 = 1024 * 1024;
const UNIT: u64 = 256 * 1024;

fn youtube(upload_url: &str, google: &GoogleFake, extra: &str) -> String {
    // The Data API (videos.list) beside the upload endpoint, as on the fake.
    let api_url = upload_url.replace("/upload/youtube/v3/videos", "/youtube/v3");
    format!(
        "enabled = true\nupload_url = {upload_url:?}\napi_url = {api_url:?}\ntoken_url = {:?}\nauth_url = {:?}\n{extra}",
        google.token_url(),
        google.auth_url()
    )
}

/// A core with uploads on, `foo` watched and a YouTube token stored: (access, refresh,
/// seconds until it expires).
async fn start(
    upload_url: &str,
    google: &GoogleFake,
    extra: &str,
    token: (&str, &str, i64),
) -> (tempfile::TempDir, Arc<Config>, Bot) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &youtube(upload_url, google, extra), "");
    store_token(dir.path(), "youtube", token.0, token.1, token.2).await;
    let bot = Bot::start(config.clone()).await;
    assert!(bot.run("add foo").await.ok);
    (dir, config, bot)
}

#[tokio::test]
async fn a_finished_part_is_uploaded_with_its_metadata() {
    capture_logs();
    let yt = YoutubeMock::start("ya29.valid-access").await;
    let google = GoogleFake::start("unused", "1//refresh-secret").await;
    let (_dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        "privacy = \"unlisted\"",
        ("ya29.valid-access", "1//refresh-secret", 3600),
    )
    .await;
    let part = write_part(
        &config,
        "foo",
        "2026-11-21_18-05-00_speedrun",
        2 * MIB + 300_000,
    )
    .await;
    bot.part_finished(&part).await;

    let queued = bot.wait_for("UploadQueued", is("UploadQueued")).await;
    assert_eq!(queued.login.as_ref().unwrap().as_str(), "foo");
    match &queued.kind {
        EventKind::UploadQueued { job, file } => {
            assert_eq!(*job, 1);
            assert_eq!(file, "foo/2026-11-21_18-05-00_speedrun.ts");
        }
        _ => unreachable!(),
    }
    let started = bot.wait_for("UploadStarted", is("UploadStarted")).await;
    assert!(
        matches!(started.kind, EventKind::UploadStarted { bytes, from_bytes: 0, .. } if bytes == part.bytes)
    );
    let finished = bot.wait_for("UploadFinished", is("UploadFinished")).await;
    match &finished.kind {
        EventKind::UploadFinished { video_id, url, .. } => {
            assert_eq!(video_id, "vid0");
            assert_eq!(url, "https://youtu.be/vid0");
        }
        _ => unreachable!(),
    }

    {
        let s = yt.state();
        assert_eq!(s.metadata.len(), 1);
        let m = &s.metadata[0];
        assert_eq!(
            m["snippet"]["title"],
            "FOOTV 2026-11-21 18:05 Speedrun day 3"
        );
        assert_eq!(m["status"]["privacyStatus"], "unlisted");
        let description = m["snippet"]["description"].as_str().unwrap();
        assert!(
            description.contains(
                "Chapters:\n00:00 Speedrun day 3 [Celeste]\n30:00 Speedrun day 3 [Chess]\n\
                 1:06:40 Q&A [Just Chatting]\n"
            ),
            "{description}"
        );
        assert!(description.starts_with("FOOTV live on Twitch: https://www.twitch.tv/foo\n"));
        let headers = &s.init_headers[0];
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("x-upload-content-length"), Some("2397152"));
        assert_eq!(header("x-upload-content-type"), Some("video/mp2t"));
        assert_eq!(
            header("content-type"),
            Some("application/json; charset=UTF-8")
        );
        // Chunks of exactly 1 MiB (a multiple of 256 KiB) but the last, each byte once.
        let chunks: Vec<(u64, u64)> = s.puts.iter().map(|p| (p.start, p.len)).collect();
        assert_eq!(chunks, vec![(0, MIB), (MIB, MIB), (2 * MIB, 300_000)]);
        assert_eq!(s.resent, 0);
        assert_eq!(s.sessions[0].received, part.bytes);
    }
    let sidecar = Sidecar::read(&part.sidecar).await.unwrap();
    assert_eq!(sidecar.youtube_video_id.as_deref(), Some("vid0"));
    assert!(part.file.exists(), "after_upload = keep");

    let uploads = bot.run("uploads").await.text;
    assert!(
        uploads
            .contains("#1 foo 2026-11-21_18-05-00_speedrun.ts — finished: https://youtu.be/vid0"),
        "{uploads}"
    );
    let quota = bot.run("quota").await.text;
    assert!(quota.contains("1 used, 99 left of 100"), "{quota}");
    // The same part reported again is not uploaded twice.
    bot.part_finished(&part).await;
    let status = bot.run("status").await;
    assert!(status.ok);
    bot.stop().await;
    assert_eq!(yt.state().metadata.len(), 1);
    assert_not_logged(&["ya29.valid-access", "1//refresh-secret", CLIENT_SECRET]);
}

#[tokio::test]
async fn a_server_error_mid_chunk_resumes_from_the_servers_offset() {
    let yt = YoutubeMock::start("ya29.valid").await;
    yt.state().plain_308 = true;
    // The first chunk: YouTube keeps 256 KiB of it, then fails with 503.
    yt.state()
        .faults
        .push_back(Fault::KeepThenFail { keep: UNIT });
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) =
        start(&yt.upload_url(), &google, "", ("ya29.valid", "1//r", 3600)).await;
    let part = write_part(&config, "foo", "a", 2 * MIB).await;
    bot.part_finished(&part).await;
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    bot.stop().await;
    {
        let s = yt.state();
        assert_eq!(s.status_queries, 1, "one status query after the error");
        assert_eq!(s.starts(), vec![0, UNIT, UNIT + MIB]);
        assert_eq!(s.resent, 0, "no confirmed byte was sent again");
        assert_eq!(s.sessions.len(), 1);
        assert_eq!(s.sessions[0].received, 2 * MIB);
    }
    // Resuming the same session spends no quota.
    let store = open_store(&config).await;
    let day = quota::pacific_day(Utc::now());
    assert_eq!(store.quota_used(day).await.unwrap(), 1);
}

#[tokio::test]
async fn a_connection_reset_mid_chunk_resumes_from_the_servers_offset() {
    let yt = TcpYoutube::start("ya29.valid").await;
    // Cut the connection 300,000 bytes into the second chunk: the server keeps whole 256 KiB
    // units of it.
    yt.control
        .cut_at
        .store(MIB + 300_000, std::sync::atomic::Ordering::SeqCst);
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) =
        start(&yt.upload_url(), &google, "", ("ya29.valid", "1//r", 3600)).await;
    let part = write_part(&config, "foo", "a", 3 * MIB).await;
    bot.part_finished(&part).await;
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    bot.stop().await;
    let s = yt.state.lock().unwrap();
    assert!(s.status_queries >= 1);
    // After the cut: the status query told where the server stands (whole 256 KiB units of the
    // broken chunk), and sending went on from exactly there.
    let starts = s.starts();
    assert_eq!(starts.len(), 4, "{starts:?}");
    assert_eq!(&starts[..2], &[0, MIB]);
    let resumed = starts[2];
    assert!(
        resumed > MIB && resumed < 2 * MIB && resumed % UNIT == 0,
        "{starts:?}"
    );
    assert_eq!(starts[3], resumed + MIB);
    assert_eq!(s.resent, 0);
    assert_eq!(s.sessions[0].received, 3 * MIB);
}

#[tokio::test]
async fn a_timed_out_chunk_asks_the_server_before_sending_again() {
    let yt = YoutubeMock::start("ya29.valid").await;
    // YouTube stores the first chunk but answers too late.
    yt.state()
        .faults
        .push_back(Fault::SlowAnswer(Duration::from_millis(2500)));
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        "chunk_timeout_secs = 1",
        ("ya29.valid", "1//r", 3600),
    )
    .await;
    bot.part_finished(&write_part(&config, "foo", "a", 2 * MIB).await)
        .await;
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    bot.stop().await;
    let s = yt.state();
    assert_eq!(s.status_queries, 1);
    assert_eq!(
        s.starts(),
        vec![0, MIB],
        "the timed-out chunk was not sent again"
    );
    assert_eq!(s.resent, 0);
}

#[tokio::test]
async fn a_lost_session_starts_a_new_one() {
    let yt = YoutubeMock::start("ya29.valid").await;
    yt.state().faults.push_back(Fault::ForgetSessions);
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) =
        start(&yt.upload_url(), &google, "", ("ya29.valid", "1//r", 3600)).await;
    let part = write_part(&config, "foo", "a", 2 * MIB).await;
    bot.part_finished(&part).await;
    let finished = bot.wait_for("UploadFinished", is("UploadFinished")).await;
    assert!(
        matches!(finished.kind, EventKind::UploadFinished { ref video_id, .. } if video_id == "vid1")
    );
    bot.stop().await;
    {
        let s = yt.state();
        assert_eq!(s.sessions.len(), 2, "404 → a new session");
        assert_eq!(s.metadata.len(), 2);
        assert_eq!(s.sessions[1].received, 2 * MIB);
    }
    // A new session counts against the quota like any other.
    let store = open_store(&config).await;
    assert_eq!(
        store
            .quota_used(quota::pacific_day(Utc::now()))
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn session_starts_youtube_did_not_take_are_not_counted() {
    let yt = YoutubeMock::start("ya29.valid").await;
    for _ in 0..3 {
        yt.state()
            .faults
            .push_back(Fault::Init(503, "backendError"));
    }
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) =
        start(&yt.upload_url(), &google, "", ("ya29.valid", "1//r", 3600)).await;
    bot.part_finished(&write_part(&config, "foo", "a", MIB).await)
        .await;
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    assert_eq!(yt.state().sessions.len(), 1);
    let quota_reply = bot.run("quota").await.text;
    assert!(
        quota_reply.contains("1 used, 99 left of 100"),
        "three refused session starts and one upload: {quota_reply}"
    );
    bot.stop().await;
}

#[tokio::test]
async fn quota_exceeded_waits_for_midnight_pacific_without_spending_requests() {
    let yt = YoutubeMock::start("ya29.valid").await;
    yt.state()
        .faults
        .push_back(Fault::Init(403, "quotaExceeded"));
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) =
        start(&yt.upload_url(), &google, "", ("ya29.valid", "1//r", 3600)).await;
    let a = write_part(&config, "foo", "a", MIB).await;
    bot.part_finished(&a).await;
    let before = quota::next_reset(Utc::now());
    let deferred = bot.wait_for("UploadDeferred", is("UploadDeferred")).await;
    let after = quota::next_reset(Utc::now());
    let EventKind::UploadDeferred { job, reason, until } = deferred.kind else {
        unreachable!()
    };
    assert_eq!(job, 1);
    assert!(until == before || until == after, "{until}");
    assert!(reason.contains("quotaExceeded"), "{reason}");
    // The event says when in UTC and in Pacific time.
    assert!(reason.contains(&quota::describe(until)), "{reason}");
    assert!(reason.contains(" UTC (00:00 P"), "{reason}");

    // A second part waits for the same reset without asking YouTube.
    let b = write_part(&config, "foo", "b", MIB).await;
    bot.part_finished(&b).await;
    let deferred = bot.wait_for("UploadDeferred", is("UploadDeferred")).await;
    assert!(
        matches!(deferred.kind, EventKind::UploadDeferred { job: 2, until: u, .. } if u == until)
    );
    assert_eq!(yt.state().metadata.len(), 1, "no second request");
    let quota_reply = bot.run("quota").await.text;
    assert!(
        quota_reply.contains("100 used, 0 left of 100"),
        "{quota_reply}"
    );
    let uploads = bot.run("uploads").await.text;
    assert!(uploads.contains("#1 foo a.ts — waiting until"), "{uploads}");
    let retry = bot.run("retry 1").await;
    assert!(
        !retry.ok && retry.text.contains("waits for YouTube"),
        "{retry:?}"
    );
    bot.stop().await;
}

#[tokio::test]
async fn upload_limit_exceeded_waits_the_configured_hours() {
    let yt = YoutubeMock::start("ya29.valid").await;
    yt.state()
        .faults
        .push_back(Fault::Init(400, "uploadLimitExceeded"));
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        "upload_limit_wait_hours = 3",
        ("ya29.valid", "1//r", 3600),
    )
    .await;
    bot.part_finished(&write_part(&config, "foo", "a", MIB).await)
        .await;
    let asked = Utc::now();
    let deferred = bot.wait_for("UploadDeferred", is("UploadDeferred")).await;
    let EventKind::UploadDeferred { reason, until, .. } = deferred.kind else {
        unreachable!()
    };
    let wait = until - asked;
    assert!(
        wait > chrono::Duration::minutes(179) && wait <= chrono::Duration::minutes(181),
        "{wait}"
    );
    assert!(reason.contains("uploadLimitExceeded"), "{reason}");
    // Other uploads wait too, without a request.
    bot.part_finished(&write_part(&config, "foo", "b", MIB).await)
        .await;
    bot.wait_for("UploadDeferred", is("UploadDeferred")).await;
    assert_eq!(yt.state().metadata.len(), 1);
    let quota_reply = bot.run("quota").await.text;
    assert!(quota_reply.contains("upload limit"), "{quota_reply}");
    bot.stop().await;
}

#[tokio::test]
async fn the_local_ledger_holds_uploads_beyond_the_daily_limit() {
    let yt = YoutubeMock::start("ya29.valid").await;
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        "daily_upload_limit = 1",
        ("ya29.valid", "1//r", 3600),
    )
    .await;
    bot.part_finished(&write_part(&config, "foo", "a", MIB).await)
        .await;
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    bot.part_finished(&write_part(&config, "foo", "b", MIB).await)
        .await;
    let deferred = bot.wait_for("UploadDeferred", is("UploadDeferred")).await;
    let EventKind::UploadDeferred { reason, until, .. } = deferred.kind else {
        unreachable!()
    };
    assert_eq!(until, quota::next_reset(Utc::now()));
    assert!(reason.contains("daily_upload_limit"), "{reason}");
    assert_eq!(
        yt.state().metadata.len(),
        1,
        "the second upload spent no request"
    );
    assert!(bot.run("quota").await.text.contains("1 used, 0 left of 1"));
    bot.stop().await;
}

#[tokio::test]
async fn after_upload_move_puts_file_and_sidecar_in_uploaded_dir() {
    let yt = YoutubeMock::start("ya29.valid").await;
    let google = GoogleFake::start("unused", "1//r").await;
    let (dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        "after_upload = \"move\"",
        ("ya29.valid", "1//r", 3600),
    )
    .await;
    let part = write_part(&config, "foo", "a", MIB / 2).await;
    bot.part_finished(&part).await;
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    bot.stop().await;
    let moved = dir.path().join("uploaded/foo/a.ts");
    let moved_sidecar = dir.path().join("uploaded/foo/a.json");
    // The chat logger wrote the recording's chat file (before or after the upload finished):
    // it went along.
    let chat = part.file.with_file_name("a.chat.jsonl");
    assert!(!part.file.exists() && !part.sidecar.exists() && !chat.exists());
    assert!(dir.path().join("uploaded/foo/a.chat.jsonl").exists());
    // And its chat replay (`[chat] subtitles = ["ass"]` by default), listed in the sidecar.
    assert!(dir.path().join("uploaded/foo/a.chat.ass").exists());
    assert!(!part.file.with_file_name("a.chat.ass").exists());
    assert!(!dir.path().join("uploaded/foo/a.chat.vtt").exists());
    assert_eq!(tokio::fs::metadata(&moved).await.unwrap().len(), MIB / 2);
    let sidecar = Sidecar::read(&moved_sidecar).await.unwrap();
    assert_eq!(sidecar.youtube_video_id.as_deref(), Some("vid0"));
    assert_eq!(sidecar.subtitles, ["a.chat.ass"]);
}

/// A day of chat for `login` on the test parts' day (2026-11-21), `lines` lines inside the
/// parts' span; returns how many.
fn write_day_log(config: &Config, login: &str, lines: u64) -> u64 {
    use std::io::Write;
    let dir = config.storage.chat_dir().join(login).join("2026/11");
    std::fs::create_dir_all(&dir).unwrap();
    let start = Utc
        .with_ymd_and_hms(2026, 11, 21, 18, 5, 0)
        .unwrap()
        .timestamp_millis();
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("21.jsonl")).unwrap());
    for n in 0..lines {
        writeln!(
            out,
            "{{\"recv_ms\":{},\"id\":\"m{n}\"}}",
            start + 1000 + n as i64
        )
        .unwrap();
    }
    out.flush().unwrap();
    lines
}

/// The first of `ChatSaved`, `ChatSaveFailed` and `UploadStarted`.
async fn chat_answer_or_upload(bot: &mut Bot) -> String {
    let first = bot
        .wait_for("the chat file or the upload", |e| {
            ["ChatSaved", "ChatSaveFailed", "UploadStarted"].contains(&e.kind_name())
        })
        .await;
    first.kind_name().to_string()
}

/// The core sequences a finished part of a login whose chat is logged: chat file written →
/// upload → after-upload. Here the chat file takes a while to write (a busy day of chat);
/// the upload starts only after it, and `after_upload = "move"` takes video, sidecar and chat
/// file together. (When both reacted to the part at once, this upload started, and could
/// finish, before the chat file existed.)
#[tokio::test]
async fn a_part_is_uploaded_once_its_chat_file_is_written_and_moved_with_it() {
    let yt = YoutubeMock::start("ya29.valid").await;
    let google = GoogleFake::start("unused", "1//r").await;
    let (dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        "after_upload = \"move\"",
        ("ya29.valid", "1//r", 3600),
    )
    .await;
    let part = write_part(&config, "foo", "a", MIB / 2).await;
    let lines = write_day_log(&config, "foo", 200_000);
    bot.part_finished(&part).await;
    assert_eq!(chat_answer_or_upload(&mut bot).await, "ChatSaved");
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    bot.stop().await;
    let moved = dir.path().join("uploaded/foo");
    let chat = std::fs::read_to_string(moved.join("a.chat.jsonl")).unwrap();
    assert_eq!(chat.lines().count() as u64, lines);
    assert_eq!(
        tokio::fs::metadata(moved.join("a.ts")).await.unwrap().len(),
        MIB / 2
    );
    assert!(moved.join("a.json").exists());
    let chat_file = part.file.with_file_name("a.chat.jsonl");
    assert!(!part.file.exists() && !part.sidecar.exists() && !chat_file.exists());
}

/// A chat file that takes longer than `[chat] save_timeout_secs` does not hold its upload
/// back: the upload goes without it, and `ChatSaveFailed` says so in the room.
#[tokio::test]
async fn an_upload_goes_without_a_chat_file_that_takes_longer_than_the_timeout() {
    let yt = YoutubeMock::start("ya29.valid").await;
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        "\n[chat]\nsave_timeout_secs = 0.001",
        ("ya29.valid", "1//r", 3600),
    )
    .await;
    let part = write_part(&config, "foo", "a", MIB / 2).await;
    // A busy day of chat: its chat file takes far longer than a millisecond to write.
    write_day_log(&config, "foo", 200_000);
    bot.part_finished(&part).await;
    let failed = bot.wait_for("ChatSaveFailed", is("ChatSaveFailed")).await;
    let EventKind::ChatSaveFailed { part: n, reason } = &failed.kind else {
        unreachable!()
    };
    assert_eq!(*n, 1);
    assert!(reason.contains("save_timeout_secs"), "{reason}");
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    bot.stop().await;
}

/// A chat file that cannot be written (`ChatSaveFailed`) releases the upload.
#[tokio::test]
async fn a_chat_file_that_cannot_be_written_releases_the_upload() {
    let yt = YoutubeMock::start("ya29.valid").await;
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) =
        start(&yt.upload_url(), &google, "", ("ya29.valid", "1//r", 3600)).await;
    let part = write_part(&config, "foo", "a", MIB / 2).await;
    // A folder where the chat file would go: it cannot be renamed into place.
    std::fs::create_dir(part.file.with_file_name("a.chat.jsonl")).unwrap();
    bot.part_finished(&part).await;
    assert_eq!(chat_answer_or_upload(&mut bot).await, "ChatSaveFailed");
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    bot.stop().await;
}

/// A restart with an upload still waiting for its chat file (state deferred, reason
/// chat_file): asked again when the login still logs chat, released at once when chat
/// logging is now off; a wait that ran out meanwhile goes to the upload worker, which uploads
/// without the chat file (and logs a warning), asking the chat logger nothing.
#[tokio::test]
async fn uploads_left_waiting_for_their_chat_file_are_asked_again_released_or_due() {
    use recbot::core::store::NewUploadJob;
    for case in ["asked again", "chat off", "wait ran out"] {
        let yt = YoutubeMock::start("ya29.valid").await;
        let google = GoogleFake::start("unused", "1//r").await;
        let (dir, config, bot) =
            start(&yt.upload_url(), &google, "", ("ya29.valid", "1//r", 3600)).await;
        bot.stop().await;
        let part = write_part(&config, "foo", "a", MIB / 2).await;
        let store = open_store(&config).await;
        let until = match case {
            "wait ran out" => Utc::now() - chrono::Duration::seconds(1),
            _ => Utc::now() + chrono::Duration::hours(1),
        };
        let job = NewUploadJob {
            login: Some(recbot_commands::Login::parse("foo").unwrap()),
            session: None,
            path: part.file.clone(),
            sidecar: Some(part.sidecar.clone()),
            total_bytes: part.bytes,
            node: None,
        };
        store
            .insert_upload_job_waiting_for_chat(&job, until, "waiting for its chat file")
            .await
            .unwrap()
            .unwrap();
        store.close().await;
        let chat = if case == "chat off" {
            "\n[chat]\nenabled = false"
        } else {
            ""
        };
        let config = support::config(dir.path(), &youtube(&yt.upload_url(), &google, ""), chat);
        let mut bot = Bot::start(config).await;
        let first = chat_answer_or_upload(&mut bot).await;
        let expected = if case == "asked again" {
            "ChatSaved"
        } else {
            "UploadStarted"
        };
        assert_eq!(first, expected, "{case}");
        bot.wait_for("UploadFinished", is("UploadFinished")).await;
        bot.stop().await;
        let chat_file = part.file.with_file_name("a.chat.jsonl");
        assert_eq!(chat_file.exists(), case == "asked again", "{case}");
    }
}

/// Waits (10 s at most) until `done` holds, checking every 20 ms.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

const DELETE: &str = "after_upload = \"delete\"\nprocessing_check_secs = 0.05";

#[tokio::test]
async fn after_upload_delete_removes_file_sidecar_and_chat_file() {
    let yt = YoutubeMock::start("ya29.valid").await;
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        DELETE,
        ("ya29.valid", "1//r", 3600),
    )
    .await;
    let part = write_part(&config, "foo", "a", MIB / 2).await;
    let chat = part.file.with_file_name("a.chat.jsonl");
    bot.part_finished(&part).await;
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    eventually("files deleted", || {
        !part.file.exists() && !part.sidecar.exists() && !chat.exists()
    })
    .await;
    bot.stop().await;
    let lists = yt.state().video_lists.clone();
    assert_eq!(
        lists[0],
        ("status,processingDetails".to_string(), "vid0".to_string())
    );
}

/// YouTube still processing (`uploaded`): the files stay, and are checked again (with a
/// growing wait) until it reports `processed`; the wait survives a restart.
#[tokio::test]
async fn after_upload_delete_waits_until_youtube_has_processed_the_video() {
    let yt = YoutubeMock::start("ya29.valid").await;
    let google = GoogleFake::start("unused", "1//r").await;
    yt.state().upload_status = ("uploaded".into(), None);
    let (dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        DELETE,
        ("ya29.valid", "1//r", 3600),
    )
    .await;
    let part = write_part(&config, "foo", "a", MIB / 2).await;
    bot.part_finished(&part).await;
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    eventually("two checks", || yt.state().video_lists.len() >= 2).await;
    assert!(
        part.file.exists() && part.sidecar.exists(),
        "deleted while `uploaded`"
    );
    assert!(bot
        .run("uploads")
        .await
        .text
        .contains("once YouTube has processed it"));
    // A restart goes on waiting: the job says so in the database.
    bot.stop().await;
    let checks = yt.state().video_lists.len();
    let store = open_store(&config).await;
    let job = store.upload_job(1).await.unwrap().unwrap();
    assert_eq!(job.cleanup, Some(recbot::core::store::Cleanup::Waiting));
    store.close().await;
    assert!(part.file.exists());
    let mut bot = Bot::start(config.clone()).await;
    eventually("checked after the restart", || {
        yt.state().video_lists.len() > checks
    })
    .await;
    assert!(part.file.exists() && part.sidecar.exists());
    yt.state().upload_status = ("processed".into(), None);
    eventually("files deleted once processed", || {
        !part.file.exists() && !part.sidecar.exists()
    })
    .await;
    // No notice says anything was kept.
    bot.run("status").await;
    while let Ok(n) = bot.notices.try_recv() {
        assert_ne!(n.event.kind.name(), "UploadFilesKept");
    }
    bot.stop().await;
    let store = open_store(&config).await;
    let job = store.upload_job(1).await.unwrap().unwrap();
    assert_eq!(job.cleanup, Some(recbot::core::store::Cleanup::Done));
    store.close().await;
    drop(dir);
}

/// YouTube rejects the video: nothing is deleted, and a notice says why.
#[tokio::test]
async fn after_upload_delete_keeps_the_files_of_a_rejected_video_and_says_so() {
    let yt = YoutubeMock::start("ya29.valid").await;
    let google = GoogleFake::start("unused", "1//r").await;
    yt.state().upload_status = ("rejected".into(), Some("duplicate".into()));
    let (_dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        DELETE,
        ("ya29.valid", "1//r", 3600),
    )
    .await;
    let part = write_part(&config, "foo", "a", MIB / 2).await;
    let chat = part.file.with_file_name("a.chat.jsonl");
    bot.part_finished(&part).await;
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    let kept = bot.wait_for("UploadFilesKept", is("UploadFilesKept")).await;
    let EventKind::UploadFilesKept { job, reason, .. } = &kept.kind else {
        unreachable!()
    };
    assert_eq!(*job, 1);
    assert!(
        reason.contains("rejected") && reason.contains("duplicate"),
        "{reason}"
    );
    let line = recbot::frontend::render::event_line(&kept);
    assert!(line.contains("kept, not deleted"), "{line}");
    assert!(part.file.exists() && part.sidecar.exists() && chat.exists());
    // Not asked again.
    let checks = yt.state().video_lists.len();
    assert!(bot.run("uploads").await.text.contains("files kept"));
    bot.stop().await;
    assert_eq!(yt.state().video_lists.len(), checks);
    assert!(part.file.exists());
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed() {
    capture_logs();
    let yt = YoutubeMock::start("ya29.fresh1").await;
    let google = GoogleFake::start("unused", "1//refresh-keep").await;
    let (_dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        "",
        ("ya29.expired", "1//refresh-keep", -10),
    )
    .await;
    bot.part_finished(&write_part(&config, "foo", "a", MIB).await)
        .await;
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    bot.stop().await;
    let forms = google.state().forms.clone();
    assert_eq!(forms.len(), 1);
    assert!(forms[0].contains(&("grant_type".into(), "refresh_token".into())));
    assert_eq!(yt.state().unauthorized, 0);
    let token = stored_token(&config, "youtube").await;
    assert_eq!(token.access_token.expose(), "ya29.fresh1");
    assert_eq!(token.refresh_token.unwrap().expose(), "1//refresh-keep");
    assert_not_logged(&["ya29.fresh1", "ya29.expired", "1//refresh-keep"]);
}

#[tokio::test]
async fn a_refused_access_token_is_refreshed_once() {
    let yt = YoutubeMock::start("ya29.fresh1").await;
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) =
        start(&yt.upload_url(), &google, "", ("ya29.stale", "1//r", 3000)).await;
    bot.part_finished(&write_part(&config, "foo", "a", MIB).await)
        .await;
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    // The session start refused for the stale token is not counted.
    let quota_reply = bot.run("quota").await.text;
    assert!(
        quota_reply.contains("1 used, 99 left of 100"),
        "{quota_reply}"
    );
    bot.stop().await;
    assert_eq!(yt.state().unauthorized, 1);
    assert_eq!(google.state().forms.len(), 1);
}

#[tokio::test]
async fn a_revoked_refresh_token_pauses_uploads_and_asks_for_consent() {
    capture_logs();
    let yt = YoutubeMock::start("ya29.fresh1").await;
    let google = GoogleFake::start("4/0AfreshCode-x_y", "1//new-refresh").await;
    google.state().refresh_token = "1//other".into();
    let (_dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        "",
        ("ya29.old", "1//revoked-refresh", -10),
    )
    .await;
    bot.part_finished(&write_part(&config, "foo", "a", MIB).await)
        .await;
    let (service, reason, url) = auth_required(&mut bot).await;
    assert_eq!(service, "youtube");
    assert!(reason.contains("revoked"), "{reason}");
    // No link in the (possibly public) events room; the operator asks for one privately.
    assert_eq!(url, None);
    let reply = bot.run("auth youtube").await;
    assert!(reply.ok && reply.private, "{reply:?}");
    let url = reply
        .text
        .lines()
        .find(|l| l.starts_with("http"))
        .expect("a fresh consent link")
        .to_string();
    assert!(url.starts_with(&google.auth_url()), "{url}");
    assert!(url.contains("redirect_uri=http://127.0.0.1:8085/"), "{url}");
    assert!(
        url.contains("scope=https://www.googleapis.com/auth/youtube.upload"),
        "{url}"
    );
    assert!(url.contains("access_type=offline") && url.contains("prompt=select_account"));
    assert!(!url.contains("oob"), "{url}");

    // Paused, not failed; a second part pauses too without another notice.
    let store = open_store(&config).await;
    assert_eq!(
        store.upload_job(1).await.unwrap().unwrap().state,
        JobState::Paused
    );
    let uploads = bot.run("uploads").await.text;
    assert!(
        uploads.contains("paused until YouTube is authorized again"),
        "{uploads}"
    );

    // The operator approves and pastes the address the browser was sent to.
    google.state().refresh_token = "1//new-refresh".into();
    let reply = bot
        .run("code youtube http://127.0.0.1:8085/?code=4%2F0AfreshCode-x_y&scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fyoutube.upload")
        .await;
    assert!(reply.ok && reply.private, "{reply:?}");
    assert!(reply.text.contains("YouTube is connected"), "{reply:?}");
    assert!(!reply.text.contains("4/0AfreshCode"));
    bot.wait_for("AuthCompleted", is("AuthCompleted")).await;
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    bot.stop().await;
    let exchange = google.state().forms.last().unwrap().clone();
    assert!(exchange.contains(&("code".into(), "4/0AfreshCode-x_y".into())));
    assert!(exchange.contains(&("redirect_uri".into(), "http://127.0.0.1:8085/".into())));
    let token = store.token("youtube").await.unwrap().unwrap();
    assert_eq!(token.refresh_token.unwrap().expose(), "1//new-refresh");
    assert_not_logged(&[
        "4/0AfreshCode",
        "1//new-refresh",
        "1//revoked-refresh",
        "ya29.fresh1",
    ]);
}

#[tokio::test]
async fn other_refusals_fail_the_job_and_keep_the_file_until_retried() {
    let yt = YoutubeMock::start("ya29.valid").await;
    yt.state()
        .faults
        .push_back(Fault::Init(400, "invalidTitle"));
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) =
        start(&yt.upload_url(), &google, "", ("ya29.valid", "1//r", 3600)).await;
    let part = write_part(&config, "foo", "a", MIB).await;
    bot.part_finished(&part).await;
    let failed = bot.wait_for("UploadFailed", is("UploadFailed")).await;
    let EventKind::UploadFailed { reason, .. } = failed.kind else {
        unreachable!()
    };
    assert!(reason.contains("invalidTitle"), "{reason}");
    assert!(part.file.exists());
    assert!(bot
        .run("uploads")
        .await
        .text
        .contains("failed: YouTube refused it"));
    let retry = bot.run("retry 1").await;
    assert!(retry.ok, "{retry:?}");
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    let again = bot.run("retry 1").await;
    assert!(
        !again.ok && again.text.contains("already on YouTube"),
        "{again:?}"
    );
    bot.stop().await;
}

#[tokio::test]
async fn errors_in_a_row_are_bounded_and_reported() {
    let yt = YoutubeMock::start("ya29.valid").await;
    for _ in 0..3 {
        yt.state().faults.push_back(Fault::Put(503, "backendError"));
    }
    let google = GoogleFake::start("unused", "1//r").await;
    let (_dir, config, mut bot) = start(
        &yt.upload_url(),
        &google,
        "retry_limit = 2\nmax_attempts = 2",
        ("ya29.valid", "1//r", 3600),
    )
    .await;
    bot.part_finished(&write_part(&config, "foo", "a", MIB).await)
        .await;
    let deferred = bot.wait_for("UploadDeferred", is("UploadDeferred")).await;
    let EventKind::UploadDeferred { reason, until, .. } = deferred.kind else {
        unreachable!()
    };
    assert!(reason.contains("2 errors in a row"), "{reason}");
    assert!(until > Utc::now() + chrono::Duration::minutes(29));
    // `retry` skips the wait; the job then succeeds.
    assert!(bot.run("retry 1").await.ok);
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    // Three failed chunks, a deferral and a second turn, all on the one session YouTube
    // opened: the ledger counts the job once.
    assert_eq!(yt.state().sessions.len(), 1);
    let quota_reply = bot.run("quota").await.text;
    assert!(
        quota_reply.contains("1 used, 99 left of 100"),
        "{quota_reply}"
    );
    bot.stop().await;
}

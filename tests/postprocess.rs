//! Post-processing end to end with the real ffmpeg (installed by `.ci/run` when missing): the
//! recorder is played by sending `RecordingPartFinished` for a small generated TS; YouTube and
//! Google are local fakes. The upload waits for the MP4 and takes it; a missing ffmpeg is
//! reported once and parts go up as recorded; a job cut short starts over after a restart.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use chrono::Utc;
use recbot::archive::sidecar::{Chapter, Sidecar};
use recbot::config::Config;
use recbot::core::store::PostState;
use recbot::event::EventKind;
use support::*;

/// A 2 s MPEG-TS part of `login` with its sidecar (two chapters).
async fn ts_part(config: &Config, login: &str, name: &str) -> Part {
    let dir = config.storage.recordings_dir().join(login);
    tokio::fs::create_dir_all(&dir).await.unwrap();
    let file = dir.join(format!("{name}.ts"));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=160x90:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "mpegts"])
        .arg(&file)
        .status()
        .expect("ffmpeg runs (apt-get install ffmpeg)");
    assert!(status.success());
    let started = Utc::now();
    let chapter = |offset_secs: f64, title: &str| Chapter {
        at: started,
        offset_secs,
        title: title.into(),
        game: Some("Chess".into()),
    };
    let bytes = std::fs::metadata(&file).unwrap().len();
    let sidecar = Sidecar {
        login: login.into(),
        source: "twitch".into(),
        session: 1,
        part: 1,
        file: format!("{name}.ts"),
        quality: "160p30".into(),
        started,
        ended: started,
        duration_secs: 2.0,
        bytes,
        chapters: vec![chapter(0.0, "opening"), chapter(1.0, "endgame")],
        ..Sidecar::default()
    };
    let side = Sidecar::path_for(&file);
    sidecar.write(&side).await.unwrap();
    Part {
        login: login.into(),
        file,
        sidecar: side,
        bytes,
    }
}

fn youtube(yt: &YoutubeMock, google: &GoogleFake) -> String {
    let api_url = yt
        .upload_url()
        .replace("/upload/youtube/v3/videos", "/youtube/v3");
    format!(
        "enabled = true\nupload_url = {:?}\napi_url = {api_url:?}\ntoken_url = {:?}\nauth_url = {:?}\n",
        yt.upload_url(),
        google.token_url(),
        google.auth_url()
    )
}

/// The config with `[postprocess]` set to `post` (appended after `[twitch]`).
fn with_post(dir: &Path, yt: &YoutubeMock, google: &GoogleFake, post: &str) -> Arc<Config> {
    config(
        dir,
        &youtube(yt, google),
        &format!("\n[postprocess]\n{post}\n"),
    )
}

async fn started(dir: &Path, config: Arc<Config>) -> Bot {
    store_token(dir, "youtube", "ya29.valid", "1//r", 3600).await;
    let bot = Bot::start(config).await.keeping_unmatched();
    assert!(bot.run("add foo").await.ok);
    bot
}

#[tokio::test]
async fn a_part_is_remuxed_and_its_upload_takes_the_verified_mp4() {
    let yt = YoutubeMock::start_media("ya29.valid").await;
    let google = GoogleFake::start("unused", "1//r").await;
    let dir = tempfile::tempdir().unwrap();
    let config = with_post(dir.path(), &yt, &google, "mode = \"remux\"");
    let mut bot = started(dir.path(), config.clone()).await;
    let part = ts_part(&config, "foo", "a").await;
    bot.part_finished(&part).await;

    let post_started = bot.wait_for("PostStarted", is("PostStarted")).await;
    assert!(matches!(&post_started.kind,
        EventKind::PostStarted { file, mode, .. } if file == "foo/a.ts" && mode == "remux"));
    let finished = bot.wait_for("PostFinished", is("PostFinished")).await;
    let EventKind::PostFinished {
        file, bytes, secs, ..
    } = &finished.kind
    else {
        unreachable!()
    };
    assert_eq!(file, "foo/a.mp4");
    assert!((secs - 2.0).abs() < 0.2, "{secs}");
    let mp4 = part.file.with_extension("mp4");
    assert_eq!(*bytes, std::fs::metadata(&mp4).unwrap().len());
    // The upload waited for it and sent the MP4, whole.
    let upload = bot.wait_for("UploadStarted", is("UploadStarted")).await;
    assert!(matches!(upload.kind, EventKind::UploadStarted { bytes: b, .. } if b == *bytes));
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    {
        let s = yt.state();
        let headers = &s.init_headers[0];
        let content_type = headers.iter().find(|(k, _)| k == "x-upload-content-type");
        assert_eq!(content_type.map(|(_, v)| v.as_str()), Some("video/mp4"));
        assert_eq!(s.sessions[0].received, *bytes);
    }
    assert!(*yt.received.lock().unwrap() == std::fs::read(&mp4).unwrap());
    assert!(part.file.exists(), "keep_original = true");
    let store = open_store(&config).await;
    let job = store.post_job(1).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.output.as_deref()),
        (PostState::Finished, Some(mp4.as_path()))
    );
    store.close().await;
    bot.stop().await;
}

#[tokio::test]
async fn a_missing_ffmpeg_is_reported_once_and_parts_go_up_as_recorded() {
    let yt = YoutubeMock::start_media("ya29.valid").await;
    let google = GoogleFake::start("unused", "1//r").await;
    let dir = tempfile::tempdir().unwrap();
    let config = with_post(
        dir.path(),
        &yt,
        &google,
        "mode = \"remux\"\nffmpeg = \"/nonexistent/ffmpeg\"",
    );
    let mut bot = started(dir.path(), config.clone()).await;
    let failed = bot.wait_for("PostFailed", is("PostFailed")).await;
    let EventKind::PostFailed { job, reason, .. } = &failed.kind else {
        unreachable!()
    };
    assert_eq!(*job, None);
    assert!(
        reason.contains("cannot run `/nonexistent/ffmpeg`"),
        "{reason}"
    );
    let part = ts_part(&config, "foo", "b").await;
    bot.part_finished(&part).await;
    let upload = bot.wait_for("UploadStarted", is("UploadStarted")).await;
    assert!(matches!(upload.kind, EventKind::UploadStarted { bytes, .. } if bytes == part.bytes));
    bot.stop().await;
    assert!(!part.file.with_extension("mp4").exists());
}

/// `add … post=remux` with `[postprocess] mode = "none"`: that login's parts are remuxed
/// (the worker started on first need), another login's go up as recorded; the mode is kept
/// with the login and shown by `list`.
#[tokio::test]
async fn a_login_added_with_post_remux_is_remuxed_while_others_are_not() {
    let yt = YoutubeMock::start_media("ya29.valid").await;
    let google = GoogleFake::start("unused", "1//r").await;
    let dir = tempfile::tempdir().unwrap();
    let config = with_post(dir.path(), &yt, &google, "mode = \"none\"");
    let mut bot = started(dir.path(), config.clone()).await;
    let added = bot.run("add bar post=remux").await;
    assert!(added.ok, "{}", added.text);
    assert!(added.text.contains("post remux"), "{}", added.text);
    assert!(bot.run("list").await.text.contains("post remux"));
    let refused = bot.run("add bar post=mp4").await;
    assert!(
        !refused.ok && refused.text.contains("post"),
        "{}",
        refused.text
    );

    let plain = ts_part(&config, "foo", "a").await;
    bot.part_finished(&plain).await;
    let upload = bot.wait_for("UploadStarted", is("UploadStarted")).await;
    assert!(matches!(upload.kind, EventKind::UploadStarted { bytes, .. } if bytes == plain.bytes));
    bot.wait_for("UploadFinished", is("UploadFinished")).await;

    let part = ts_part(&config, "bar", "b").await;
    bot.part_finished(&part).await;
    let post_started = bot.wait_for("PostStarted", is("PostStarted")).await;
    assert!(matches!(&post_started.kind,
        EventKind::PostStarted { file, mode, .. } if file == "bar/b.ts" && mode == "remux"));
    bot.wait_for("PostFinished", is("PostFinished")).await;
    let mp4 = part.file.with_extension("mp4");
    let upload = bot.wait_for("UploadStarted", is("UploadStarted")).await;
    assert!(matches!(upload.kind,
        EventKind::UploadStarted { bytes, .. } if bytes == std::fs::metadata(&mp4).unwrap().len()));
    assert!(!plain.file.with_extension("mp4").exists());
    let store = open_store(&config).await;
    assert_eq!(
        store.post_job(1).await.unwrap().unwrap().mode,
        Some(recbot_commands::PostMode::Remux)
    );
    store.close().await;
    bot.stop().await;
}

/// An "ffmpeg" that answers `-version` and otherwise hangs, as a job killed mid-way.
fn hanging_ffmpeg(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("hanging-ffmpeg");
    std::fs::write(
        &path,
        "#!/bin/sh\ncase \"$1\" in -version) echo 'ffmpeg version hanging'; exit 0;; esac\n\
         echo 'half written' > \"$(eval echo \\${$#})\"\nexec sleep 30\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn a_job_cut_short_starts_over_after_a_restart_and_its_upload_waits() {
    let yt = YoutubeMock::start_media("ya29.valid").await;
    let google = GoogleFake::start("unused", "1//r").await;
    let dir = tempfile::tempdir().unwrap();
    let hanging = hanging_ffmpeg(dir.path());
    let post = format!("mode = \"remux\"\nffmpeg = {:?}", hanging.to_str().unwrap());
    let config = with_post(dir.path(), &yt, &google, &post);
    let mut bot = started(dir.path(), config.clone()).await;
    let part = ts_part(&config, "foo", "c").await;
    bot.part_finished(&part).await;
    bot.wait_for("PostStarted", is("PostStarted")).await;
    bot.wait_for("UploadQueued", is("UploadQueued")).await;
    // ffmpeg "crashes" (is killed with recbot) mid-job.
    let temp = PathBuf::from(format!(
        "{}.recbot-tmp",
        part.file.with_extension("mp4").display()
    ));
    eventually_exists(&temp).await;
    bot.stop().await;
    assert!(yt.state().sessions.is_empty(), "the upload waited");

    let config = with_post(dir.path(), &yt, &google, "mode = \"remux\"");
    let mut bot = Bot::start(config.clone()).await.keeping_unmatched();
    let finished = bot.wait_for("PostFinished", is("PostFinished")).await;
    let EventKind::PostFinished { bytes, .. } = finished.kind else {
        unreachable!()
    };
    let upload = bot.wait_for("UploadStarted", is("UploadStarted")).await;
    assert!(matches!(upload.kind, EventKind::UploadStarted { bytes: b, .. } if b == bytes));
    bot.wait_for("UploadFinished", is("UploadFinished")).await;
    bot.stop().await;
    assert!(!temp.exists());
}

async fn eventually_exists(path: &Path) {
    for _ in 0..200 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{} never appeared", path.display());
}

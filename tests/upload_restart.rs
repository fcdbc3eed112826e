//! The `recbot` binary killed with SIGKILL in the middle of an upload: the next start resumes
//! the persisted session from the server's offset, and no byte YouTube had is sent again.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use recbot::core::store::{JobState, NewUploadJob, Store, StoredToken};
use recbot::secret::Secret;
use support::binary::Running;
use support::youtube_tcp::TcpYoutube;

const MIB: u64 = 1024 * 1024;

async fn job_state(db: &Path) -> (JobState, u64) {
    let store = Store::open(db).await.unwrap();
    let job = store.upload_job(1).await.unwrap().unwrap();
    store.close().await;
    (job.state, job.confirmed_bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upload_resumes_its_session_without_resending() {
    let dir = tempfile::tempdir().unwrap();
    let yt = TcpYoutube::start("ya29.restart-token").await;
    // The fake stops reading a little into the third 1 MiB chunk.
    yt.control.stall_at.store(2 * MIB + 1, Ordering::SeqCst);
    let config = dir.path().join("recbot.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"data\"\n[http]\nlisten = \"\"\n[youtube]\nenabled = true\n\
             client_id = \"cid\"\nclient_secret = \"csecret\"\nupload_url = {:?}\n\
             chunk_size_mib = 1\nretry_initial_ms = 20\n",
            yt.upload_url()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let db = data.join("recbot.sqlite");
    let file = data.join("recordings/foo/a.ts");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let total = 5 * MIB;
    std::fs::write(&file, (0..total).map(support::pattern).collect::<Vec<u8>>()).unwrap();
    {
        let store = Store::open(&db).await.unwrap();
        store
            .put_token(
                "youtube",
                &StoredToken {
                    access_token: Secret::new("ya29.restart-token"),
                    refresh_token: Some(Secret::new("1//r")),
                    expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
                    scopes: "s".into(),
                    client_id: None,
                    account: None,
                },
            )
            .await
            .unwrap();
        let id = store
            .insert_upload_job(&NewUploadJob {
                login: Some(recbot_commands::Login::parse("foo").unwrap()),
                session: None,
                path: file.clone(),
                sidecar: None,
                total_bytes: total,
                node: None,
            })
            .await
            .unwrap();
        assert_eq!(id, Some(1));
        store.close().await;
    }

    let mut first = Running::start(&config);
    first.wait_for("upload #1 started").await;
    // Two chunks confirmed and persisted, the third one stuck.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (state, confirmed) = job_state(&db).await;
        if confirmed == 2 * MIB && yt.control.stalled.load(Ordering::SeqCst) {
            assert_eq!(state, JobState::Uploading);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stuck at {confirmed}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.child.kill().unwrap(); // SIGKILL: no shutdown, nothing flushed
    first.child.wait().unwrap();
    // Let the fake notice the dead connection; it keeps whole 256 KiB units of that chunk.
    yt.control.stall_at.store(u64::MAX, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while yt.state.lock().unwrap().puts.len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "cut not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server_had = yt.state.lock().unwrap().sessions[0].received;
    assert!(server_had >= 2 * MIB, "{server_had}");

    let second = Running::start(&config);
    let resumed = second.wait_for("upload #1 resumed at 40%").await;
    assert!(resumed.contains("a.ts"), "{resumed}");
    second
        .wait_for("upload #1 finished: https://youtu.be/vid0")
        .await;
    let mut second = second;
    let _ = Command::new("kill")
        .args(["-TERM", &second.child.id().to_string()])
        .status();
    second.child.wait().unwrap();

    {
        let s = yt.state.lock().unwrap();
        assert_eq!(s.metadata.len(), 1, "the same session, not a new one");
        assert_eq!(s.sessions.len(), 1);
        assert_eq!(s.status_queries, 1, "one status query after the restart");
        assert_eq!(s.resent, 0, "no byte YouTube had was sent again");
        let after_restart: Vec<u64> = s.puts[3..].iter().map(|p| p.start).collect();
        assert_eq!(
            after_restart.first(),
            Some(&server_had),
            "{after_restart:?}"
        );
        assert!(after_restart.iter().all(|start| *start >= server_had));
        assert_eq!(s.sessions[0].received, total);
    }
    let (state, confirmed) = job_state(&db).await;
    assert_eq!((state, confirmed), (JobState::Finished, total));
    // The job resumed its session after the restart: counted once, not once per run.
    let store = Store::open(&db).await.unwrap();
    let day = recbot::upload::quota::pacific_day(chrono::Utc::now());
    assert_eq!(store.quota_used(day).await.unwrap(), 1);
}

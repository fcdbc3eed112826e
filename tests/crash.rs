//! A real `kill -9` of the `recbot` binary while it records: the next start finishes the
//! `.part` it left (sidecar marked recovered) and records on into the next part of the same
//! session.

mod support;

use std::time::Duration;

use recbot::archive::sidecar::Sidecar;
use support::binary::Running;
use support::origin::{End, Origin, StreamConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_recording_then_recover_and_record_on() {
    let origin = Origin::start().await;
    origin.go_live(
        "studio",
        StreamConfig {
            segments: 100_000,
            end: End::Never,
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("recbot.toml");
    std::fs::write(
        &config,
        recbot::config::testing::offline(
            "[storage]\ndata_dir = \"data\"\n[twitch]\npoll_interval_secs = 1\noffline_grace_secs = 3\n",
        ),
    )
    .unwrap();
    let url = format!("{}/hls/studio/720p30/index.m3u8", origin.url());

    let dir_path = dir.path().to_path_buf();
    let config2 = config.clone();
    tokio::task::spawn_blocking(move || {
        let mut bot = Running::start(&config2);
        bot.wait_for_blocking("started, watching 0");
        bot.send(&format!("add hls {url} studio"));
        bot.wait_for_blocking("⏺ studio: recording (source)");
        std::thread::sleep(Duration::from_millis(1500));
        bot.child.kill().unwrap(); // SIGKILL
        bot.child.wait().unwrap();
        let folder = dir_path.join("data/recordings/studio");
        let names: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.ends_with(".ts.part")), "{names:?}");

        let bot = Running::start(&config2);
        let line = bot.wait_for_blocking("(recovered after a crash)");
        assert!(line.contains("studio: part 1 finished"), "{line}");
        let line = bot.wait_for_blocking("⏺ studio: recording part 2");
        assert!(line.contains("(source)"), "{line}");
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let sidecar = names
            .iter()
            .find(|n| n.ends_with(".json") && !n.contains(".part"))
            .expect("a sidecar for the recovered part");
        let sidecar: Sidecar =
            serde_json::from_slice(&std::fs::read(folder.join(sidecar)).unwrap()).unwrap();
        assert!(sidecar.recovered);
        assert_eq!(sidecar.part, 1);
        assert!(sidecar.bytes > 0);
        let recovered = std::fs::read(folder.join(&sidecar.file)).unwrap();
        assert_eq!(recovered.len() as u64, sidecar.bytes);
        // Segments are written whole when complete: the file holds whole segments from the
        // first on.
        let one = support::origin::segment_bytes("studio", 0, 3000).len();
        assert_eq!(recovered.len() % one, 0, "{} bytes", recovered.len());
        let n = (recovered.len() / one) as u64;
        let want: Vec<u8> = (0..n)
            .flat_map(|s| support::origin::segment_bytes("studio", s, 3000))
            .collect();
        assert!(recovered == want, "recovered content differs");
        let mut bot = bot;
        bot.child.kill().unwrap();
        bot.child.wait().unwrap();
    })
    .await
    .unwrap();
}

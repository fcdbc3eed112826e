use std::collections::HashSet;

use chrono::Duration;
use tokio::sync::mpsc;

use super::*;
use crate::archive::sidecar::{AdBreak, Chapter, Gap};
use crate::chat::writer::day_path;
use crate::config::AfterUpload;

/// A session of two parts in `dir/recordings/foo` with an ad break, a gap and a title change
/// in its sidecars, chat in the day files and viewer samples.
async fn session(dir: &Path) -> SummaryJob {
    let started = Utc::now() - Duration::minutes(90);
    let at = |m: i64| started + Duration::minutes(m);
    let folder = dir.join("recordings/foo");
    std::fs::create_dir_all(&folder).unwrap();
    let mut parts = Vec::new();
    for (number, from) in [(1u32, 0i64), (2, 50)] {
        let path = folder.join(format!("p{number}.ts"));
        std::fs::write(&path, b"video").unwrap();
        let sidecar = Sidecar {
            login: "foo".into(),
            part: number,
            file: format!("p{number}.ts"),
            started: at(from),
            ended: at(from + 40),
            chapters: vec![Chapter {
                at: at(from),
                offset_secs: 0.0,
                title: format!("title {number}"),
                game: Some("Chess".into()),
            }],
            ad_breaks: vec![AdBreak {
                at: at(from + 10),
                offset_secs: 600.0,
                duration_secs: 90.0,
            }],
            gaps: vec![Gap {
                at: at(from + 20),
                offset_secs: 1200.0,
                first_sequence: 1,
                last_sequence: 2,
                seconds: 4.0,
                reason: "test".into(),
                elapsed_secs: None,
            }],
            ..Sidecar::default()
        };
        sidecar.write(&Sidecar::path_for(&path)).await.unwrap();
        parts.push(PartFile {
            number,
            path,
            started: at(from),
        });
    }
    let chat = dir.join("chat");
    let day = day_path(&chat, "foo", started.date_naive());
    std::fs::create_dir_all(day.parent().unwrap()).unwrap();
    let lines: String = (0..300)
        .map(|i| {
            let t = started.timestamp_millis() + i * 17_000;
            format!("{{\"recv_ms\":{t},\"raw\":\"x\"}}\n")
        })
        .collect();
    std::fs::write(&day, lines).unwrap();
    let samples = (0..18)
        .map(|i| Sample {
            at: at(i * 5),
            viewers: Some(100 + i as u64 * 3),
            title: if i < 9 { "title 1" } else { "title 2" }.into(),
            game: Some("Chess".into()),
        })
        .collect();
    SummaryJob {
        login: Login::parse("foo").unwrap(),
        session: 7,
        title: "title 1".into(),
        started,
        ended: at(90),
        parts,
        samples,
        chat_dir: Some(chat),
        after: None,
    }
}

async fn made(job: SummaryJob) -> Event {
    let (tx, mut rx) = mpsc::channel(4);
    run(job, Events::new(tx)).await;
    rx.recv().await.unwrap()
}

#[tokio::test]
async fn the_chart_is_written_beside_the_first_part_and_listed_in_its_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let job = session(dir.path()).await;
    let first = job.parts[0].path.clone();
    let event = made(job).await;
    assert_eq!(event.session, Some(7));
    let EventKind::SummaryReady {
        path,
        samples,
        chat_lines,
    } = event.kind
    else {
        panic!("{:?}", event.kind)
    };
    assert_eq!(path, first.with_file_name("p1.summary.png"));
    assert_eq!((samples, chat_lines), (18, 300));
    let (w, h, pixels) = chart::tests::decode(&std::fs::read(&path).unwrap());
    assert_eq!((w, h), (chart::WIDTH, chart::HEIGHT));
    assert!(pixels.iter().collect::<HashSet<_>>().len() > 50);
    // The ad break's shade (amber over white) is there.
    assert!(pixels
        .iter()
        .any(|p| p[0] == 255 && p[1] > 230 && p[2] < 200));
    let sidecar = Sidecar::read(&Sidecar::path_for(&first)).await.unwrap();
    assert_eq!(sidecar.summary.as_deref(), Some("p1.summary.png"));
    let second = Sidecar::read(&first.with_file_name("p2.json"))
        .await
        .unwrap();
    assert_eq!(second.summary, None);
    // No temporary file is left.
    let names: Vec<_> = std::fs::read_dir(first.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".recbot-tmp")),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_first_part_moved_after_its_upload_gets_the_chart_where_it_went() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = session(dir.path()).await;
    let plan = Plan::new(
        AfterUpload::Move,
        dir.path().join("recordings"),
        dir.path().join("uploaded"),
    );
    let first = job.parts[0].path.clone();
    plan.apply(&first, Some(&Sidecar::path_for(&first))).await;
    job.after = Some(plan);
    let event = made(job).await;
    let EventKind::SummaryReady { path, .. } = event.kind else {
        panic!("{:?}", event.kind)
    };
    assert_eq!(path, dir.path().join("uploaded/foo/p1.summary.png"));
    assert!(path.exists());
    let sidecar = Sidecar::read(&dir.path().join("uploaded/foo/p1.json"))
        .await
        .unwrap();
    assert_eq!(sidecar.summary.as_deref(), Some("p1.summary.png"));
}

#[tokio::test]
async fn a_chart_that_cannot_be_written_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = session(dir.path()).await;
    // The first part's folder is gone (and nothing moved it): the write fails.
    std::fs::remove_dir_all(dir.path().join("recordings/foo")).unwrap();
    job.chat_dir = None;
    let event = made(job).await;
    let EventKind::SummaryFailed { reason } = event.kind else {
        panic!("{:?}", event.kind)
    };
    assert!(reason.contains("p1.summary.png"), "{reason}");
    // A session without parts has nothing to draw beside.
    let mut job = session(dir.path()).await;
    job.parts.clear();
    assert_eq!(made(job).await.kind.name(), "SummaryFailed");
}

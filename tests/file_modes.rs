//! Files recbot creates are owner-only whatever the umask: the data folder, the state database
//! and its `-wal`/`-shm`, the recordings and chat folders. One test in its own binary, because
//! the umask is process-wide.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use recbot::core::store::Store;
use recbot::recorder::writer::PartFile;
use rustix::fs::Mode;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn data_files_and_folders_are_owner_only_whatever_the_umask() {
    let logs = support::capture_logs();
    // The usual umask: files 0644 and folders 0755 unless recbot asks for less.
    rustix::process::umask(Mode::from_raw_mode(0o022));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = data.join("recbot.sqlite");
    let store = Store::open(&db).await.unwrap();
    // A write, so SQLite has its -wal and -shm files.
    store.schema_version().await.unwrap();
    assert_eq!(mode(&data), 0o700, "data folder");
    for file in ["recbot.sqlite", "recbot.sqlite-wal", "recbot.sqlite-shm"] {
        let path = data.join(file);
        assert!(path.exists(), "{file}");
        assert_eq!(mode(&path), 0o600, "{file}");
    }
    store.close().await;

    // An existing database others can read (an older version, a restore) is tightened.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::open(&db).await.unwrap();
    assert_eq!(mode(&db), 0o600);
    store.close().await;
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("made owner-only"))
        .unwrap_or_else(|| panic!("the tightening is not logged:\n{text}"));
    assert!(
        line.contains("recbot.sqlite") && line.contains("0644"),
        "{line}"
    );

    // Recording folders (created with the first part of a login).
    let part = PartFile::create(data.join("recordings/foo/x.ts"))
        .await
        .unwrap();
    assert_eq!(mode(&data.join("recordings")), 0o700);
    assert_eq!(mode(&data.join("recordings/foo")), 0o700);
    drop(part);
}

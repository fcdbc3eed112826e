use std::path::Path;

use chrono::NaiveDate;

use super::files::DayFile;
use super::*;
use std::fs::File;

#[test]
fn chat_folders_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat");
    DayFile::open(&chat, "foo", day_of(1_764_000_000_000), true).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&chat), 0o700);
    let mut folder = day_path(&chat, "foo", date_of_day(day_of(1_764_000_000_000)));
    while folder.pop() && folder != chat {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
}

fn settings(dir: &Path, queue_lines: usize) -> WriterSettings {
    WriterSettings {
        dir: dir.to_path_buf(),
        flush_interval: Duration::from_millis(50),
        fsync_interval: Duration::from_millis(200),
        queue_lines,
        patience: Duration::from_millis(100),
        max_open_files: 2,
        compression: Compression::None,
    }
}

fn batch(lines: &[(&str, i64, &str)]) -> Batch {
    let mut b = Batch::default();
    for (folder, ms, text) in lines {
        b.buf.extend_from_slice(text.as_bytes());
        b.buf.push(b'\n');
        b.push_entry(Arc::from(*folder), *ms);
    }
    b
}

const DAY: i64 = 86_400_000;

#[test]
fn days_and_paths() {
    let date = NaiveDate::from_ymd_opt(2017, 10, 5).unwrap();
    let day = day_of(1507246572675);
    assert_eq!(date_of_day(day), date);
    assert_eq!(day_of_date(date), day);
    assert_eq!(day_of(-1), -1);
    assert_eq!(
        day_path(Path::new("/c"), "ronni", date),
        PathBuf::from("/c/ronni/2017/10/05.jsonl")
    );
}

#[tokio::test]
async fn writes_rotates_evicts_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, counters, task) = writer(settings(dir.path(), 1000), Arc::default());
    let task = tokio::spawn(task);
    let d0 = 20_000 * DAY;
    assert!(
        queue
            .push(batch(&[
                ("a", d0 + 5, "a1"),
                ("b", d0 + 6, "b1"),
                ("a", d0 + DAY - 1, "a2"),
                ("a", d0 + DAY, "a3 next day"),
                ("c", d0, "c1 evicts one"),
                ("a", d0 + DAY + 1, "a4"),
            ]))
            .await
    );
    queue.flush().await;
    let read = |folder: &str, day: i32| {
        std::fs::read_to_string(day_path(dir.path(), folder, date_of_day(day))).unwrap_or_default()
    };
    let day0 = day_of(d0);
    assert_eq!(read("a", day0), "a1\na2\n");
    assert_eq!(read("a", day0 + 1), "a3 next day\na4\n");
    assert_eq!(read("b", day0), "b1\n");
    assert_eq!(read("c", day0), "c1 evicts one\n");
    {
        let c = counters.lock().unwrap();
        assert_eq!(c.lines("a", day0 + 1), Some(2));
        assert_eq!(c.lines("b", day0), Some(1));
    }
    drop(queue);
    task.await.unwrap();
    assert_eq!(read("a", day0 + 1), "a3 next day\na4\n");
}

#[tokio::test]
async fn reopening_repairs_a_cut_line_and_counts_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let day = 20_000;
    let path = day_path(dir.path(), "a", date_of_day(day));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "old1\nold2\ncut-of").unwrap();
    let (queue, counters, task) = writer(settings(dir.path(), 1000), Arc::default());
    let task = tokio::spawn(task);
    queue.push(batch(&[("a", day as i64 * DAY, "new")])).await;
    // The lines that were there are counted beside the writer.
    wait_for_count(&counters, "a", day, 4).await;
    drop(queue);
    task.await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "old1\nold2\ncut-of\nnew\n"
    );
}

async fn wait_for_count(counters: &Mutex<Counters>, folder: &str, day: i32, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = counters.lock().unwrap().lines(folder, day);
        if got == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{folder}: counted {got:?}, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `rooms` day files of `day` already holding `lines` lines each.
fn existing(dir: &Path, rooms: usize, day: i32, lines: usize) -> Vec<String> {
    let old = "o".repeat(99) + "\n";
    (0..rooms)
        .map(|r| {
            let folder = format!("room{r}");
            let path = day_path(dir, &folder, date_of_day(day));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, old.repeat(lines)).unwrap();
            folder
        })
        .collect()
}

#[tokio::test]
async fn more_rooms_than_open_files_loses_and_recounts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let day = 20_000;
    let rooms = existing(dir.path(), 8, day, 1000);
    let mut s = settings(dir.path(), 64);
    s.max_open_files = 4;
    let (queue, counters, task) = writer(s, Arc::default());
    let task = tokio::spawn(task);
    // Round robin over twice as many rooms as open files: every line reopens a file.
    for i in 0..400 {
        let folder = rooms[i % rooms.len()].as_str();
        let text = format!("new{i}");
        assert!(
            queue
                .push(batch(&[(folder, day as i64 * DAY, &text)]))
                .await
        );
    }
    queue.flush().await;
    assert_eq!(queue.dropped(), 0);
    for (r, folder) in rooms.iter().enumerate() {
        wait_for_count(&counters, folder, day, 1050).await;
        let text = std::fs::read_to_string(day_path(dir.path(), folder, date_of_day(day))).unwrap();
        let new: Vec<&str> = text.lines().skip(1000).collect();
        let expected: Vec<String> = (0..50).map(|k| format!("new{}", k * 8 + r)).collect();
        assert_eq!(new, expected, "{folder}");
    }
    drop(queue);
    task.await.unwrap();
}

#[test]
fn reopening_reads_nothing_and_closes_the_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let day = 20_000;
    let rooms = existing(dir.path(), 8, day, 10);
    let cap = Cap {
        configured: 4,
        rooms: Arc::default(),
        budget: 1000,
    };
    let counters = Arc::new(Mutex::new(Counters::default()));
    let mut files = Files::new(
        dir.path().to_path_buf(),
        cap,
        counters,
        Arc::default(),
        Arc::default(),
        Compression::None,
    );
    let at = day as i64 * DAY;
    for i in 0..400 {
        files.append(&batch(&[(rooms[i % 8].as_str(), at, "x")]));
    }
    assert_eq!(files.open.len(), 4);
    // Each file's earlier lines are counted once per day, not on every reopen…
    assert_eq!(files.to_count.len(), 8);
    // …and a closed file's fsync waits for the sync tick instead of the next line.
    assert!(!files.unsynced_closed.is_empty());
    files.sync_all();
    assert!(files.unsynced_closed.is_empty());
    // Least recently *used*, not least recently written out (buffers are still unwritten).
    files.close_all();
    for folder in ["a", "b", "c", "d", "a", "e"] {
        files.append(&batch(&[(folder, at, "y")]));
    }
    let mut open: Vec<&str> = files.open.keys().map(|k| k.as_ref()).collect();
    open.sort();
    assert_eq!(open, ["a", "c", "d", "e"]);
}

#[tokio::test]
async fn timer_flushes_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _, task) = writer(settings(dir.path(), 1000), Arc::default());
    let task = tokio::spawn(task);
    let day = 20_000;
    queue.push(batch(&[("a", day as i64 * DAY, "x")])).await;
    let path = day_path(dir.path(), "a", date_of_day(day));
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&path).unwrap_or_default() != "x\n" {
        assert!(Instant::now() < deadline, "not flushed by the timer");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(queue);
    task.await.unwrap();
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_growing() {
    let dir = tempfile::tempdir().unwrap();
    // The writer task is never run: the disk "cannot keep up" at all.
    let (queue, _, _task) = writer(settings(dir.path(), 100), Arc::default());
    let lines: Vec<(&str, i64, &str)> = (0..60).map(|_| ("a", 0, "x")).collect();
    assert!(queue.push(batch(&lines)).await);
    assert_eq!(queue.dropped(), 0);
    assert!(!queue.push(batch(&lines)).await, "over capacity");
    assert_eq!(queue.dropped(), 60);
    assert!(
        queue.push(batch(&lines[..40])).await,
        "what fits still goes"
    );
    assert_eq!(queue.dropped(), 60);
}

#[tokio::test]
async fn an_unwritable_folder_counts_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the login's folder should be.
    std::fs::write(dir.path().join("a"), "not a folder").unwrap();
    let (queue, _, task) = writer(settings(dir.path(), 1000), Arc::default());
    let task = tokio::spawn(task);
    queue
        .push(batch(&[("a", 0, "x"), ("a", 1, "y"), ("b", 2, "z")]))
        .await;
    queue.flush().await;
    assert_eq!(queue.dropped(), 2);
    drop(queue);
    task.await.unwrap();
    assert_eq!(
        std::fs::read_to_string(day_path(dir.path(), "b", date_of_day(0))).unwrap(),
        "z\n"
    );
}

/// Every line of a day's files (plain first), through the readers' module.
fn day_lines(dir: &Path, folder: &str, day: i32) -> Vec<String> {
    let mut lines = Vec::new();
    for path in crate::chat::day_files::files_of(dir, folder, date_of_day(day)) {
        crate::chat::day_files::read(&path, None, &mut |item| {
            match item {
                crate::chat::day_files::Item::Line(l) => {
                    lines.push(String::from_utf8(l.to_vec()).unwrap())
                }
                crate::chat::day_files::Item::Damaged => lines.push("DAMAGED".into()),
            }
            Ok(true)
        })
        .unwrap();
    }
    lines
}

fn zstd_files(dir: &Path) -> Files {
    let cap = Cap {
        configured: 8,
        rooms: Arc::default(),
        budget: 1000,
    };
    let counters = Arc::new(Mutex::new(Counters::default()));
    Files::new(
        dir.to_path_buf(),
        cap,
        counters,
        Arc::default(),
        Arc::default(),
        Compression::Zstd { level: 3 },
    )
}

#[test]
fn a_compressed_file_cut_at_every_byte_of_its_last_frame_is_repaired_on_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let day = 20_000;
    let at = day as i64 * DAY;
    // Two write-outs: two frames, each with its mark.
    let mut files = zstd_files(dir.path());
    files.append(&batch(&[("a", at, "old1"), ("a", at, "old2")]));
    files.flush_all();
    let first_end = std::fs::metadata(zst_path(dir.path(), "a", date_of_day(day)))
        .unwrap()
        .len();
    files.append(&batch(&[("a", at + 1, "old3")]));
    files.close_all();
    let path = zst_path(dir.path(), "a", date_of_day(day));
    let whole = std::fs::read(&path).unwrap();
    assert_eq!(day_lines(dir.path(), "a", day), ["old1", "old2", "old3"]);
    let mark_start = whole.len() - crate::chat::frames::MARK_LEN;
    for cut in first_end as usize..=whole.len() {
        std::fs::write(&path, &whole[..cut]).unwrap();
        let mut files = zstd_files(dir.path());
        files.append(&batch(&[("a", at + 2, "new")]));
        files.close_all();
        let mut expected = vec!["old1", "old2"];
        if cut >= mark_start {
            // The last frame is whole (only its mark was cut): it stays.
            expected.push("old3");
        }
        expected.push("new");
        assert_eq!(day_lines(dir.path(), "a", day), expected, "cut at {cut}");
        // Repaired for good: the file ends in a mark again, and a seek finds the new frame.
        let file = File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        assert!(
            crate::chat::frames::ends_whole(&file, len).unwrap(),
            "{cut}"
        );
        let from = crate::chat::frames::seek(&file, len, at + 2 + 60_001).unwrap();
        assert_eq!(from, len, "every frame is older than that: {cut}");
    }
}

#[tokio::test]
async fn a_day_begun_plain_goes_on_compressed_and_is_read_and_counted_whole() {
    let dir = tempfile::tempdir().unwrap();
    let day = 20_000;
    let plain = day_path(dir.path(), "a", date_of_day(day));
    std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
    std::fs::write(&plain, "p1\np2\np3\n").unwrap();
    let mut s = settings(dir.path(), 1000);
    s.compression = Compression::Zstd { level: 3 };
    let (queue, counters, task) = writer(s, Arc::default());
    let task = tokio::spawn(task);
    let at = day as i64 * DAY;
    queue.push(batch(&[("a", at, "z1"), ("a", at, "z2")])).await;
    wait_for_count(&counters, "a", day, 5).await;
    drop(queue);
    task.await.unwrap();
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "p1\np2\np3\n");
    assert_eq!(
        day_lines(dir.path(), "a", day),
        ["p1", "p2", "p3", "z1", "z2"]
    );
    assert_eq!(
        crate::chat::day_files::count_day(dir.path(), "a", date_of_day(day)),
        5
    );
}

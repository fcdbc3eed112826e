//! The state database (SQLite through sqlx, WAL mode, embedded migrations run at start). Owned
//! by the core, the only writer; every method is one short transaction.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use recbot_commands::{Login, Quality, Source};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tracing::{error, warn};

use crate::event::{Event, EventKind, Room};
use crate::recorder::writer::create_private_dir_all;

mod chat;
mod outbox;
mod recordings;
mod tokens;
mod uploads;

pub use outbox::{LogPage, PostedMessage};
pub use recordings::{PartRow, SessionRow, SessionTotals};
pub use tokens::StoredToken;
pub use uploads::{Cleanup, JobState, NewUploadJob, UploadJob, WaitReason};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("src/core/store/migrations");

/// One entry of the watch list: the desired state for a login.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub name: Login,
    pub source: Source,
    pub quality: Quality,
    pub upload: bool,
    pub chat: bool,
    /// Where it was added; its events are posted there.
    pub room: Room,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// The data folder is created owner-only (0700) and the database with its `-wal` and
    /// `-shm` files are owner-only (0600) whatever the umask; existing ones that others could
    /// read are tightened, with a warning.
    pub async fn open(path: &Path) -> Result<Store> {
        let owned = path.to_path_buf();
        let tightened = tokio::task::spawn_blocking(move || make_private(&owned))
            .await
            .context("the file-mode check stopped")??;
        for (file, mode) in tightened {
            warn!(
                file = %file.display(),
                was = %format!("{mode:04o}"),
                "the state database was readable by other users; made owner-only (0600)"
            );
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the state database {}", path.display()))?;
        MIGRATIONS
            .run(&pool)
            .await
            .context("cannot migrate the state database")?;
        Ok(Store { pool })
    }

    /// The highest migration applied.
    pub async fn schema_version(&self) -> Result<i64> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    pub async fn watches(&self) -> Result<Vec<Watch>> {
        let rows = sqlx::query("SELECT * FROM watches ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(watch_from_row).collect()
    }

    pub async fn watch(&self, name: &Login) -> Result<Option<Watch>> {
        let row = sqlx::query("SELECT * FROM watches WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(watch_from_row).transpose()
    }

    /// Inserts or replaces the watch entry.
    pub async fn put_watch(&self, w: &Watch) -> Result<()> {
        let (source, url) = match &w.source {
            Source::Twitch => ("twitch", None),
            Source::Hls { url } => ("hls", Some(url.as_str())),
        };
        sqlx::query(
            "INSERT INTO watches (name, source, hls_url, quality, upload, chat, room, added_by, added_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET source = excluded.source, hls_url = excluded.hls_url,
               quality = excluded.quality, upload = excluded.upload, chat = excluded.chat",
        )
        .bind(w.name.as_str())
        .bind(source)
        .bind(url)
        .bind(w.quality.as_str())
        .bind(w.upload)
        .bind(w.chat)
        .bind(w.room.to_string())
        .bind(&w.added_by)
        .bind(w.added_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the entry; `false` when there was none.
    pub async fn delete_watch(&self, name: &Login) -> Result<bool> {
        let done = sqlx::query("DELETE FROM watches WHERE name = ?")
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Appends to the event log; returns the event's sequence number. An event whose JSON
    /// would not read back (serde_json writes NaN and ±inf as `null`; see
    /// [`clamp_non_finite`]) is refused: one unreadable row would stop every reader at it.
    pub async fn append_event(&self, event: &Event) -> Result<i64> {
        let payload = serde_json::to_string(event)?;
        serde_json::from_str::<Event>(&payload).with_context(|| {
            format!(
                "the {} event would not read back from the log",
                event.kind_name()
            )
        })?;
        let id = sqlx::query("INSERT INTO events (at, kind, name, payload) VALUES (?, ?, ?, ?)")
            .bind(event.at)
            .bind(event.kind_name())
            .bind(event.login.as_ref().map(Login::as_str))
            .bind(payload)
            .execute(&self.pool)
            .await?
            .last_insert_rowid();
        Ok(id)
    }

    /// The newest `limit` events (optionally of one login), oldest first.
    pub async fn recent_events(&self, name: Option<&Login>, limit: i64) -> Result<Vec<Event>> {
        // Two statements, not one with `?1 IS NULL OR name = ?1`: SQLite plans a statement
        // once, and that form cannot use `events_by_name`, so it scanned the whole log.
        let rows = match name {
            Some(name) => {
                sqlx::query(RECENT_OF_LOGIN)
                    .bind(name.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(RECENT)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows
            .iter()
            .filter_map(readable_event)
            .map(|(_, e)| e)
            .collect())
    }

    #[cfg(test)]
    pub(crate) fn pool_for_tests(&self) -> SqlitePool {
        self.pool.clone()
    }

    /// Waits for pending writes and closes the database cleanly (WAL checkpointed).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The newest events, oldest first (`?1`: how many).
const RECENT: &str = "SELECT id, payload FROM (SELECT id, payload FROM events
    ORDER BY id DESC LIMIT ?1) ORDER BY id";
/// The newest events of one login, oldest first (`?1`: login, `?2`: how many); an index
/// search on `events_by_name`.
const RECENT_OF_LOGIN: &str = "SELECT id, payload FROM (SELECT id, payload FROM events
    WHERE name = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id";

/// The id and event of an event-log row (`id`, `payload`). A row that cannot be read (written
/// by an older or newer recbot, or damaged) is logged and left out, so that it holds up
/// neither `status` nor the front-ends' delivery, which go on after it.
fn readable_event(row: &sqlx::sqlite::SqliteRow) -> Option<(i64, Event)> {
    let id: i64 = match row.try_get("id") {
        Ok(id) => id,
        Err(e) => {
            error!(error = %e, "unreadable row in the event log; skipped");
            return None;
        }
    };
    let payload: Result<String, _> = row.try_get("payload");
    let parsed = payload
        .map_err(anyhow::Error::from)
        .and_then(|p| serde_json::from_str(&p).map_err(anyhow::Error::from));
    match parsed {
        Ok(event) => Some((id, event)),
        Err(e) => {
            error!(id, error = %e, "unreadable event in the event log; skipped");
            None
        }
    }
}

/// Replaces the floats JSON cannot hold (NaN, ±inf) in `event` by 0 (an unknown latency by
/// none), so that it can be stored and read back; `true` when something was replaced.
pub fn clamp_non_finite(event: &mut Event) -> bool {
    fn fix(value: &mut f64) -> bool {
        if value.is_finite() {
            return false;
        }
        *value = 0.0;
        true
    }
    match &mut event.kind {
        EventKind::LiveDetected { latency_secs, .. } => {
            let bad = latency_secs.is_some_and(|l| !l.is_finite());
            if bad {
                *latency_secs = None;
            }
            bad
        }
        EventKind::RecordingGap { seconds, .. } => fix(seconds),
        EventKind::AdBreak { duration_secs }
        | EventKind::RecordingPartFinished { duration_secs, .. }
        | EventKind::RecordingFinished { duration_secs, .. } => fix(duration_secs),
        EventKind::DiskLow {
            used_percent,
            free_gb,
            ..
        } => fix(used_percent) | fix(free_gb),
        EventKind::ChatReconnected { offline_secs } => fix(offline_secs),
        EventKind::UploadProgress { bytes_per_sec, .. } => fix(bytes_per_sec),
        _ => false,
    }
}

/// Creates the data folder (0700) and the database file (0600) if missing, so that SQLite's
/// `-wal` and `-shm` files, which it creates with the database's mode, are owner-only too; and
/// takes group and world access away from those that exist (blocking). Returns the files
/// tightened, with their previous mode.
fn make_private(path: &Path) -> Result<Vec<(PathBuf, u32)>> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir_all(dir)
            .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        // An empty file is an empty SQLite database.
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot create {}", path.display()));
        }
    }
    let mut tightened = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = PathBuf::from(file);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o700))
                .with_context(|| format!("cannot make {} owner-only", file.display()))?;
            tightened.push((file, mode));
        }
    }
    Ok(tightened)
}

fn watch_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Watch> {
    let name: String = row.try_get("name")?;
    let source: String = row.try_get("source")?;
    let source = match source.as_str() {
        "twitch" => Source::Twitch,
        "hls" => Source::Hls {
            url: row.try_get("hls_url")?,
        },
        other => return Err(anyhow!("unknown source `{other}` for {name}")),
    };
    let quality: String = row.try_get("quality")?;
    let room: String = row.try_get("room")?;
    Ok(Watch {
        name: Login::from_stored(&name).map_err(|e| anyhow!(e))?,
        source,
        quality: Quality::parse(&quality).map_err(|e| anyhow!(e))?,
        upload: row.try_get("upload")?,
        chat: row.try_get("chat")?,
        room: Room::from_str(&room).map_err(|e| anyhow!(e))?,
        added_by: row.try_get("added_by")?,
        added_at: row.try_get("added_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(name: &str) -> Watch {
        Watch {
            name: Login::parse(name).unwrap(),
            source: Source::Twitch,
            quality: Quality::BEST,
            upload: true,
            chat: false,
            room: Room::Slack("C1".into()),
            added_by: "U1".into(),
            added_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn watches_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/recbot.sqlite");
        let store = Store::open(&path).await.unwrap();
        let latest = MIGRATIONS.iter().map(|m| m.version).max().unwrap();
        assert_eq!(store.schema_version().await.unwrap(), latest);
        store.put_watch(&watch("foo")).await.unwrap();
        let mut hls = watch("studio");
        hls.source = Source::Hls {
            url: "https://example.com/a.m3u8".into(),
        };
        store.put_watch(&hls).await.unwrap();
        store.close().await;

        let store = Store::open(&path).await.unwrap();
        let all = store.watches().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name.as_str(), "foo");
        assert_eq!(all[0].room, Room::Slack("C1".into()));
        assert!(!all[0].chat);
        assert_eq!(all[1].source, hls.source);
        assert!(store.delete_watch(&all[0].name).await.unwrap());
        assert!(!store.delete_watch(&all[0].name).await.unwrap());
        assert!(store.watch(&all[0].name).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn events_are_appended_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let foo = Login::parse("foo").unwrap();
        for i in 0..5 {
            let kind = crate::event::EventKind::ServiceStarted {
                version: i.to_string(),
                watching: i,
            };
            let login = (i % 2 == 0).then(|| foo.clone());
            store.append_event(&Event::now(login, kind)).await.unwrap();
        }
        let all = store.recent_events(None, 3).await.unwrap();
        assert_eq!(all.len(), 3);
        let of_foo = store.recent_events(Some(&foo), 10).await.unwrap();
        assert_eq!(of_foo.len(), 3);
        assert!(of_foo.iter().all(|e| e.login.as_ref() == Some(&foo)));
        let newest_of_foo = store.recent_events(Some(&foo), 2).await.unwrap();
        assert_eq!(newest_of_foo, of_foo[1..]);
    }

    #[tokio::test]
    async fn non_finite_floats_are_clamped_or_refused_never_stored_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let foo = Login::parse("foo").unwrap();
        let finished = |duration_secs| EventKind::RecordingFinished {
            parts: 1,
            duration_secs,
            bytes: 10,
            gaps: 0,
        };
        // Written as-is, an infinite duration becomes `null` and the row cannot be read.
        let bad = Event::now(Some(foo.clone()), finished(f64::INFINITY));
        assert!(store.append_event(&bad).await.is_err());
        // Clamped, it is stored and reads back.
        let mut clamped = bad.clone();
        assert!(clamp_non_finite(&mut clamped));
        assert_eq!(clamped.kind, finished(0.0));
        store.append_event(&clamped).await.unwrap();
        for kind in [
            EventKind::DiskLow {
                used_percent: f64::NAN,
                free_gb: f64::NEG_INFINITY,
                stopped_recording: false,
            },
            EventKind::UploadProgress {
                job: 1,
                sent_bytes: 1,
                total_bytes: 2,
                bytes_per_sec: f64::NAN,
            },
            EventKind::LiveDetected {
                stream_id: None,
                display_name: None,
                title: "t".into(),
                game: None,
                viewers: None,
                started_at: None,
                latency_secs: Some(f64::INFINITY),
            },
        ] {
            let mut event = Event::now(Some(foo.clone()), kind);
            assert!(clamp_non_finite(&mut event), "{event:?}");
            assert!(!clamp_non_finite(&mut event), "clamped once");
            store.append_event(&event).await.unwrap();
        }
        assert_eq!(store.recent_events(Some(&foo), 10).await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn an_unreadable_row_is_skipped_by_every_reader() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let foo = Login::parse("foo").unwrap();
        let stalled =
            |seconds| Event::now(Some(foo.clone()), EventKind::RecordingStalled { seconds });
        store.append_event(&stalled(1)).await.unwrap();
        // What an older recbot wrote for an infinite duration.
        sqlx::query("INSERT INTO events (at, kind, name, payload) VALUES (?, ?, ?, ?)")
            .bind(Utc::now())
            .bind("RecordingFinished")
            .bind("foo")
            .bind(r#"{"at":"2026-01-01T00:00:00Z","login":"foo","kind":{"type":"RecordingFinished","parts":1,"duration_secs":null,"bytes":1,"gaps":0}}"#)
            .execute(&store.pool)
            .await
            .unwrap();
        store.append_event(&stalled(3)).await.unwrap();

        let recent = store.recent_events(Some(&foo), 10).await.unwrap();
        let kinds: Vec<EventKind> = recent.into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [stalled(1).kind, stalled(3).kind]);
        assert_eq!(store.recent_events(None, 10).await.unwrap().len(), 2);
        // The outbox's page goes past it.
        let page = store.events_after(0, 2).await.unwrap();
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.scanned_to, Some(2), "the bad row counts as scanned");
        let page = store.events_after(1, 1).await.unwrap();
        assert!(page.events.is_empty());
        assert_eq!(page.scanned_to, Some(2));
        let page = store.events_after(2, 10).await.unwrap();
        assert_eq!(
            page.events.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [3]
        );
    }

    /// SQLite's plan for `sql`, one line per step.
    async fn plan(store: &Store, sql: &str, binds: &[&str]) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(&explain);
        for bind in binds {
            query = query.bind(*bind);
        }
        let rows = query.fetch_all(&store.pool).await.unwrap();
        rows.iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn a_logins_recent_events_are_an_index_search_not_a_scan_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let plan = plan(&store, RECENT_OF_LOGIN, &["foo", "5"]).await;
        assert!(plan.contains("USING INDEX events_by_name"), "{plan}");
        assert!(!plan.contains("SCAN events"), "{plan}");
    }
}

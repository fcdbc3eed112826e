//! The SQLite backend (through sqlx): opening the database file owner-only, WAL mode, the
//! embedded migrations (`migrations/`), and the SQL of every area, expanded from `super::sql`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use tracing::warn;

use super::create_private_dir_all;

// The SQL of every area, written once in `super::sql`; what SQLite says its own way:
// - `collate_c`: nothing, SQLite already orders text by bytes (BINARY) and knows no "C"
//   collation.
// - `greatest`: SQLite's scalar two-argument `MAX` (it has no `GREATEST`).
super::sql::all_areas_sql!(
    SqliteBackend,
    sqlx::Sqlite,
    collate_c = "",
    greatest = "MAX"
);

pub(super) static MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("src/core/store/sqlite/migrations");

/// A SQLite database file and its connection pool.
#[derive(Debug)]
pub(super) struct SqliteBackend {
    pool: SqlitePool,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date,
    /// making the files owner-only first (see [`super::Store::open`]).
    pub(super) async fn open(path: &Path) -> Result<SqliteBackend> {
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
        Ok(SqliteBackend { pool })
    }

    #[cfg(test)]
    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait::async_trait]
impl super::Backend for SqliteBackend {
    async fn schema_version(&self) -> Result<i64> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    async fn check_writable(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        sqlx::query("ROLLBACK").execute(&mut *conn).await?;
        Ok(())
    }

    /// Also checkpoints the WAL.
    async fn close(&self) {
        self.pool.close().await;
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::core::store::suite::{store_suite, Harness};
    use crate::core::store::Store;

    /// A SQLite database in a temporary folder; each `open` is a new connection to it, as
    /// after a restart.
    pub(super) struct SqliteHarness {
        dir: tempfile::TempDir,
    }

    impl SqliteHarness {
        pub(super) fn new() -> SqliteHarness {
            SqliteHarness {
                dir: tempfile::tempdir().unwrap(),
            }
        }
    }

    #[async_trait::async_trait]
    impl Harness for SqliteHarness {
        async fn open(&self) -> Store {
            Store::open(&self.dir.path().join("state/recbot.sqlite"))
                .await
                .unwrap()
        }

        fn latest_schema_version(&self) -> i64 {
            MIGRATIONS.iter().map(|m| m.version).max().unwrap()
        }

        async fn write_raw_event(
            &self,
            store: &Store,
            at: DateTime<Utc>,
            kind: &str,
            name: &str,
            payload: &str,
        ) {
            sqlx::query("INSERT INTO events (at, kind, name, payload) VALUES (?, ?, ?, ?)")
                .bind(at)
                .bind(kind)
                .bind(name)
                .bind(payload)
                .execute(&store.pool_for_tests())
                .await
                .unwrap();
        }
    }

    store_suite!(SqliteHarness::new());
}

//! The state database, as one interface with one implementation per database engine. Owned by
//! the core, the only writer; every method is one short transaction.
//!
//! Each area of the state has its trait and its backend-independent row types in a file named
//! after it (`watches`, `events`, `outbox`, `recordings`, `tokens`, `uploads`, `vod_fills`, `post_jobs`, `settings`, `samples`, `leases`); [`Backend`]
//! gathers them. [`Store`] is the cheap-clone handle the core and the workers hold: it derefs
//! to the backend, so `store.watch(login).await` calls the trait method. The SQLite
//! implementation (the embedded default: WAL mode, embedded migrations run at start) is in
//! `sqlite/`; the PostgreSQL one (`[storage] database_url`) in `postgres/`, with a twin of every
//! SQLite migration. Their SQL is written once, in `sql/`, one macro per area expanded for each
//! engine. Both run the same tests (`suite`); [`Store::open_config`] chooses by the
//! configuration.

use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::archive::files::create_private_dir_all;
use crate::config::{Database, Storage};
use crate::secret::Secret;

mod events;
mod leases;
mod outbox;
mod post_jobs;
mod postgres;
mod recordings;
mod samples;
mod settings;
mod sql;
mod sqlite;
#[cfg(test)]
mod suite;
mod tokens;
mod uploads;
mod vod_fills;
mod watches;

pub use events::{clamp_non_finite, EventLog, LogPage};
pub use leases::{Lease, Leases, NodeRow};
pub use outbox::{Outbox, PostedMessage};
pub use post_jobs::{PostJob, PostJobs, PostState};
pub use recordings::{PartRow, Recordings, SessionRow, SessionTotals};
pub use samples::{StreamSample, StreamSamples};
pub use settings::{Settings, EVENTSUB_CONDUIT};
pub use tokens::{StoredToken, Tokens};
pub use uploads::{
    Cleanup, JobState, NewUploadJob, NodeQueue, QuotaLedger, UploadJob, UploadJobs, WaitReason,
};
pub use vod_fills::{VodFillRow, VodFills};
pub use watches::{Watch, WatchList};

/// Free-form text from outside (titles, games, error messages, chat user ids) as every
/// backend stores it: NUL characters, which PostgreSQL's text cannot hold, become U+FFFD on
/// both engines, so a hostile title is stored alike everywhere instead of failing the write.
pub(crate) fn storable_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// A database engine holding the whole state: every area's trait, plus the schema and the
/// connection's life. (`Any` lets tests reach the engine under a [`Store`].)
#[async_trait::async_trait]
pub trait Backend:
    WatchList
    + EventLog
    + Outbox
    + Recordings
    + UploadJobs
    + QuotaLedger
    + Tokens
    + VodFills
    + PostJobs
    + Settings
    + StreamSamples
    + Leases
    + fmt::Debug
    + std::any::Any
    + Send
    + Sync
{
    /// The highest migration applied.
    async fn schema_version(&self) -> Result<i64>;

    /// Whether the database can take a write now (a write lock taken and released, nothing
    /// written): `/readyz`.
    async fn check_writable(&self) -> Result<()>;

    /// Waits for pending writes and closes the database cleanly.
    async fn close(&self);
}

/// The handle on the state database: clones share one backend (and its connection pool).
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and brings its schema up to
    /// date. The data folder is created owner-only (0700) and the database with its `-wal` and
    /// `-shm` files are owner-only (0600) whatever the umask; existing ones that others could
    /// read are tightened, with a warning.
    pub async fn open(path: &Path) -> Result<Store> {
        let backend = sqlite::SqliteBackend::open(path).await?;
        Ok(Store::from_backend(Arc::new(backend)))
    }

    /// Opens the state database `[storage]` names: the PostgreSQL server at `database_url`
    /// when set (waiting for it up to `connect_timeout_secs`), else the SQLite file under
    /// `data_dir` ([`Store::open`]).
    pub async fn open_config(storage: &Storage) -> Result<Store> {
        match storage.database() {
            Database::Sqlite(path) => Store::open(&path).await,
            Database::Postgres {
                url,
                connect_timeout,
            } => Store::open_postgres(&url, connect_timeout).await,
        }
    }

    /// Connects to the PostgreSQL database at `url` (waiting for the server with bounded
    /// backoff up to `connect_timeout`) and brings its schema up to date.
    pub async fn open_postgres(url: &Secret, connect_timeout: Duration) -> Result<Store> {
        let backend = postgres::PostgresBackend::open(url, connect_timeout).await?;
        Ok(Store::from_backend(Arc::new(backend)))
    }

    /// A store on an opened backend (its schema already up to date).
    pub fn from_backend(backend: Arc<dyn Backend>) -> Store {
        Store { backend }
    }

    /// The SQLite pool under this store, for tests that reach past the interface.
    #[cfg(test)]
    pub(crate) fn pool_for_tests(&self) -> sqlx::SqlitePool {
        let backend: &dyn std::any::Any = &*self.backend;
        backend
            .downcast_ref::<sqlite::SqliteBackend>()
            .expect("a SQLite store")
            .pool()
            .clone()
    }
}

/// A new, empty database on the test process's PostgreSQL server (started on first use).
#[cfg(test)]
pub(crate) async fn postgres_test_database() -> String {
    postgres::testing::new_database().await
}

impl Store {
    /// The PostgreSQL pool under this store, for tests that reach past the interface.
    #[cfg(test)]
    pub(crate) fn pg_pool_for_tests(&self) -> sqlx::PgPool {
        let backend: &dyn std::any::Any = &*self.backend;
        backend
            .downcast_ref::<postgres::PostgresBackend>()
            .expect("a PostgreSQL store")
            .pool()
            .clone()
    }
}

impl Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Store").field(&self.backend).finish()
    }
}

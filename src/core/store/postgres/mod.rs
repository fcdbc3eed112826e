//! The PostgreSQL backend (through sqlx): connecting with bounded backoff while the server
//! comes up, the embedded migrations (`migrations/`, one twin per SQLite migration, same
//! versions and names), and the SQL of every area, expanded from `super::sql`.
//!
//! Kept alike with SQLite on purpose: the same tables and columns; INTEGER → BIGINT, ids are
//! identity columns, 0/1 flags are BOOLEAN, times are TIMESTAMPTZ (sorted and compared as
//! times, microsecond precision, which is why the suite's times are whole microseconds), text
//! orderings use the "C" collation (SQLite compares bytes), and NULL times sort first where
//! SQLite's order relied on it. Every write is one statement or one transaction, so several
//! connections (and later several nodes) cannot interleave within one.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tracing::{info, warn};

use crate::secret::Secret;

#[cfg(test)]
pub(crate) mod testing;

// The SQL of every area, written once in `super::sql`; what PostgreSQL says its own way:
// - `collate_c`: text ordered by bytes, as SQLite orders it, not by the database's locale.
// - `greatest`: `GREATEST` (PostgreSQL's `MAX` is only the aggregate).
super::sql::all_areas_sql!(
    PostgresBackend,
    sqlx::Postgres,
    collate_c = " COLLATE \"C\"",
    greatest = "GREATEST"
);

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("src/core/store/postgres/migrations");

/// Connections the pool keeps at most: the core is the only writer, readers are short.
const MAX_CONNECTIONS: u32 = 8;
/// The first wait between two connection attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A PostgreSQL database and its connection pool.
#[derive(Debug)]
pub(super) struct PostgresBackend {
    pool: PgPool,
}

impl PostgresBackend {
    /// Connects to the database at `url`, waiting for the server (with bounded backoff, each
    /// attempt logged) up to `connect_timeout`, and brings its schema up to date. Errors
    /// never show the password.
    pub(super) async fn open(url: &Secret, connect_timeout: Duration) -> Result<PostgresBackend> {
        let options: PgConnectOptions = url.expose().parse().map_err(|_| {
            // sqlx's message may quote the URL, password and all.
            anyhow!("storage.database_url is not a valid PostgreSQL URL")
        })?;
        let address = format!("{}:{}", options.get_host(), options.get_port());
        let pool = connect(options, &address, connect_timeout).await?;
        MIGRATIONS
            .run(&pool)
            .await
            .context("cannot migrate the state database")?;
        Ok(PostgresBackend { pool })
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Opens a pool on `options`, retrying with doubling waits (at most [`MAX_BACKOFF`]) until
/// `timeout` has passed since the first attempt.
async fn connect(options: PgConnectOptions, address: &str, timeout: Duration) -> Result<PgPool> {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1u32.. {
        let tried = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(timeout.min(Duration::from_secs(30)))
            .connect_with(options.clone())
            .await;
        let error = match tried {
            Ok(pool) => {
                if attempt > 1 {
                    info!(%address, attempt, "PostgreSQL answered");
                }
                return Ok(pool);
            }
            Err(e) => e,
        };
        let waited = started.elapsed();
        if waited + backoff > timeout {
            return Err(anyhow!(
                "PostgreSQL at {address} did not answer within {} s ({attempt} attempts; \
                 [storage] connect_timeout_secs): {error}",
                timeout.as_secs()
            ));
        }
        warn!(%address, attempt, %error, "waiting for PostgreSQL at {address} (attempt {attempt})");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    unreachable!("the attempts are endless until the deadline")
}

#[async_trait::async_trait]
impl super::Backend for PostgresBackend {
    async fn schema_version(&self) -> Result<i64> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    /// A write transaction begun and rolled back, nothing written: refused when the server
    /// takes no writes (a hot standby, `default_transaction_read_only`).
    async fn check_writable(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let read_only: bool = sqlx::query_scalar(
            "SELECT current_setting('transaction_read_only') = 'on' OR pg_is_in_recovery()",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.rollback().await?;
        anyhow::ensure!(
            !read_only,
            "the PostgreSQL database takes no writes (read-only)"
        );
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::core::store::suite::{store_suite, Harness};
    use crate::core::store::Store;

    /// A fresh database on the test process's PostgreSQL server (`testing`), created on the
    /// first `open`; each `open` is a new pool on it, as after a restart.
    pub(super) struct PostgresHarness {
        url: tokio::sync::OnceCell<String>,
    }

    impl PostgresHarness {
        pub(super) fn new() -> PostgresHarness {
            PostgresHarness {
                url: tokio::sync::OnceCell::new(),
            }
        }

        async fn url(&self) -> &str {
            self.url.get_or_init(testing::new_database).await
        }
    }

    #[async_trait::async_trait]
    impl Harness for PostgresHarness {
        async fn open(&self) -> Store {
            let url = Secret::new(self.url().await);
            let backend = PostgresBackend::open(&url, Duration::from_secs(10))
                .await
                .unwrap();
            Store::from_backend(Arc::new(backend))
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
            sqlx::query("INSERT INTO events (at, kind, name, payload) VALUES ($1, $2, $3, $4)")
                .bind(at)
                .bind(kind)
                .bind(name)
                .bind(payload)
                .execute(&store.pg_pool_for_tests())
                .await
                .unwrap();
        }
    }

    store_suite!(PostgresHarness::new());

    /// Every SQLite migration has its PostgreSQL twin (same version and name) and the other
    /// way round: a new migration without its twin fails here.
    #[test]
    fn both_backends_have_the_same_migrations() {
        let names = |migrator: &sqlx::migrate::Migrator| -> BTreeSet<(i64, String)> {
            migrator
                .iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect()
        };
        let sqlite = names(&crate::core::store::sqlite::MIGRATIONS);
        assert!(sqlite.len() >= 11, "{sqlite:?}");
        assert_eq!(names(&MIGRATIONS), sqlite);
    }

    #[tokio::test]
    async fn start_up_gives_up_after_the_timeout_without_showing_the_password() {
        let port = testing::free_port();
        let url = Secret::new(format!("postgres://u:hunter2@127.0.0.1:{port}/db"));
        let started = Instant::now();
        let err = PostgresBackend::open(&url, Duration::from_secs(1))
            .await
            .unwrap_err();
        let message = format!("{err:#}");
        assert!(started.elapsed() < Duration::from_secs(5), "bounded");
        assert!(
            message.contains(&format!("PostgreSQL at 127.0.0.1:{port} did not answer")),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[tokio::test]
    async fn start_up_waits_for_a_server_that_comes_up_late() {
        // A TCP port that refuses at first and then forwards to the real server.
        let real = PostgresHarness::new();
        let target = real.url().await.to_string();
        let real_port: u16 = target.split(':').nth(2).unwrap()[..]
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let port = testing::free_port();
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(("127.0.0.1", real_port))
                        .await
                        .unwrap();
                    tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                        .await
                        .ok();
                });
            }
        });
        let url = Secret::new(target.replace(&format!(":{real_port}/"), &format!(":{port}/")));
        let backend = PostgresBackend::open(&url, Duration::from_secs(10))
            .await
            .unwrap();
        let latest = MIGRATIONS.iter().map(|m| m.version).max().unwrap();
        assert_eq!(
            super::super::Backend::schema_version(&backend)
                .await
                .unwrap(),
            latest
        );
        late.abort();
    }

    #[tokio::test]
    async fn check_writable_is_refused_by_a_read_only_database() {
        let harness = PostgresHarness::new();
        let store = harness.open().await;
        store.check_writable().await.unwrap();
        let options: PgConnectOptions = harness.url().await.parse().unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.options([("default_transaction_read_only", "on")]))
            .await
            .unwrap();
        let read_only = PostgresBackend { pool };
        let refused = super::super::Backend::check_writable(&read_only).await;
        assert!(refused.is_err(), "{refused:?}");
    }
}

//! The SQL of pending VOD fills (`vod_fills`), written once for both engines: [`vod_fills_sql!`]
//! expands the `VodFills` implementation for one engine's backend type.

/// Expands `mod vod_fills` in an engine's module (`sqlite/mod.rs`, `postgres/mod.rs`): the
/// `VodFills` implementation for `$backend` (a type of that module), whose rows are `$db`'s.
macro_rules! vod_fills_sql {
    ($backend:ident, $db:ty) => {
        mod vod_fills {
            use anyhow::Result;
            use chrono::{DateTime, Utc};
            use sqlx::Row;

            use super::$backend as Engine;
            use crate::core::store::{VodFillRow, VodFills};

            #[async_trait::async_trait]
            impl VodFills for Engine {
                async fn add_vod_fill(
                    &self,
                    session: i64,
                    login: &str,
                    created_at: DateTime<Utc>,
                ) -> Result<bool> {
                    let done = sqlx::query(
                        "INSERT INTO vod_fills (session, login, created_at) VALUES ($1, $2, $3)
                         ON CONFLICT (session) DO NOTHING",
                    )
                    .bind(session)
                    .bind(login)
                    .bind(created_at)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn vod_fills(&self) -> Result<Vec<VodFillRow>> {
                    let rows = sqlx::query("SELECT * FROM vod_fills ORDER BY created_at, session")
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(VodFillRow {
                                session: r.try_get("session")?,
                                login: r.try_get("login")?,
                                created_at: r.try_get("created_at")?,
                            })
                        })
                        .collect()
                }

                async fn remove_vod_fill(&self, session: i64) -> Result<()> {
                    sqlx::query("DELETE FROM vod_fills WHERE session = $1")
                        .bind(session)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }
            }
        }
    };
}
pub(in crate::core::store) use vod_fills_sql;

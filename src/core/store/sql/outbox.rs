//! The SQL of the front-ends' delivery state (`outbox_cursors`, `outbox_messages`), written once
//! for both engines: [`outbox_sql!`] expands the `Outbox` implementation for one engine's backend
//! type.

/// Expands `mod outbox` in an engine's module (`sqlite/mod.rs`, `postgres/mod.rs`): the
/// `Outbox` implementation for `$backend` (a type of that module), whose rows are `$db`'s.
macro_rules! outbox_sql {
    ($backend:ident, $db:ty, collate_c = $collate_c:literal, greatest = $greatest:literal) => {
        mod outbox {
            use anyhow::Result;
            use chrono::{Duration, Utc};
            use sqlx::Row;

            use super::$backend as Engine;
            use crate::core::store::outbox::{MESSAGE_RETENTION_DAYS, STEP_PREFIX};
            use crate::core::store::{Outbox, PostedMessage};

            #[async_trait::async_trait]
            impl Outbox for Engine {
                async fn outbox_cursor(&self, frontend: &str) -> Result<Option<i64>> {
                    Ok(
                        sqlx::query_scalar("SELECT delivered_seq FROM outbox_cursors WHERE frontend = $1")
                            .bind(frontend)
                            .fetch_optional(&self.pool)
                            .await?,
                    )
                }

                async fn outbox_delivered(
                    &self,
                    frontend: &str,
                    seq: i64,
                    messages: &[PostedMessage],
                ) -> Result<()> {
                    let now = Utc::now();
                    let mut tx = self.pool.begin().await?;
                    sqlx::query("DELETE FROM outbox_messages WHERE frontend = $1 AND key LIKE $2")
                        .bind(frontend)
                        .bind(format!("{STEP_PREFIX}%"))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        concat!(
                            "INSERT INTO outbox_cursors (frontend, delivered_seq, updated_at)
                             VALUES ($1, $2, $3)
                             ON CONFLICT (frontend) DO UPDATE SET delivered_seq = ",
                            $greatest,
                            "(outbox_cursors.delivered_seq, excluded.delivered_seq),
                               updated_at = excluded.updated_at"
                        ),
                    )
                    .bind(frontend)
                    .bind(seq)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    upsert_messages(&mut tx, frontend, messages).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn outbox_posted(&self, frontend: &str, messages: &[PostedMessage]) -> Result<()> {
                    let mut tx = self.pool.begin().await?;
                    upsert_messages(&mut tx, frontend, messages).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn outbox_messages(&self, frontend: &str) -> Result<Vec<PostedMessage>> {
                    sqlx::query("DELETE FROM outbox_messages WHERE frontend = $1 AND created_at < $2")
                        .bind(frontend)
                        .bind(Utc::now() - Duration::days(MESSAGE_RETENTION_DAYS))
                        .execute(&self.pool)
                        .await?;
                    let rows = sqlx::query(
                        concat!(
                            "SELECT key, channel, message_id FROM outbox_messages WHERE frontend = $1
                             ORDER BY key",
                            $collate_c
                        ),
                    )
                    .bind(frontend)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(PostedMessage {
                                key: r.try_get("key")?,
                                channel: r.try_get("channel")?,
                                id: r.try_get("message_id")?,
                            })
                        })
                        .collect()
                }
            }

            async fn upsert_messages(
                tx: &mut sqlx::Transaction<'_, $db>,
                frontend: &str,
                messages: &[PostedMessage],
            ) -> Result<()> {
                let now = Utc::now();
                for m in messages {
                    sqlx::query(
                        "INSERT INTO outbox_messages (frontend, key, channel, message_id, created_at)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (frontend, key) DO UPDATE SET channel = excluded.channel,
                           message_id = excluded.message_id, created_at = excluded.created_at",
                    )
                    .bind(frontend)
                    .bind(&m.key)
                    .bind(&m.channel)
                    .bind(&m.id)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }
        }
    };
}
pub(in crate::core::store) use outbox_sql;

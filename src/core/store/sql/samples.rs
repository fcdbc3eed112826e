//! The SQL of stream samples (`stream_samples`), written once for both engines: [`samples_sql!`]
//! expands the `StreamSamples` implementation for one engine's backend type.

/// Expands `mod samples` in an engine's module (`sqlite/mod.rs`, `postgres/mod.rs`): the
/// `StreamSamples` implementation for `$backend` (a type of that module), whose rows are `$db`'s.
macro_rules! samples_sql {
    ($backend:ident, $db:ty) => {
        mod samples {
            use anyhow::Result;
            use sqlx::Row;

            use super::$backend as Engine;
            use crate::core::store::storable_text;
            use crate::core::store::{StreamSample, StreamSamples};

            /// Viewer counts are stored as 64-bit integers (i64); a count beyond that is clamped.
            fn to_db(viewers: Option<u64>) -> Option<i64> {
                viewers.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
            }

            #[async_trait::async_trait]
            impl StreamSamples for Engine {
                async fn add_stream_sample(&self, sample: &StreamSample) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO stream_samples (session, at, viewers, title, game) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(sample.session)
                    .bind(sample.at)
                    .bind(to_db(sample.viewers))
                    .bind(storable_text(&sample.title))
                    .bind(sample.game.as_deref().map(storable_text))
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn stream_samples(&self, session: i64) -> Result<Vec<StreamSample>> {
                    let rows = sqlx::query(
                        "SELECT session, at, viewers, title, game FROM stream_samples \
                         WHERE session = $1 ORDER BY at",
                    )
                    .bind(session)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            let viewers: Option<i64> = r.try_get("viewers")?;
                            Ok(StreamSample {
                                session: r.try_get("session")?,
                                at: r.try_get("at")?,
                                viewers: viewers.map(|v| v.max(0) as u64),
                                title: r.try_get("title")?,
                                game: r.try_get("game")?,
                            })
                        })
                        .collect()
                }

                async fn peak_viewers(&self, session: i64) -> Result<Option<u64>> {
                    let peak: Option<i64> =
                        sqlx::query_scalar("SELECT MAX(viewers) FROM stream_samples WHERE session = $1")
                            .bind(session)
                            .fetch_one(&self.pool)
                            .await?;
                    Ok(peak.map(|v| v.max(0) as u64))
                }
            }
        }
    };
}
pub(in crate::core::store) use samples_sql;

//! The SQL of post-processing jobs (`post_jobs`, and `upload_jobs.post_job`), written once for
//! both engines: [`post_jobs_sql!`] expands the `PostJobs` implementation for one engine's backend
//! type.

/// Expands `mod post_jobs` in an engine's module (`sqlite/mod.rs`, `postgres/mod.rs`): the
/// `PostJobs` implementation for `$backend` (a type of that module), whose rows are `$db`'s.
macro_rules! post_jobs_sql {
    ($backend:ident, $db:ty) => {
        mod post_jobs {
            use std::path::{Path, PathBuf};

            use anyhow::Result;
            use chrono::Utc;
            use recbot_commands::{Login, PostMode};
            use sqlx::Row;

            use super::$backend as Engine;
            use crate::core::store::storable_text;
            use crate::core::store::{PostJob, PostJobs, PostState};

            /// A result row of this engine.
            type DbRow = <$db as sqlx::Database>::Row;

            #[async_trait::async_trait]
            impl PostJobs for Engine {
                async fn insert_post_job(
                    &self,
                    login: Option<&Login>,
                    session: Option<i64>,
                    video: &Path,
                    sidecar: Option<&Path>,
                    mode: PostMode,
                ) -> Result<Option<i64>> {
                    let now = Utc::now();
                    let id = sqlx::query_scalar(
                        "INSERT INTO post_jobs (login, session_id, video, sidecar, mode, state, created_at,
                           updated_at)
                         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)
                         ON CONFLICT (video) DO NOTHING
                         RETURNING id",
                    )
                    .bind(login.map(Login::as_str))
                    .bind(session)
                    .bind(video.to_string_lossy().as_ref())
                    .bind(sidecar.map(|p| p.to_string_lossy().into_owned()))
                    .bind(mode.as_str())
                    .bind(now)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(id)
                }

                async fn post_job(&self, id: i64) -> Result<Option<PostJob>> {
                    let row = sqlx::query("SELECT * FROM post_jobs WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.as_ref().map(post_job_from_row).transpose()
                }

                async fn pending_post_jobs(&self) -> Result<Vec<PostJob>> {
                    let rows = sqlx::query("SELECT * FROM post_jobs WHERE state = 'pending' ORDER BY id")
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(post_job_from_row).collect()
                }

                async fn end_post_job(
                    &self,
                    id: i64,
                    output: Option<&Path>,
                    error: Option<&str>,
                ) -> Result<()> {
                    let state = if output.is_some() {
                        PostState::Finished
                    } else {
                        PostState::Failed
                    };
                    sqlx::query(
                        "UPDATE post_jobs SET state = $1, output = $2, last_error = $3, updated_at = $4
                         WHERE id = $5",
                    )
                    .bind(state.as_str())
                    .bind(output.map(|p| p.to_string_lossy().into_owned()))
                    .bind(error.map(storable_text))
                    .bind(Utc::now())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn release_post_wait(&self, post: i64, file: Option<(&Path, u64)>) -> Result<u64> {
                    let done =
                        match file {
                            Some((path, bytes)) => {
                                sqlx::query(
                                    "UPDATE upload_jobs SET post_job = NULL, path = $1, total_bytes = $2,
                                   updated_at = $3
                                 WHERE post_job = $4",
                                )
                                .bind(path.to_string_lossy().as_ref())
                                .bind(bytes as i64)
                                .bind(Utc::now())
                                .bind(post)
                                .execute(&self.pool)
                                .await?
                            }
                            None => sqlx::query(
                                "UPDATE upload_jobs SET post_job = NULL, updated_at = $1 WHERE post_job = $2",
                            )
                            .bind(Utc::now())
                            .bind(post)
                            .execute(&self.pool)
                            .await?,
                        };
                    Ok(done.rows_affected())
                }
            }

            fn post_job_from_row(row: &DbRow) -> Result<PostJob> {
                let path = |column: &str| -> Result<Option<PathBuf>> {
                    Ok(row.try_get::<Option<String>, _>(column)?.map(PathBuf::from))
                };
                let login: Option<String> = row.try_get("login")?;
                Ok(PostJob {
                    id: row.try_get("id")?,
                    login: login
                        .map(|l| Login::from_stored(&l).map_err(|e| anyhow::anyhow!(e)))
                        .transpose()?,
                    session: row.try_get("session_id")?,
                    video: PathBuf::from(row.try_get::<String, _>("video")?),
                    sidecar: path("sidecar")?,
                    mode: match row.try_get::<Option<String>, _>("mode")? {
                        None => None,
                        Some(word) => Some(
                            PostMode::parse(&word)
                                .ok_or_else(|| anyhow::anyhow!("unknown post-processing mode `{word}`"))?,
                        ),
                    },
                    state: PostState::parse(&row.try_get::<String, _>("state")?)?,
                    output: path("output")?,
                    last_error: row.try_get("last_error")?,
                })
            }
        }
    };
}
pub(in crate::core::store) use post_jobs_sql;

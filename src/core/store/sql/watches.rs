//! The SQL of the watch list (`watches`), written once for both engines: [`watches_sql!`] expands
//! the `WatchList` implementation for one engine's backend type.

/// Expands `mod watches` in an engine's module (`sqlite/mod.rs`, `postgres/mod.rs`): the
/// `WatchList` implementation for `$backend` (a type of that module), whose rows are `$db`'s.
macro_rules! watches_sql {
    ($backend:ident, $db:ty, collate_c = $collate_c:literal) => {
        mod watches {
            use std::str::FromStr;

            use anyhow::{anyhow, Result};
            use recbot_commands::{Login, PostMode, Quality, Source};
            use sqlx::Row;

            use super::$backend as Engine;
            use crate::core::store::storable_text;
            use crate::core::store::{Watch, WatchList};
            use crate::event::Room;

            /// A result row of this engine.
            type DbRow = <$db as sqlx::Database>::Row;

            #[async_trait::async_trait]
            impl WatchList for Engine {
                async fn watches(&self) -> Result<Vec<Watch>> {
                    let rows = sqlx::query(concat!("SELECT * FROM watches ORDER BY name", $collate_c))
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(watch_from_row).collect()
                }

                async fn watch(&self, name: &Login) -> Result<Option<Watch>> {
                    let row = sqlx::query("SELECT * FROM watches WHERE name = $1")
                        .bind(name.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                    row.as_ref().map(watch_from_row).transpose()
                }

                async fn put_watch(&self, w: &Watch) -> Result<()> {
                    let url = match &w.source {
                        Source::Hls { url } => Some(url.as_str()),
                        _ => None,
                    };
                    sqlx::query(
                        "INSERT INTO watches (name, source, hls_url, quality, upload, chat, post, room, added_by, added_at, display_name)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                         ON CONFLICT (name) DO UPDATE SET source = excluded.source, hls_url = excluded.hls_url,
                           quality = excluded.quality, upload = excluded.upload, chat = excluded.chat,
                           post = excluded.post, display_name = excluded.display_name",
                    )
                    .bind(w.name.as_str())
                    .bind(w.source.as_str())
                    .bind(url)
                    .bind(w.quality.as_str())
                    .bind(w.upload)
                    .bind(w.chat)
                    .bind(w.post.map(PostMode::as_str))
                    .bind(w.room.to_string())
                    .bind(storable_text(&w.added_by))
                    .bind(w.added_at)
                    .bind(w.display_name.as_deref().map(storable_text))
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn delete_watch(&self, name: &Login) -> Result<bool> {
                    let done = sqlx::query("DELETE FROM watches WHERE name = $1")
                        .bind(name.as_str())
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() > 0)
                }
            }

            fn watch_from_row(row: &DbRow) -> Result<Watch> {
                let name: String = row.try_get("name")?;
                let source: String = row.try_get("source")?;
                let source = match source.as_str() {
                    "twitch" => Source::Twitch,
                    "hls" => Source::Hls {
                        url: row.try_get("hls_url")?,
                    },
                    "chzzk" => Source::Chzzk,
                    "bilibili" => Source::Bilibili,
                    other => return Err(anyhow!("unknown source `{other}` for {name}")),
                };
                let quality: String = row.try_get("quality")?;
                let room: String = row.try_get("room")?;
                let post = match row.try_get::<Option<String>, _>("post")? {
                    None => None,
                    Some(word) => Some(
                        PostMode::parse(&word)
                            .ok_or_else(|| anyhow!("unknown post mode `{word}` for {name}"))?,
                    ),
                };
                Ok(Watch {
                    name: Login::from_stored(&name).map_err(|e| anyhow!(e))?,
                    source,
                    quality: Quality::parse(&quality).map_err(|e| anyhow!(e))?,
                    upload: row.try_get("upload")?,
                    chat: row.try_get("chat")?,
                    post,
                    display_name: row.try_get("display_name")?,
                    room: Room::from_str(&room).map_err(|e| anyhow!(e))?,
                    added_by: row.try_get("added_by")?,
                    added_at: row.try_get("added_at")?,
                })
            }
        }
    };
}
pub(in crate::core::store) use watches_sql;

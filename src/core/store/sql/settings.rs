//! The SQL of values by key (`settings`), written once for both engines: [`settings_sql!`] expands
//! the `Settings` implementation for one engine's backend type.

/// Expands `mod settings` in an engine's module (`sqlite/mod.rs`, `postgres/mod.rs`): the
/// `Settings` implementation for `$backend` (a type of that module), whose rows are `$db`'s.
macro_rules! settings_sql {
    ($backend:ident, $db:ty) => {
        mod settings {
            use anyhow::Result;
            use chrono::Utc;

            use super::$backend as Engine;
            use crate::core::store::Settings;

            #[async_trait::async_trait]
            impl Settings for Engine {
                async fn setting(&self, key: &str) -> Result<Option<String>> {
                    Ok(
                        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                            .bind(key)
                            .fetch_optional(&self.pool)
                            .await?,
                    )
                }

                async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                           updated_at = excluded.updated_at",
                    )
                    .bind(key)
                    .bind(value)
                    .bind(Utc::now())
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }
            }
        }
    };
}
pub(in crate::core::store) use settings_sql;

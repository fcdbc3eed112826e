//! The SQL of OAuth tokens (`oauth_tokens`), written once for both engines: [`tokens_sql!`]
//! expands the `Tokens` implementation for one engine's backend type.

/// Expands `mod tokens` in an engine's module (`sqlite/mod.rs`, `postgres/mod.rs`): the
/// `Tokens` implementation for `$backend` (a type of that module), whose rows are `$db`'s.
macro_rules! tokens_sql {
    ($backend:ident, $db:ty) => {
        mod tokens {
            use anyhow::Result;
            use chrono::Utc;
            use sqlx::Row;

            use super::$backend as Engine;
            use crate::core::store::{StoredToken, Tokens};
            use crate::secret::Secret;

            #[async_trait::async_trait]
            impl Tokens for Engine {
                async fn token(&self, service: &str) -> Result<Option<StoredToken>> {
                    let row = sqlx::query(
                        "SELECT access_token, refresh_token, expires_at, scopes, client_id, account
                         FROM oauth_tokens WHERE service = $1",
                    )
                    .bind(service)
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(row) = row else { return Ok(None) };
                    let refresh: Option<String> = row.try_get("refresh_token")?;
                    let scopes: Option<String> = row.try_get("scopes")?;
                    Ok(Some(StoredToken {
                        access_token: Secret::new(row.try_get::<String, _>("access_token")?),
                        refresh_token: refresh.map(Secret::new),
                        expires_at: row.try_get("expires_at")?,
                        scopes: scopes.unwrap_or_default(),
                        client_id: row.try_get("client_id")?,
                        account: row.try_get("account")?,
                    }))
                }

                async fn put_token(&self, service: &str, token: &StoredToken) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO oauth_tokens
                           (service, access_token, refresh_token, expires_at, scopes, client_id, account, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                         ON CONFLICT (service) DO UPDATE SET access_token = excluded.access_token,
                           refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
                           scopes = excluded.scopes, client_id = excluded.client_id,
                           account = excluded.account, updated_at = excluded.updated_at",
                    )
                    .bind(service)
                    .bind(token.access_token.expose())
                    .bind(token.refresh_token.as_ref().map(Secret::expose))
                    .bind(token.expires_at)
                    .bind(&token.scopes)
                    .bind(&token.client_id)
                    .bind(&token.account)
                    .bind(Utc::now())
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn delete_token(&self, service: &str) -> Result<bool> {
                    let done = sqlx::query("DELETE FROM oauth_tokens WHERE service = $1")
                        .bind(service)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() > 0)
                }
            }
        }
    };
}
pub(in crate::core::store) use tokens_sql;

//! OAuth tokens per service (`youtube`, `twitch`). Values are [`Secret`]s: they never print.

use anyhow::Result;
use chrono::Utc;
use sqlx::Row;

use super::Store;
use crate::secret::Secret;

pub use crate::work::StoredToken;

impl Store {
    pub async fn token(&self, service: &str) -> Result<Option<StoredToken>> {
        let row = sqlx::query(
            "SELECT access_token, refresh_token, expires_at, scopes FROM oauth_tokens WHERE service = ?",
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
        }))
    }

    /// Inserts or replaces the token set of `service`.
    pub async fn put_token(&self, service: &str, token: &StoredToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_tokens (service, access_token, refresh_token, expires_at, scopes, updated_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (service) DO UPDATE SET access_token = excluded.access_token,
               refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
               scopes = excluded.scopes, updated_at = excluded.updated_at",
        )
        .bind(service)
        .bind(token.access_token.expose())
        .bind(token.refresh_token.as_ref().map(Secret::expose))
        .bind(token.expires_at)
        .bind(&token.scopes)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_token(&self, service: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM oauth_tokens WHERE service = ?")
            .bind(service)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Workers read the stored token of their service through the store (reads only).
#[async_trait::async_trait]
impl crate::work::TokenSource for Store {
    async fn token(&self, service: recbot_commands::Service) -> Result<Option<StoredToken>> {
        Store::token(self, service.as_str()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_round_trip_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        assert!(store.token("twitch").await.unwrap().is_none());
        let token = StoredToken {
            access_token: Secret::new("AT-secret"),
            refresh_token: Some(Secret::new("RT-secret")),
            expires_at: Some(Utc::now()),
            scopes: "chat:read".into(),
        };
        store.put_token("twitch", &token).await.unwrap();
        let back = store.token("twitch").await.unwrap().unwrap();
        assert_eq!(back.access_token.expose(), "AT-secret");
        assert_eq!(back.refresh_token.as_ref().unwrap().expose(), "RT-secret");
        assert!(!format!("{back:?}").contains("secret"));
        assert!(store.delete_token("twitch").await.unwrap());
        assert!(store.token("twitch").await.unwrap().is_none());
    }
}

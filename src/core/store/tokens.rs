//! OAuth tokens per service (`youtube`, `twitch`). Values are [`Secret`](crate::secret::Secret)s:
//! they never print.

use anyhow::Result;

use super::Store;
pub use crate::work::StoredToken;

/// The stored token set of each service.
#[async_trait::async_trait]
pub trait Tokens: Send + Sync {
    async fn token(&self, service: &str) -> Result<Option<StoredToken>>;

    /// Inserts or replaces the token set of `service`.
    async fn put_token(&self, service: &str, token: &StoredToken) -> Result<()>;

    /// Forgets the token set of `service`; `false` when there was none.
    async fn delete_token(&self, service: &str) -> Result<bool>;
}

/// Workers read the stored token of their service through the store (reads only).
#[async_trait::async_trait]
impl crate::work::TokenSource for Store {
    async fn token(&self, service: recbot_commands::Service) -> Result<Option<StoredToken>> {
        Tokens::token(&**self, service.as_str()).await
    }
}

//! The SQL of nodes and leases (`nodes`, `leases`), written once for both engines:
//! [`leases_sql!`] expands the `Leases` implementation for one engine's backend type. A claim
//! is one `INSERT … ON CONFLICT DO UPDATE … WHERE` (the row is locked by the conflict, so of
//! two nodes claiming at once exactly one sees its fence returned).

/// Expands `mod leases` in an engine's module: the `Leases` implementation for `$backend`,
/// whose rows are `$db`'s.
macro_rules! leases_sql {
    ($backend:ident, $db:ty) => {
        mod leases {
            use anyhow::Result;
            use recbot_commands::Login;
            use sqlx::Row;

            use super::$backend as Engine;
            use crate::core::store::{Lease, Leases, NodeRow};

            /// A login as stored: an unreadable one is an error, never silently dropped.
            fn login(name: &str) -> Result<Login> {
                Login::from_stored(name).map_err(anyhow::Error::msg)
            }

            #[async_trait::async_trait]
            impl Leases for Engine {
                async fn heartbeat(
                    &self,
                    node: &str,
                    capacity: Option<u32>,
                    started_ms: i64,
                    now_ms: i64,
                    lease_ms: i64,
                ) -> Result<Vec<(Login, i64)>> {
                    let expires = now_ms + lease_ms;
                    let mut tx = self.pool.begin().await?;
                    sqlx::query(
                        "INSERT INTO nodes (node_id, capacity, started_ms, seen_ms, expires_ms, stopped)
                         VALUES ($1, $2, $3, $4, $5, FALSE)
                         ON CONFLICT (node_id) DO UPDATE SET capacity = excluded.capacity,
                           started_ms = excluded.started_ms, seen_ms = excluded.seen_ms,
                           expires_ms = excluded.expires_ms, stopped = FALSE",
                    )
                    .bind(node)
                    .bind(capacity.map(i64::from))
                    .bind(started_ms)
                    .bind(now_ms)
                    .bind(expires)
                    .execute(&mut *tx)
                    .await?;
                    let rows = sqlx::query(
                        "UPDATE leases SET expires_ms = $1
                         WHERE owner = $2 AND expires_ms >= $3
                         RETURNING login, fence",
                    )
                    .bind(expires)
                    .bind(node)
                    .bind(now_ms)
                    .fetch_all(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    let mut held = Vec::with_capacity(rows.len());
                    for row in rows {
                        let name: String = row.try_get("login")?;
                        held.push((login(&name)?, row.try_get("fence")?));
                    }
                    held.sort();
                    Ok(held)
                }

                async fn claim(
                    &self,
                    node: &str,
                    login: &Login,
                    now_ms: i64,
                    lease_ms: i64,
                ) -> Result<Option<i64>> {
                    Ok(sqlx::query_scalar(
                        "INSERT INTO leases (login, owner, fence, expires_ms, taken_ms)
                         VALUES ($1, $2, 1, $3, $4)
                         ON CONFLICT (login) DO UPDATE SET owner = excluded.owner,
                           fence = leases.fence + 1, expires_ms = excluded.expires_ms,
                           taken_ms = excluded.taken_ms
                         WHERE leases.owner IS NULL OR leases.expires_ms < $4
                         RETURNING fence",
                    )
                    .bind(login.as_str())
                    .bind(node)
                    .bind(now_ms + lease_ms)
                    .bind(now_ms)
                    .fetch_optional(&self.pool)
                    .await?)
                }

                async fn release(&self, node: &str, login: &Login) -> Result<bool> {
                    let done = sqlx::query(
                        "UPDATE leases SET owner = NULL, expires_ms = 0
                         WHERE login = $1 AND owner = $2",
                    )
                    .bind(login.as_str())
                    .bind(node)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn leave(&self, node: &str, now_ms: i64) -> Result<u64> {
                    let mut tx = self.pool.begin().await?;
                    let released = sqlx::query(
                        "UPDATE leases SET owner = NULL, expires_ms = 0 WHERE owner = $1",
                    )
                    .bind(node)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    sqlx::query(
                        "UPDATE nodes SET stopped = TRUE, seen_ms = $2, expires_ms = $2
                         WHERE node_id = $1",
                    )
                    .bind(node)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(released)
                }

                async fn unowned(&self, now_ms: i64) -> Result<Vec<Login>> {
                    let names: Vec<String> = sqlx::query_scalar(
                        "SELECT w.name FROM watches w LEFT JOIN leases l ON l.login = w.name
                         WHERE l.login IS NULL OR l.owner IS NULL OR l.expires_ms < $1
                         ORDER BY w.name",
                    )
                    .bind(now_ms)
                    .fetch_all(&self.pool)
                    .await?;
                    names.iter().map(|n| login(n)).collect()
                }

                async fn holds(&self, login: &Login, fence: i64, now_ms: i64) -> Result<bool> {
                    let found: Option<i64> = sqlx::query_scalar(
                        "SELECT fence FROM leases
                         WHERE login = $1 AND fence = $2 AND owner IS NOT NULL
                           AND expires_ms >= $3",
                    )
                    .bind(login.as_str())
                    .bind(fence)
                    .bind(now_ms)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(found.is_some())
                }

                async fn holder(
                    &self,
                    login: &Login,
                    now_ms: i64,
                ) -> Result<Option<(String, i64)>> {
                    let row = sqlx::query(
                        "SELECT owner, fence FROM leases
                         WHERE login = $1 AND owner IS NOT NULL AND expires_ms >= $2",
                    )
                    .bind(login.as_str())
                    .bind(now_ms)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.map(|r| Ok((r.try_get("owner")?, r.try_get("fence")?)))
                        .transpose()
                }

                async fn nodes(&self, now_ms: i64) -> Result<Vec<NodeRow>> {
                    let rows = sqlx::query(
                        "SELECT n.node_id, n.capacity, n.started_ms, n.seen_ms, n.expires_ms,
                           n.stopped,
                           (SELECT COUNT(*) FROM leases l
                             WHERE l.owner = n.node_id AND l.expires_ms >= $1) AS held
                         FROM nodes n ORDER BY n.node_id",
                    )
                    .bind(now_ms)
                    .fetch_all(&self.pool)
                    .await?;
                    let mut nodes = Vec::with_capacity(rows.len());
                    for row in rows {
                        let capacity: Option<i64> = row.try_get("capacity")?;
                        let held: i64 = row.try_get("held")?;
                        nodes.push(NodeRow {
                            node_id: row.try_get("node_id")?,
                            capacity: capacity.and_then(|c| u32::try_from(c).ok()),
                            started_ms: row.try_get("started_ms")?,
                            seen_ms: row.try_get("seen_ms")?,
                            expires_ms: row.try_get("expires_ms")?,
                            stopped: row.try_get("stopped")?,
                            leases: held.max(0) as u64,
                        });
                    }
                    Ok(nodes)
                }

                async fn leases(&self) -> Result<Vec<Lease>> {
                    let rows = sqlx::query(
                        "SELECT login, owner, fence, expires_ms, taken_ms FROM leases
                         ORDER BY login",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    let mut leases = Vec::with_capacity(rows.len());
                    for row in rows {
                        let name: String = row.try_get("login")?;
                        leases.push(Lease {
                            login: login(&name)?,
                            owner: row.try_get("owner")?,
                            fence: row.try_get("fence")?,
                            expires_ms: row.try_get("expires_ms")?,
                            taken_ms: row.try_get("taken_ms")?,
                        });
                    }
                    Ok(leases)
                }
            }
        }
    };
}
pub(in crate::core::store) use leases_sql;

//! The SQL of every area of the state, written once for both engines. Each file holds one
//! `macro_rules!` that expands, inside an engine's module (`sqlite/mod.rs`,
//! `postgres/mod.rs`), a private module with that area's trait implementation for the
//! engine's backend type, its rows read as that engine's row type.
//!
//! Why macros: the SQL text and the Rust around it are the same for both engines (sqlx binds
//! `$N` placeholders by number on SQLite too), but sqlx's row, transaction and encode types are
//! per engine, and generic code over `sqlx::Database` needs a bound for every type bound or
//! read. Where the dialects really differ, the engine passes the words as macro arguments
//! (each with its reason at the invocation): `collate_c`, how text is ordered by bytes;
//! `greatest`, the two-argument maximum. Everything else is SQL both accept (`RETURNING`,
//! `ON CONFLICT … DO NOTHING`, `NULLS FIRST`, `CAST(… AS BIGINT)`, aliased subqueries).

pub(super) mod events;
pub(super) mod outbox;
pub(super) mod post_jobs;
pub(super) mod recordings;
pub(super) mod samples;
pub(super) mod settings;
pub(super) mod tokens;
pub(super) mod uploads;
pub(super) mod vod_fills;
pub(super) mod watches;

//! The SQL of every area of the state, written once for both engines. Each file holds one
//! `macro_rules!` that expands, inside an engine's module, a private module with that area's
//! trait implementation for the engine's backend type, its rows read as that engine's row
//! type; [`all_areas_sql!`] expands them all, once in `sqlite/mod.rs` and once in
//! `postgres/mod.rs`.
//!
//! Why macros: the SQL text and the Rust around it are the same for both engines (sqlx binds
//! `$N` placeholders by number on SQLite too), but sqlx's row, transaction and encode types are
//! per engine, and generic code over `sqlx::Database` needs a bound for every type bound or
//! read. Where the dialects really differ, the engine passes the words as macro arguments
//! (with the reasons at each engine's invocation): `collate_c`, how text is ordered by bytes;
//! `greatest`, the two-argument maximum. Everything else is SQL both accept (`RETURNING`,
//! `ON CONFLICT … DO NOTHING`, `NULLS FIRST`, `CAST(… AS BIGINT)`, aliased subqueries).

pub(super) mod events;
pub(super) mod leases;
pub(super) mod outbox;
pub(super) mod post_jobs;
pub(super) mod recordings;
pub(super) mod samples;
pub(super) mod settings;
pub(super) mod tokens;
pub(super) mod uploads;
pub(super) mod vod_fills;
pub(super) mod watches;

/// Expands the SQL of every area (private modules `events`, `outbox`, …) in an engine's
/// module, for `$backend` (a type of that module) over sqlx's `$db`, with the engine's words
/// where the dialects differ: `collate_c` follows `ORDER BY <text column>` to order by bytes;
/// `greatest` names the two-argument maximum.
macro_rules! all_areas_sql {
    ($backend:ident, $db:ty, collate_c = $collate_c:literal, greatest = $greatest:literal) => {
        $crate::core::store::sql::events::events_sql!($backend, $db);
        $crate::core::store::sql::leases::leases_sql!($backend, $db);
        $crate::core::store::sql::outbox::outbox_sql!(
            $backend,
            $db,
            collate_c = $collate_c,
            greatest = $greatest
        );
        $crate::core::store::sql::post_jobs::post_jobs_sql!($backend, $db);
        $crate::core::store::sql::recordings::recordings_sql!($backend, $db);
        $crate::core::store::sql::samples::samples_sql!($backend, $db);
        $crate::core::store::sql::settings::settings_sql!($backend, $db);
        $crate::core::store::sql::tokens::tokens_sql!($backend, $db);
        $crate::core::store::sql::uploads::uploads_sql!($backend, $db, greatest = $greatest);
        $crate::core::store::sql::vod_fills::vod_fills_sql!($backend, $db);
        $crate::core::store::sql::watches::watches_sql!($backend, $db, collate_c = $collate_c);
    };
}
pub(super) use all_areas_sql;

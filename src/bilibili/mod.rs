//! Bilibili Live (live.bilibili.com), the worker side (issue 14 groundwork): its HTTP API
//! (`api.rs`: room_init, room info, getRoomPlayInfo → the stream to record, getDanmuInfo,
//! risk-control errors with their pauses), WBI signing (`wbi.rs`, with `md5.rs`), the
//! danmaku push protocol's codec (`danmaku.rs`: packets, compressed batches, commands →
//! chat lines and live/offline) and one danmaku WebSocket session (`session.rs`). Facts
//! from the protocol notes (`shared/notes/platforms.md` §2); what they mark unconfirmed is
//! marked [U] here too. Imports neither `core` nor `frontend`.

pub mod api;
pub mod danmaku;
pub mod md5;
pub mod session;
pub mod wbi;

//! Chzzk (chzzk.naver.com), the worker side (issue 14 groundwork): its HTTP API
//! (`api.rs`: live-detail → status and HLS master, channel name, chat token, chat server),
//! when channels are checked (`schedule.rs`: the stepped backoff, the channels' next checks,
//! the global request pacer), live detection (`detect.rs`: one task checking every watched
//! channel on its schedule → `LiveDetected`/`StreamOffline`/`LiveAdultOnly`), the playlist token's expiry (`token.rs`), and the chat frames
//! (`chat.rs`: JSON frames by `cmd` → chat lines). Facts from the protocol notes
//! (`shared/notes/platforms.md` §1); what they mark unconfirmed is marked [U] here too.
//! Imports neither `core` nor `frontend`.

pub mod api;
pub mod chat;
pub mod detect;
pub mod schedule;
pub mod token;

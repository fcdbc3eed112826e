//! The recordings on disk, with one owner: where a recording's files live and what they are
//! called (`layout`: names from `file_template`, `.part`, checkpoint, temporary, chat-file and
//! subtitle names), how they are written and moved (`files`: owner-only folders, atomic and durable
//! writes, finalize, a durable move across file systems), what a finished part says about
//! itself (`sidecar`), its HLS index (`index`: `<name>.m3u8`, byte ranges into the part), and what becomes of a part's files after its upload (`after`: video,
//! sidecar, index, chat file and chat replay subtitles kept, moved or deleted together).
//!
//! A bottom layer: it imports no worker (recorder, chat, upload, twitch), nor the core or the
//! front-ends; they import it. The recorder keeps its own buffered writer (`PartFile`) and its
//! crash recovery, built on these names and file operations.

pub mod after;
pub mod files;
pub mod index;
pub mod layout;
pub mod sidecar;

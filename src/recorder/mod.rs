//! Recording live HLS streams to disk. `playlist` and `variant` read playlists (pure),
//! `naming` makes file names, `writer` owns the `.part` file, `sidecar` is the metadata file
//! written next to every finished part (read by the uploader and the chat logger).

pub mod naming;
pub mod playlist;
pub mod sidecar;
pub mod variant;
pub mod writer;

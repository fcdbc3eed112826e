//! Recording live HLS streams to disk. `sidecar` is the metadata file written next to every
//! finished part, read by the uploader and the chat logger.

pub mod sidecar;

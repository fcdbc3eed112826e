//! Post-processing with ffmpeg (`[postprocess]`): a finished part remuxed or transcoded into an
//! MP4 before its upload. A worker: it knows ffmpeg and the files, not the state database.
//! `ffmpeg.rs` the child processes (version check, command lines, progress, ffprobe);
//! `progress.rs` ffmpeg's `-progress` blocks; `chapters.rs` the title/game history as
//! ffmetadata; `job.rs` one job on disk (temporary output, verification, original); `cut/`
//! cuts of a finished recording on its HLS index (`recbot cut`).

pub mod chapters;
pub mod cut;
pub mod ffmpeg;
pub mod job;
pub mod progress;
pub mod worker;

pub use ffmpeg::RunFailure;
pub use job::{PostDone, PostInput};
pub use progress::Progress;
pub use worker::{PostHandle, PostRequest};

#[cfg(test)]
mod tests;

//! YouTube uploads: the queue worker (`worker`, reading the queue through the [`JobSource`] the
//! core implements), the resumable upload protocol (`resumable`),
//! Google OAuth (`google`, consent through yup-oauth2), titles and descriptions (`metadata`),
//! YouTube's Pacific-time quota day (`quota`) and whether YouTube finished processing a video
//! before its files are deleted (`processing`); what becomes of uploaded files is
//! `crate::archive::after`, applied by the worker as a job's last step.
//! The only part of recbot that knows Google.

pub mod google;
pub mod metadata;
pub mod processing;
mod queue;
pub mod quota;
pub mod resumable;
pub mod worker;

pub use queue::JobSource;

//! YouTube uploads: the queue worker (`worker`), the resumable upload protocol (`resumable`),
//! Google OAuth (`google`, consent through yup-oauth2), titles and descriptions (`metadata`)
//! and YouTube's Pacific-time quota day (`quota`). The only part of recbot that knows Google.

pub mod google;
pub mod metadata;
pub mod quota;
pub mod resumable;
pub mod worker;

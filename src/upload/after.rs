//! What becomes of a recording's files once YouTube confirmed its upload (`[youtube]
//! after_upload`): the video, its sidecar and its chat file (`<name>.chat.jsonl`) are kept,
//! moved to `uploaded_dir` (same folder layout) or deleted, together.
//!
//! The chat file is written by the chat logger when the part finishes, so it may appear after
//! the upload is done (a small part, a busy disk). Both sides check in an order that leaves no
//! gap: the uploader handles the video first and looks for the chat file after; the chat export
//! writes its file first and checks for the video after ([`Plan::follow`]). Whichever comes
//! second moves (or deletes) the chat file; a file the other one already handled is skipped.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use tracing::warn;

use crate::config::{AfterUpload, Config};

/// `dir/name.ts` → `dir/name.chat.jsonl`.
pub fn chat_file(video: &Path) -> PathBuf {
    let stem = video
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    video.with_file_name(format!("{stem}.chat.jsonl"))
}

/// The configured after-upload step, when it does anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    policy: AfterUpload,
    recordings: PathBuf,
    uploaded: PathBuf,
}

/// What [`Plan::follow`] did with a chat file whose recording was already handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The recording is where it was (or was not uploaded): nothing to do.
    Stayed,
    Moved(PathBuf),
    Deleted,
}

impl Plan {
    /// `None` with `after_upload = "keep"` or uploads off.
    pub fn from_config(config: &Config) -> Option<Plan> {
        if !config.youtube.enabled || config.youtube.after_upload == AfterUpload::Keep {
            return None;
        }
        Some(Plan::new(
            config.youtube.after_upload,
            config.storage.recordings_dir(),
            config.uploaded_dir(),
        ))
    }

    pub fn new(policy: AfterUpload, recordings: PathBuf, uploaded: PathBuf) -> Plan {
        Plan {
            policy,
            recordings,
            uploaded,
        }
    }

    /// Whether uploaded recordings are deleted.
    pub fn deletes(&self) -> bool {
        self.policy == AfterUpload::Delete
    }

    /// Where `move` puts `file`: `recordings/foo/a.ts` → `uploaded/foo/a.ts`; files outside
    /// the recordings folder keep only their name.
    pub fn moved_path(&self, file: &Path) -> PathBuf {
        match file.strip_prefix(&self.recordings) {
            Ok(relative) => self.uploaded.join(relative),
            Err(_) => self.uploaded.join(file.file_name().unwrap_or_default()),
        }
    }

    /// Applies the step to an uploaded video, its sidecar and its chat file (looked for only
    /// once the video is handled). Problems are logged; none stops the others.
    pub async fn apply(&self, video: &Path, sidecar: Option<&Path>) {
        for file in std::iter::once(video).chain(sidecar) {
            self.handle(file).await;
        }
        let chat = chat_file(video);
        if tokio::fs::try_exists(&chat).await.unwrap_or(false) {
            self.handle(&chat).await;
        }
    }

    async fn handle(&self, file: &Path) {
        let result = match self.policy {
            AfterUpload::Keep => Ok(()),
            AfterUpload::Delete => remove(file).await,
            AfterUpload::Move => move_file(file, &self.moved_path(file)).await,
        };
        if let Err(e) = result {
            warn!(file = %file.display(), error = %format!("{e:#}"), "cannot move or delete after upload");
        }
    }

    /// Called by the chat export once `chat` is written beside where `video` was: when the
    /// uploader already moved or deleted the video, the chat file goes the same way.
    pub async fn follow(&self, chat: &Path, video: &Path) -> Result<Followed> {
        if tokio::fs::try_exists(video).await? {
            return Ok(Followed::Stayed);
        }
        match self.policy {
            AfterUpload::Keep => Ok(Followed::Stayed),
            AfterUpload::Move => {
                if !tokio::fs::try_exists(self.moved_path(video)).await? {
                    warn!(
                        video = %video.display(),
                        chat = %chat.display(),
                        "the recording is gone (not moved after an upload); its chat file stays"
                    );
                    return Ok(Followed::Stayed);
                }
                let target = self.moved_path(chat);
                move_file(chat, &target).await?;
                Ok(Followed::Moved(target))
            }
            AfterUpload::Delete => {
                remove(chat).await?;
                Ok(Followed::Deleted)
            }
        }
    }
}

/// Deletes `file`; one already gone is fine.
async fn remove(file: &Path) -> Result<()> {
    match tokio::fs::remove_file(file).await {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Renames, or copies and deletes across file systems. Never overwrites; a file the other side
/// already moved (gone here, present there) is fine.
async fn move_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let gone = !tokio::fs::try_exists(from).await?;
    if tokio::fs::try_exists(to).await? {
        if gone {
            return Ok(());
        }
        bail!("{} already exists", to.display());
    }
    if gone {
        bail!("{} is gone", from.display());
    }
    if tokio::fs::rename(from, to).await.is_err() {
        match tokio::fs::copy(from, to).await {
            Ok(_) => tokio::fs::remove_file(from).await?,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let plan = Plan::new(
            AfterUpload::Move,
            PathBuf::from("/data/recordings"),
            PathBuf::from("/data/uploaded"),
        );
        assert_eq!(
            plan.moved_path(Path::new("/data/recordings/foo/a.ts")),
            PathBuf::from("/data/uploaded/foo/a.ts")
        );
        assert_eq!(
            plan.moved_path(Path::new("/elsewhere/b.ts")),
            PathBuf::from("/data/uploaded/b.ts")
        );
        assert_eq!(
            chat_file(Path::new("/r/foo/2026-01-01_title.ts")),
            PathBuf::from("/r/foo/2026-01-01_title.chat.jsonl")
        );
    }

    fn setup(policy: AfterUpload) -> (tempfile::TempDir, Plan, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let plan = Plan::new(
            policy,
            dir.path().join("recordings"),
            dir.path().join("uploaded"),
        );
        let folder = dir.path().join("recordings/foo");
        std::fs::create_dir_all(&folder).unwrap();
        let video = folder.join("a.ts");
        let chat = folder.join("a.chat.jsonl");
        (dir, plan, video, chat)
    }

    #[tokio::test]
    async fn a_chat_file_written_after_the_upload_follows_its_recording() {
        // The video was moved before the chat file was in place.
        let (dir, plan, video, chat) = setup(AfterUpload::Move);
        std::fs::write(&video, "video").unwrap();
        plan.apply(&video, None).await;
        std::fs::write(&chat, "chat").unwrap();
        let moved = dir.path().join("uploaded/foo/a.chat.jsonl");
        assert_eq!(
            plan.follow(&chat, &video).await.unwrap(),
            Followed::Moved(moved.clone())
        );
        assert!(!chat.exists());
        assert_eq!(std::fs::read_to_string(&moved).unwrap(), "chat");
        // Both sides at once: the second one finds it done.
        plan.apply(&video, None).await;
        assert_eq!(
            plan.follow(&chat, &video).await.unwrap(),
            Followed::Moved(moved.clone())
        );
        assert_eq!(std::fs::read_to_string(&moved).unwrap(), "chat");

        // Deleted with its recording.
        let (_dir, plan, video, chat) = setup(AfterUpload::Delete);
        std::fs::write(&video, "video").unwrap();
        plan.apply(&video, None).await;
        std::fs::write(&chat, "chat").unwrap();
        assert_eq!(plan.follow(&chat, &video).await.unwrap(), Followed::Deleted);
        assert!(!chat.exists());
    }

    #[tokio::test]
    async fn a_chat_file_of_a_recording_still_there_stays() {
        let (_dir, plan, video, chat) = setup(AfterUpload::Move);
        std::fs::write(&video, "video").unwrap();
        std::fs::write(&chat, "chat").unwrap();
        assert_eq!(plan.follow(&chat, &video).await.unwrap(), Followed::Stayed);
        assert!(chat.exists());
        // Gone, but not by an upload's move: the chat file is left (and that is logged).
        std::fs::remove_file(&video).unwrap();
        assert_eq!(plan.follow(&chat, &video).await.unwrap(), Followed::Stayed);
        assert!(chat.exists());
    }
}

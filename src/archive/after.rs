//! What becomes of a recording's files once YouTube confirmed its upload (`[youtube]
//! after_upload`): the video, its sidecar, its chat file (`<name>.chat.jsonl`), its HLS index
//! (`<name>.m3u8`) and the chat replay subtitles beside it (`<name>.chat.ass`, `.chat.vtt`)
//! are kept, moved to `uploaded_dir` (same folder layout) or deleted, together; so is the
//! broadcast's summary chart (`<name>.summary.png`) with the first part it is named after.
//!
//! The upload worker applies it as the last step of a job. The chat file is there by then: the
//! core queues a part's upload only once the chat logger has written its chat file (or said it
//! could not, or did not within `[chat] save_timeout_secs`), so nothing here waits or races.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::files::{move_file, remove};
use super::layout::{chat_file, index_file, subtitle_file, summary_file};
use super::sidecar::Sidecar;
use crate::config::{AfterUpload, Config, SubtitleFormat};

/// The configured after-upload step, when it does anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    policy: AfterUpload,
    recordings: PathBuf,
    uploaded: PathBuf,
    /// `[recording] vod_fill`: a part whose fill is not over is left alone.
    vod_fill: bool,
}

impl Plan {
    /// `None` with `after_upload = "keep"` or uploads off.
    pub fn from_config(config: &Config) -> Option<Plan> {
        if !config.youtube.enabled || config.youtube.after_upload == AfterUpload::Keep {
            return None;
        }
        let mut plan = Plan::new(
            config.youtube.after_upload,
            config.storage.recordings_dir(),
            config.uploaded_dir(),
        );
        plan.vod_fill = config.recording.vod_fill;
        Some(plan)
    }

    pub fn new(policy: AfterUpload, recordings: PathBuf, uploaded: PathBuf) -> Plan {
        Plan {
            policy,
            recordings,
            uploaded,
            vod_fill: false,
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

    /// Applies the step to an uploaded video, its sidecar and its chat file (when the part has
    /// one). A part with fills from the VOD (`<name>.fill-<n>.ts`, each its own upload) and
    /// its fills go together: nothing happens until the part and every fill are on YouTube
    /// (their ids in the sidecar), then all of them, whichever upload finished last. Problems
    /// are logged; none stops the others.
    pub async fn apply(&self, video: &Path, sidecar: Option<&Path>) {
        let read = match sidecar {
            Some(path) => Sidecar::read(path).await.ok(),
            None => None,
        };
        if self.vod_fill && read.as_ref().is_some_and(Sidecar::awaits_vod_fill) {
            info!(file = %video.display(), "kept until its VOD fill is over");
            return;
        }
        let fills = read.as_ref().filter(|s| !s.fills.is_empty());
        let (part, fill_files) = match (fills, sidecar.and_then(Path::parent)) {
            (Some(s), Some(dir)) => {
                if !s.all_uploaded() {
                    info!(file = %video.display(), "kept until the part and its VOD fills are all uploaded");
                    return;
                }
                let files: Vec<PathBuf> = s.fills.iter().map(|f| dir.join(&f.file)).collect();
                (dir.join(&s.file), files)
            }
            _ => (video.to_path_buf(), Vec::new()),
        };
        for file in std::iter::once(part.as_path())
            .chain(fill_files.iter().map(PathBuf::as_path))
            .chain(sidecar)
        {
            self.handle(file).await;
        }
        // Every format, not only the configured ones: the config may have changed since.
        let chat = [chat_file(&part), index_file(&part), summary_file(&part)]
            .into_iter()
            .chain(SubtitleFormat::ALL.map(|f| subtitle_file(&part, f)));
        for file in chat {
            if tokio::fs::try_exists(&file).await.unwrap_or(false) {
                self.handle(&file).await;
            }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::layout::temp_path_of;

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
        assert_eq!(
            subtitle_file(Path::new("/r/foo/2026.01.01_t.mp4"), SubtitleFormat::Vtt),
            PathBuf::from("/r/foo/2026.01.01_t.chat.vtt")
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
    async fn video_sidecar_and_chat_file_go_together() {
        let (dir, plan, video, chat) = setup(AfterUpload::Move);
        let sidecar = video.with_extension("json");
        let ass = subtitle_file(&video, SubtitleFormat::Ass);
        let vtt = subtitle_file(&video, SubtitleFormat::Vtt);
        let chart = summary_file(&video);
        let index = index_file(&video);
        for (file, body) in [
            (&video, "video"),
            (&sidecar, "{}"),
            (&chat, "chat"),
            (&ass, "ass"),
            (&vtt, "vtt"),
            (&chart, "png"),
            (&index, "index"),
        ] {
            std::fs::write(file, body).unwrap();
        }
        plan.apply(&video, Some(&sidecar)).await;
        let moved = dir.path().join("uploaded/foo");
        for (name, body) in [
            ("a.ts", "video"),
            ("a.json", "{}"),
            ("a.chat.jsonl", "chat"),
            ("a.chat.ass", "ass"),
            ("a.chat.vtt", "vtt"),
            ("a.summary.png", "png"),
            ("a.m3u8", "index"),
        ] {
            assert_eq!(std::fs::read_to_string(moved.join(name)).unwrap(), body);
        }
        assert!(!video.exists() && !sidecar.exists() && !chat.exists() && !chart.exists());
        assert!(!ass.exists() && !vtt.exists() && !index.exists());

        // Deleted together; a part without a chat file is fine, one with only `.ass` too.
        let (_dir, plan, video, chat) = setup(AfterUpload::Delete);
        let ass = subtitle_file(&video, SubtitleFormat::Ass);
        std::fs::write(&video, "video").unwrap();
        std::fs::write(&ass, "ass").unwrap();
        plan.apply(&video, None).await;
        assert!(!video.exists() && !chat.exists() && !ass.exists());
    }

    #[tokio::test]
    async fn a_twitch_part_with_gaps_stays_until_its_vod_fill_is_over() {
        use crate::archive::sidecar::Gap;
        let (dir, mut plan, video, _chat) = setup(AfterUpload::Move);
        plan.vod_fill = true;
        let sidecar_path = video.with_extension("json");
        std::fs::write(&video, "video").unwrap();
        let mut sidecar = Sidecar {
            source: "twitch".into(),
            file: "a.ts".into(),
            youtube_video_id: Some("v1".into()),
            gaps: vec![Gap {
                at: chrono::Utc::now(),
                offset_secs: 0.0,
                first_sequence: 1,
                last_sequence: 1,
                seconds: 2.0,
                reason: "x".into(),
                elapsed_secs: Some(2.0),
            }],
            ..Default::default()
        };
        sidecar.write(&sidecar_path).await.unwrap();
        plan.apply(&video, Some(&sidecar_path)).await;
        assert!(
            video.exists() && sidecar_path.exists(),
            "moved before the fill"
        );
        // The fill gave up (no fill files): the part moves when its step runs again.
        sidecar.vod_fill_done = true;
        sidecar.write(&sidecar_path).await.unwrap();
        plan.apply(&video, Some(&sidecar_path)).await;
        assert!(!video.exists());
        assert!(dir.path().join("uploaded/foo/a.ts").exists());
    }

    #[tokio::test]
    async fn a_part_and_its_fills_go_together_once_all_are_uploaded() {
        use crate::archive::sidecar::Fill;
        let (dir, plan, video, _chat) = setup(AfterUpload::Move);
        let sidecar_path = video.with_extension("json");
        let fill = video.with_file_name("a.fill-1.ts");
        std::fs::write(&video, "video").unwrap();
        std::fs::write(&fill, "fill").unwrap();
        let mut sidecar = Sidecar {
            file: "a.ts".into(),
            youtube_video_id: Some("v1".into()),
            fills: vec![Fill {
                file: "a.fill-1.ts".into(),
                gap: 0,
                from_secs: 0.0,
                to_secs: 10.0,
                vod_id: "1".into(),
                muted: false,
                bytes: 4,
                youtube_video_id: None,
            }],
            ..Default::default()
        };
        sidecar.write(&sidecar_path).await.unwrap();
        // The part is uploaded, its fill not yet: everything stays.
        plan.apply(&video, Some(&sidecar_path)).await;
        assert!(video.exists() && fill.exists() && sidecar_path.exists());
        // The fill's upload finishes last: all of them move.
        sidecar.fills[0].youtube_video_id = Some("v2".into());
        sidecar.write(&sidecar_path).await.unwrap();
        plan.apply(&fill, Some(&sidecar_path)).await;
        let moved = dir.path().join("uploaded/foo");
        for name in ["a.ts", "a.fill-1.ts", "a.json"] {
            assert!(moved.join(name).exists(), "{name}");
        }
        assert!(!video.exists() && !fill.exists() && !sidecar_path.exists());
    }

    /// A real move across file systems (EXDEV), when the machine has a tmpfs at /dev/shm on
    /// another device than the temporary folder (else this only says it was skipped; the copy
    /// path itself is covered by the tests above).
    #[tokio::test]
    async fn a_move_to_another_file_system_goes_through_the_durable_copy() {
        use std::os::unix::fs::MetadataExt;
        let recordings = tempfile::tempdir().unwrap();
        let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
            eprintln!("skipped: no /dev/shm");
            return;
        };
        let dev = |p: &Path| std::fs::metadata(p).unwrap().dev();
        if dev(recordings.path()) == dev(other.path()) {
            eprintln!("skipped: /dev/shm is on the same file system");
            return;
        }
        let plan = Plan::new(
            AfterUpload::Move,
            recordings.path().to_path_buf(),
            other.path().join("uploaded"),
        );
        let folder = recordings.path().join("foo");
        std::fs::create_dir_all(&folder).unwrap();
        let (video, sidecar) = (folder.join("a.ts"), folder.join("a.json"));
        std::fs::write(&video, vec![1u8; 100_000]).unwrap();
        std::fs::write(&sidecar, b"{}").unwrap();
        plan.apply(&video, Some(&sidecar)).await;
        let moved = other.path().join("uploaded/foo");
        assert_eq!(
            std::fs::read(moved.join("a.ts")).unwrap(),
            vec![1u8; 100_000]
        );
        assert_eq!(std::fs::read(moved.join("a.json")).unwrap(), b"{}");
        assert!(!video.exists() && !sidecar.exists());
        assert!(!temp_path_of(&moved.join("a.ts")).exists());
    }
}

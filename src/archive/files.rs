//! The file operations behind every recording file recbot writes or moves: owner-only folders,
//! atomic and durable replacement (temporary file beside the target, fsync, rename, folder
//! fsync), finalizing a `.part`, and moving a file, across file systems too, without a moment
//! where no whole copy is on the disk. Blocking functions are marked; the async ones hop to the
//! blocking pool themselves.

use std::fs::File;
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{bail, Result};

use super::layout::temp_path_of;

/// Creates `dir` and its missing parents owner-only (0700, whatever the umask); folders that
/// exist are left as they are (blocking).
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to its [`temp_path_of`] and renames it over `path` (blocking; not fsynced:
/// notes guard against a killed process, and the page cache survives that).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path_of(path);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// [`write_atomically`], made to survive a power cut: the temporary file is fsynced before the
/// rename, and the folder after it (blocking).
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path_of(path);
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    finalize_file(&tmp, path)
}

/// Renames `part` to `final_path` and makes the rename durable (blocking).
pub fn finalize_file(part: &Path, final_path: &Path) -> io::Result<()> {
    std::fs::rename(part, final_path)?;
    if let Some(dir) = final_path.parent() {
        // Directory fsync makes the rename survive a power cut; not every filesystem allows it.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Deletes `file`; one already gone is fine.
pub async fn remove(file: &Path) -> Result<()> {
    match tokio::fs::remove_file(file).await {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Renames, or copies and deletes across file systems. Never overwrites; a file the other side
/// already moved (gone here, present there) is fine.
pub async fn move_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || create_private_dir_all(&dir)).await??;
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
    match tokio::fs::rename(from, to).await {
        Ok(()) => Ok(()),
        // Another file system (EXDEV): copy durably, then remove the source.
        Err(e) if e.kind() == ErrorKind::CrossesDevices => {
            let (from, to) = (from.to_path_buf(), to.to_path_buf());
            tokio::task::spawn_blocking(move || copy_then_remove(&from, &to, &mut |_| Ok(())))
                .await??;
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound && !tokio::fs::try_exists(from).await? => {
            // The other side moved it meanwhile.
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The steps of a move across file systems, in order (for tests to watch or fail them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The bytes are in the temporary file beside the destination.
    Copied,
    /// …and on the disk (fsync).
    Synced,
    /// The temporary file has the destination's name, and the folder is fsynced.
    Renamed,
    /// The source is removed.
    Removed,
}

/// Copies `from` to `<to>.recbot-tmp`, fsyncs it, renames it to `to`, fsyncs the folder, and
/// only then removes `from` (blocking): a power cut at any point leaves at least one whole
/// copy. A failure before the rename removes the temporary file and keeps the source.
/// `step` is told of each step done and may fail it (tests).
fn copy_then_remove(
    from: &Path,
    to: &Path,
    step: &mut dyn FnMut(Step) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = temp_path_of(to);
    let copied = (|| {
        let mut source = std::fs::File::open(from)?;
        let mut dest = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        std::io::copy(&mut source, &mut dest)?;
        step(Step::Copied)?;
        dest.sync_all()?;
        step(Step::Synced)?;
        drop(dest);
        if std::fs::exists(to)? {
            return Err(std::io::Error::new(
                ErrorKind::AlreadyExists,
                format!("{} already exists", to.display()),
            ));
        }
        finalize_file(&tmp, to)?;
        Ok(())
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    step(Step::Renamed)?;
    std::fs::remove_file(from)?;
    step(Step::Removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_across_file_systems_is_durable_before_the_source_goes() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a.ts");
        let to = dir.path().join("other/a.ts");
        std::fs::create_dir_all(dir.path().join("other")).unwrap();
        let body = vec![3u8; 300_000];
        std::fs::write(&from, &body).unwrap();
        let mut seen = Vec::new();
        copy_then_remove(&from, &to, &mut |s| {
            // At every step before the removal the source is whole; once renamed, so is the
            // destination.
            if s != Step::Removed {
                assert_eq!(std::fs::read(&from).unwrap(), body, "{s:?}");
            }
            if s == Step::Renamed {
                assert_eq!(std::fs::read(&to).unwrap(), body);
            }
            seen.push(s);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [Step::Copied, Step::Synced, Step::Renamed, Step::Removed]
        );
        assert!(!from.exists());
        assert_eq!(std::fs::read(&to).unwrap(), body);
        assert!(!temp_path_of(&to).exists());
    }

    #[test]
    fn a_failed_copy_keeps_the_source_and_leaves_no_half_file() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a.ts");
        let to = dir.path().join("other/a.ts");
        std::fs::create_dir_all(dir.path().join("other")).unwrap();
        std::fs::write(&from, b"video").unwrap();
        for fail_at in [Step::Copied, Step::Synced] {
            let err = copy_then_remove(&from, &to, &mut |s| {
                if s == fail_at {
                    Err(std::io::Error::other("disk full"))
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
            assert_eq!(err.to_string(), "disk full");
            assert_eq!(std::fs::read(&from).unwrap(), b"video", "{fail_at:?}");
            assert!(!to.exists() && !temp_path_of(&to).exists(), "{fail_at:?}");
        }
        // A destination that appeared meanwhile is never overwritten.
        std::fs::write(&to, b"someone else's").unwrap();
        assert!(copy_then_remove(&from, &to, &mut |_| Ok(())).is_err());
        assert_eq!(std::fs::read(&from).unwrap(), b"video");
        assert_eq!(std::fs::read(&to).unwrap(), b"someone else's");
        // An unreadable destination folder: nothing moves.
        let missing = dir.path().join("nowhere/a.ts");
        assert!(copy_then_remove(&from, &missing, &mut |_| Ok(())).is_err());
        assert!(from.exists());
    }
}

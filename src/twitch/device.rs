//! The device id GQL requests carry (`X-Device-Id`), as Twitch's web player sends its
//! `unique_id`: 32 random letters and digits, generated once and kept in
//! `<data_dir>/twitch-device-id` (owner-only), so every request of every start looks like the
//! same browser. A file rather than the state database: only the core writes the database, and
//! this worker-side detail needs no history; losing the file only means a new id.

use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::distr::{Alphanumeric, SampleString};
use tokio::sync::OnceCell;

/// The file's name under `data_dir`.
pub const FILE_NAME: &str = "twitch-device-id";
const LEN: usize = 32;

/// A device id, loaded (or created) on first use. Cheap to clone; clones share it.
#[derive(Debug, Clone, Default)]
pub struct DeviceId(Arc<Kept>);

#[derive(Debug, Default)]
struct Kept {
    /// Where it is kept; `None`: a new id for this process only.
    file: Option<PathBuf>,
    id: OnceCell<String>,
}

impl DeviceId {
    /// Kept in `file` (created owner-only when missing or unreadable as an id).
    pub fn kept_in(file: PathBuf) -> DeviceId {
        DeviceId(Arc::new(Kept {
            file: Some(file),
            id: OnceCell::new(),
        }))
    }

    /// The id; read or created on the blocking pool the first time. A file that cannot be
    /// read or written gives an id for this process only (logged), never a failed request.
    pub async fn get(&self) -> &str {
        self.0
            .id
            .get_or_init(|| async {
                let Some(file) = self.0.file.clone() else {
                    return random_id();
                };
                let shown = file.display().to_string();
                match crate::blocking::io(move || load_or_create(&file)).await {
                    Ok(id) => id,
                    Err(e) => {
                        tracing::warn!(file = %shown, error = %e, "cannot keep the Twitch device id; using one for this run");
                        random_id()
                    }
                }
            })
            .await
    }
}

fn random_id() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), LEN)
}

fn is_id(text: &str) -> bool {
    text.len() == LEN && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Reads the id in `path`, or writes a new one there (blocking). Two callers racing both end
/// up with the one that was linked into place first.
pub fn load_or_create(path: &Path) -> io::Result<String> {
    let replace = match std::fs::read_to_string(path) {
        Ok(text) if is_id(text.trim()) => return Ok(text.trim().to_string()),
        // Not an id (truncated, edited): a new one replaces it.
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) if e.kind() == ErrorKind::InvalidData => true,
        Err(e) => return Err(e),
    };
    if let Some(dir) = path.parent() {
        crate::archive::files::create_private_dir_all(dir)?;
    }
    let id = random_id();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.recbot-tmp", random_id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(id.as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let placed = if replace {
        std::fs::rename(&tmp, path)
    } else {
        // A link never replaces: whoever was first keeps their id.
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        linked
    };
    match placed {
        Ok(()) => Ok(id),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)?;
            if is_id(text.trim()) {
                Ok(text.trim().to_string())
            } else {
                Err(io::Error::new(ErrorKind::InvalidData, "not a device id"))
            }
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn created_once_owner_only_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(FILE_NAME);
        let first = DeviceId::kept_in(path.clone());
        let id = first.get().await.to_string();
        assert!(is_id(&id), "{id}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), id);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        // Another instance (the watcher's, or the next start) reads the same id.
        assert_eq!(DeviceId::kept_in(path.clone()).get().await, id);
        // Nothing left behind but the file.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);
        // A damaged file gets a new id.
        std::fs::write(&path, "short").unwrap();
        let new = load_or_create(&path).unwrap();
        assert!(is_id(&new) && new != id);
        assert_eq!(load_or_create(&path).unwrap(), new);
    }
}

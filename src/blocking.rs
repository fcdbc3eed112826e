//! The hop from async code to tokio's blocking pool for file-system work (writes, fsync,
//! renames, folder walks), so no blocking I/O runs on the runtime's workers. A task that
//! panicked or was cancelled comes back as an `io::Error`, like any other failed file step.

use std::io;

/// Runs `f` on the blocking pool.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("file task failed: {e}")))
}

/// Runs the file step `f` on the blocking pool: its own error, or the task's.
pub async fn io<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    run(f).await.and_then(|result| result)
}

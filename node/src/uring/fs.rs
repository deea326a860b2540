//! File I/O of the agent: whole-file reads (/proc and cgroup files, static pod manifests)
//! and append-only container log files. On an io_uring [`Executor`](super::Executor) the
//! open, read, write and close are io_uring operations; otherwise tokio's file API.

use std::io;
use std::path::Path;

use tokio::io::AsyncWriteExt;
use tokio_uring::buf::BoundedBuf;

use super::executor::io_uring_active;

/// First read size; /proc and cgroup files are small, manifests rarely larger.
const FIRST_READ: usize = 8 * 1024;

/// Reads the whole file at `path`.
///
/// Works for files whose size is unknown up front (/proc and cgroup files report 0): it
/// reads until end of file.
pub async fn read_file(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    if io_uring_active() {
        read_with_io_uring(path.as_ref()).await
    } else {
        tokio::fs::read(path).await
    }
}

async fn read_with_io_uring(path: &Path) -> io::Result<Vec<u8>> {
    let file = tokio_uring::fs::File::open(path).await?;
    let result = read_to_end_at(&file).await;
    // Closed either way; a read error is the one worth reporting.
    let closed = file.close().await;
    let data = result?;
    closed?;
    Ok(data)
}

async fn read_to_end_at(file: &tokio_uring::fs::File) -> io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(FIRST_READ);
    loop {
        if data.len() == data.capacity() {
            data.reserve(data.capacity());
        }
        let (start, end) = (data.len(), data.capacity());
        // The read fills the spare capacity; the buffer is owned by io_uring meanwhile.
        let (result, slice) = file.read_at(data.slice(start..end), start as u64).await;
        data = slice.into_inner();
        if result? == 0 {
            return Ok(data);
        }
    }
}

/// Reads the last `max` bytes of the file at `path` (all of it if it is smaller), e.g. the
/// last record of a log file.
pub async fn read_tail(path: impl AsRef<Path>, max: u64) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    let len = tokio::fs::metadata(path).await?.len();
    let start = len.saturating_sub(max);
    let want = usize::try_from(len - start).unwrap_or(usize::MAX);
    if io_uring_active() {
        let file = tokio_uring::fs::File::open(path).await?;
        let mut data = Vec::with_capacity(want);
        let result = loop {
            if data.len() == want {
                break Ok(());
            }
            let filled = data.len();
            let (result, slice) = file
                .read_at(data.slice(filled..want), start + filled as u64)
                .await;
            data = slice.into_inner();
            match result {
                // Shorter than it was a moment ago: what there is.
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(err) => break Err(err),
            }
        };
        let closed = file.close().await;
        result?;
        closed?;
        Ok(data)
    } else {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut file = tokio::fs::File::open(path).await?;
        file.seek(io::SeekFrom::Start(start)).await?;
        let mut data = Vec::with_capacity(want);
        file.take(want as u64).read_to_end(&mut data).await?;
        Ok(data)
    }
}

/// An append-only file, e.g. a container's log. Every [`LogFile::append`] is written at the
/// end of the file (`O_APPEND`), so lines from concurrent writers never overwrite each other.
pub struct LogFile {
    file: Handle,
    /// Where the next append lands as far as this writer knows (bytes written + initial size).
    len: u64,
    /// Owned copy of the data being written; io_uring needs the buffer for the whole write.
    buffer: Vec<u8>,
}

enum Handle {
    IoUring(tokio_uring::fs::File),
    Tokio(tokio::fs::File),
}

impl LogFile {
    /// Opens `path` for appending, creating it (mode 0644 minus umask) if missing. Its
    /// directory must exist.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<LogFile> {
        let path = path.as_ref();
        let file = if io_uring_active() {
            let file = tokio_uring::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .await?;
            Handle::IoUring(file)
        } else {
            let file = tokio::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .await?;
            Handle::Tokio(file)
        };
        let len = tokio::fs::metadata(path).await?.len();
        Ok(LogFile {
            file,
            len,
            buffer: Vec::new(),
        })
    }

    /// Appends `data` at the end of the file. When it returns, the data is in the file (in
    /// the page cache; see [`LogFile::sync`]).
    pub async fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        match &mut self.file {
            Handle::IoUring(file) => {
                let mut buffer = std::mem::take(&mut self.buffer);
                buffer.clear();
                buffer.extend_from_slice(data);
                // With O_APPEND the kernel writes at the end whatever the offset says.
                let (result, buffer) = file.write_all_at(buffer, self.len).await;
                self.buffer = buffer;
                result?;
            }
            Handle::Tokio(file) => {
                file.write_all(data).await?;
                // tokio's File writes in the background; flush so the data is in the file.
                file.flush().await?;
            }
        }
        self.len += data.len() as u64;
        Ok(())
    }

    /// Bytes in the file as far as this writer knows: its size when opened plus what was
    /// appended through this `LogFile`.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether [`LogFile::len`] is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Waits until what was appended is on disk (`fdatasync`).
    pub async fn sync(&self) -> io::Result<()> {
        match &self.file {
            Handle::IoUring(file) => file.sync_data().await,
            Handle::Tokio(file) => file.sync_data().await,
        }
    }

    /// Closes the file, reporting errors that dropping it would swallow.
    pub async fn close(self) -> io::Result<()> {
        match self.file {
            Handle::IoUring(file) => file.close().await,
            Handle::Tokio(mut file) => file.flush().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uring::Executor;

    fn on_each_runtime(test: impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()>>>) {
        for runtime in [Executor::new(), Executor::tokio()] {
            runtime.expect("runtime").block_on(test());
        }
    }

    #[test]
    fn reads_proc_files_whose_size_is_unknown() {
        on_each_runtime(|| {
            Box::pin(async {
                let meminfo = read_file("/proc/meminfo")
                    .await
                    .expect("read /proc/meminfo");
                let text = String::from_utf8(meminfo).expect("utf-8");
                assert!(text.starts_with("MemTotal:"), "{text}");
                assert!(text.ends_with('\n'));
            })
        });
    }

    #[test]
    fn reads_files_larger_than_one_read() {
        on_each_runtime(|| {
            Box::pin(async {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("big");
                let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
                std::fs::write(&path, &content).expect("write");
                assert_eq!(read_file(&path).await.expect("read"), content);
            })
        });
    }

    #[test]
    fn missing_file_is_not_found() {
        on_each_runtime(|| {
            Box::pin(async {
                let err = read_file("/nonexistent/skiff/manifest.yaml")
                    .await
                    .expect_err("no such file");
                assert_eq!(err.kind(), io::ErrorKind::NotFound);
            })
        });
    }

    #[test]
    fn reads_the_tail_of_a_file() {
        on_each_runtime(|| {
            Box::pin(async {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("log");
                std::fs::write(&path, b"first\nsecond\nthird\n").expect("write");
                assert_eq!(read_tail(&path, 6).await.expect("read"), b"third\n");
                assert_eq!(
                    read_tail(&path, 1000).await.expect("read"),
                    b"first\nsecond\nthird\n"
                );
                assert_eq!(read_tail(&path, 0).await.expect("read"), b"");
                let err = read_tail(dir.path().join("missing"), 10)
                    .await
                    .expect_err("missing");
                assert_eq!(err.kind(), io::ErrorKind::NotFound);
            })
        });
    }

    #[test]
    fn log_file_appends_after_existing_content() {
        on_each_runtime(|| {
            Box::pin(async {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("container.log");
                std::fs::write(&path, b"old\n").expect("write");
                let mut log = LogFile::open(&path).await.expect("open");
                assert_eq!(log.len(), 4);
                log.append(b"one\n").await.expect("append");
                log.append(b"").await.expect("empty append");
                log.append(b"two\n").await.expect("append");
                // A second writer on the same file does not overwrite the first one's lines.
                let mut other = LogFile::open(&path).await.expect("open again");
                other.append(b"three\n").await.expect("append");
                log.append(b"four\n").await.expect("append");
                log.sync().await.expect("sync");
                log.close().await.expect("close");
                other.close().await.expect("close");
                assert_eq!(
                    std::fs::read_to_string(&path).expect("read"),
                    "old\none\ntwo\nthree\nfour\n"
                );
            })
        });
    }
}

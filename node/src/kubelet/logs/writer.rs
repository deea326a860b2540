//! The copier: follows one container's output from Docker and appends it to the container's
//! log file in the CRI format, through io_uring, rotating the file when it grows too big.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use super::cri;
use crate::runtime::{ContainerRuntime, RuntimeError};
use crate::uring::{self, LogFile};

/// How big a log file grows and how many files of one container are kept (the kubelet's
/// `containerLogMaxSize` and `containerLogMaxFiles`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLimits {
    /// Bytes after which the file is rotated.
    pub max_size: u64,
    /// Files kept per container instance, the current one included (at least 2).
    pub max_files: usize,
}

impl Default for LogLimits {
    /// The kubelet's defaults: 10 MiB, 5 files.
    fn default() -> Self {
        LogLimits {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// What a copier has done so far, for readers that follow the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes in the current file.
    pub written: u64,
    /// How often the file was rotated (a reader then goes on in the new file).
    pub rotations: u32,
    /// The copier has ended: nothing more will be written.
    pub done: bool,
}

/// Why copying stopped before the container's output ended.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Docker's stream failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The file could not be written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// How much of the file's end is read to find the last record copied.
const LAST_RECORD_WINDOW: u64 = 64 * 1024;

/// Records gathered into one write when Docker has several ready.
const BATCH_BYTES: usize = 64 * 1024;

/// One container's copier.
pub struct Copier<'a> {
    /// The container.
    pub id: &'a str,
    /// Its log file.
    pub path: &'a Path,
    /// Size and file limits.
    pub limits: LogLimits,
    /// Told after every write.
    pub progress: &'a watch::Sender<Progress>,
}

impl Copier<'_> {
    /// Copies until the container's output ends (it stopped). Starts after the last record
    /// the file holds, so a copier that starts again (the agent restarted) neither loses nor
    /// repeats output.
    pub async fn run<R: ContainerRuntime>(&self, runtime: &R) -> Result<(), CopyError> {
        let file_error = |source| CopyError::File {
            path: self.path.to_owned(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(file_error)?;
        }
        let last = last_record_time(self.path).await.map_err(file_error)?;
        let mut file = LogFile::open(self.path).await.map_err(file_error)?;
        self.progress.send_modify(|p| p.written = file.len());
        let mut records = std::pin::pin!(runtime.logs(self.id, last));
        let mut batch = Vec::with_capacity(BATCH_BYTES);
        while let Some(record) = records.next().await {
            batch.clear();
            let mut next = Some(record);
            // Everything Docker has ready goes into one write.
            while let Some(record) = next.take() {
                let record = record?;
                if last.is_none_or(|last| record.time > last) {
                    cri::encode(&record, &mut batch);
                }
                let room = (file.len() + batch.len() as u64) < self.limits.max_size;
                if batch.len() < BATCH_BYTES && room {
                    next = records.next().now_or_never().flatten();
                }
            }
            if batch.is_empty() {
                continue;
            }
            if !file.is_empty() && file.len() + batch.len() as u64 > self.limits.max_size {
                file = self.rotate(file).await.map_err(file_error)?;
            }
            file.append(&batch).await.map_err(file_error)?;
            let written = file.len();
            self.progress.send_modify(|p| p.written = written);
        }
        file.close().await.map_err(file_error)
    }

    /// Closes the full file, renames it `<n>.log.<time>`, removes the oldest rotated files
    /// beyond the limit and opens a new empty file.
    async fn rotate(&self, file: LogFile) -> io::Result<LogFile> {
        file.close().await?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stamp = Utc::now().format("%Y%m%d-%H%M%S%.6f");
        let rotated = self.path.with_file_name(format!("{name}.{stamp}"));
        tokio::fs::rename(self.path, &rotated).await?;
        if let Some(dir) = self.path.parent() {
            let mut old: Vec<PathBuf> = std::fs::read_dir(dir)?
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.starts_with(&format!("{name}.")))
                })
                .map(|e| e.path())
                .collect();
            // The stamps sort by time.
            old.sort();
            let keep = self.limits.max_files.saturating_sub(1).max(1);
            for path in &old[..old.len().saturating_sub(keep)] {
                tokio::fs::remove_file(path).await?;
            }
        }
        let file = LogFile::open(self.path).await?;
        self.progress.send_modify(|p| {
            p.rotations += 1;
            p.written = 0;
        });
        Ok(file)
    }
}

/// The time of the last record copied into the file at `path`, or into its newest rotated
/// file when it has none yet (`None`: nothing copied).
async fn last_record_time(path: &Path) -> io::Result<Option<DateTime<Utc>>> {
    if let Some(time) = last_record_in(path).await? {
        return Ok(Some(time));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(None);
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let newest_rotated = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .map(|e| e.path())
            .max(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => return Err(err),
    };
    match newest_rotated {
        Some(rotated) => last_record_in(&rotated).await,
        None => Ok(None),
    }
}

async fn last_record_in(path: &Path) -> io::Result<Option<DateTime<Utc>>> {
    let tail = match uring::read_tail(path, LAST_RECORD_WINDOW).await {
        Ok(tail) => tail,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    Ok(tail
        .split(|b| *b == b'\n')
        .rev()
        .find_map(cri::parse)
        .map(|line| line.time))
}

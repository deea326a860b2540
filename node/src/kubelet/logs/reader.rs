//! Reading a container's log file for `kubectl logs`: the kubelet's options (tail, since,
//! timestamps) over the CRI records, and following the file while its copier writes.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, stream};
use tokio::fs::File;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

use super::cri::{self, CriLine};
use super::writer::Progress;

/// Which part of a log to read (the file's part of the kubelet's `PodLogOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Keep going with new output until the container's output ends.
    pub follow: bool,
    /// Only the last N records (`None`: all).
    pub tail_lines: Option<u64>,
    /// Prefix each record with its RFC 3339 time.
    pub timestamps: bool,
    /// Only records at or after this time (`None`: from the start).
    pub since: Option<DateTime<Utc>>,
}

/// Chunks sent to the client at most this big.
const CHUNK_BYTES: usize = 64 * 1024;

/// The log at `path` as the client wants it. `progress` is the copier's, if one is still
/// writing the file: with `options.follow` the stream then goes on with what it writes, and
/// ends when the copier has written the last output (or the client goes away).
pub fn read_logs(
    path: PathBuf,
    options: ReadOptions,
    progress: Option<watch::Receiver<Progress>>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut out = Output {
            options,
            tx,
            chunk: Vec::with_capacity(CHUNK_BYTES),
        };
        if let Err(err) = read(path, progress, &mut out).await {
            let _ = out.tx.send(Err(err)).await;
        }
    });
    stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// The records as text for the client.
struct Output {
    options: ReadOptions,
    tx: mpsc::Sender<io::Result<Bytes>>,
    chunk: Vec<u8>,
}

/// The client went away.
struct Gone;

impl Output {
    fn push(&mut self, line: &CriLine<'_>) {
        if self.options.timestamps {
            self.chunk
                .extend_from_slice(cri::format_time(&line.time).as_bytes());
            self.chunk.push(b' ');
        }
        self.chunk.extend_from_slice(line.content);
        if !line.partial {
            self.chunk.push(b'\n');
        }
    }

    fn wanted(&self, line: &CriLine<'_>) -> bool {
        self.options.since.is_none_or(|since| line.time >= since)
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.chunk,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.tx.send(Ok(chunk)).await.map_err(|_| Gone)
    }

    /// Sends the wanted records of `data`'s complete lines; returns how many bytes were
    /// complete lines (the rest is a record still being written).
    async fn send_lines(&mut self, data: &[u8]) -> Result<usize, Gone> {
        let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in data[..complete]
            .split(|b| *b == b'\n')
            .filter_map(cri::parse)
        {
            if self.wanted(&line) {
                self.push(&line);
                if self.chunk.len() >= CHUNK_BYTES {
                    self.flush().await?;
                }
            }
        }
        self.flush().await?;
        Ok(complete)
    }
}

async fn read(
    path: PathBuf,
    progress: Option<watch::Receiver<Progress>>,
    out: &mut Output,
) -> io::Result<()> {
    let follow = out.options.follow;
    let mut progress = progress.filter(|_| follow);
    // Taken before the file is opened, so a rotation in between is noticed.
    let mut rotations = progress.as_mut().map(|p| p.borrow_and_update().rotations);
    let mut file = open(&path).await?;
    let mut data = Vec::new();
    if let Some(file) = file.as_mut() {
        file.read_to_end(&mut data).await?;
    }
    let Ok(complete) = send_first(out, &data).await else {
        return Ok(());
    };
    data.drain(..complete);
    let Some(mut progress) = progress else {
        return Ok(());
    };
    loop {
        let now = *progress.borrow_and_update();
        if let Some(file) = file.as_mut() {
            file.read_to_end(&mut data).await?;
        }
        let Ok(complete) = out.send_lines(&data).await else {
            return Ok(());
        };
        data.drain(..complete);
        if rotations != Some(now.rotations) {
            // The old file is complete: go on at the start of the new one.
            rotations = Some(now.rotations);
            data.clear();
            file = open(&path).await?;
            continue;
        }
        if file.is_none() {
            // Not made yet when the read began.
            file = open(&path).await?;
            if file.is_some() {
                continue;
            }
        }
        if now.done {
            return Ok(());
        }
        tokio::select! {
            changed = progress.changed() => {
                if changed.is_err() {
                    // The copier is gone without saying it was done: read what there is.
                    if let Some(file) = file.as_mut() {
                        file.read_to_end(&mut data).await?;
                    }
                    let _ = out.send_lines(&data).await;
                    return Ok(());
                }
            }
            () = out.tx.closed() => return Ok(()),
        }
    }
}

/// The first answer: the wanted records of the file as it is, the last `tail_lines` of them.
async fn send_first(out: &mut Output, data: &[u8]) -> Result<usize, Gone> {
    let Some(tail) = out.options.tail_lines else {
        return out.send_lines(data).await;
    };
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let keep = usize::try_from(tail).unwrap_or(usize::MAX);
    let mut last: VecDeque<CriLine<'_>> = VecDeque::with_capacity(keep.min(1024));
    if keep > 0 {
        for line in data[..complete]
            .split(|b| *b == b'\n')
            .filter_map(cri::parse)
            .filter(|line| out.wanted(line))
        {
            if last.len() == keep {
                last.pop_front();
            }
            last.push_back(line);
        }
    }
    for line in &last {
        out.push(line);
        if out.chunk.len() >= CHUNK_BYTES {
            out.flush().await?;
        }
    }
    out.flush().await?;
    Ok(complete)
}

/// The file, or `None` if there is none (yet).
async fn open(path: &PathBuf) -> io::Result<Option<File>> {
    match File::open(path).await {
        Ok(file) => Ok(Some(file)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn line(time: &str, stream: &str, tag: &str, content: &str) -> String {
        format!("2026-12-01T10:00:{time}.000000000Z {stream} {tag} {content}\n")
    }

    async fn collect(stream: impl Stream<Item = io::Result<Bytes>>) -> String {
        let chunks: Vec<Bytes> = stream.map(|chunk| chunk.expect("chunk")).collect().await;
        String::from_utf8(chunks.concat()).expect("utf-8")
    }

    fn log_file(content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        std::fs::write(&path, content).expect("write");
        (dir, path)
    }

    #[tokio::test]
    async fn applies_tail_since_and_timestamps() {
        let content = [
            line("01", "stdout", "F", "one"),
            line("02", "stderr", "F", "two"),
            line("03", "stdout", "P", "thr"),
            line("03", "stdout", "F", "ee"),
            line("04", "stdout", "F", ""),
        ]
        .concat()
            // A record still being written is not shown yet.
            + "2026-12-01T10:00:05.000000000Z stdout F fiv";
        let (_dir, path) = log_file(&content);
        let read = |options| collect(read_logs(path.clone(), options, None));

        assert_eq!(read(ReadOptions::default()).await, "one\ntwo\nthree\n\n");
        let tail = ReadOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(read(tail).await, "ee\n\n");
        let none = ReadOptions {
            tail_lines: Some(0),
            ..Default::default()
        };
        assert_eq!(read(none).await, "");
        let since = ReadOptions {
            since: Some(
                DateTime::parse_from_rfc3339("2026-12-01T10:00:02Z")
                    .expect("time")
                    .with_timezone(&Utc),
            ),
            timestamps: true,
            tail_lines: Some(10),
            ..Default::default()
        };
        assert_eq!(
            read(since).await,
            "2026-12-01T10:00:02.000000000Z two\n\
             2026-12-01T10:00:03.000000000Z thr\
             2026-12-01T10:00:03.000000000Z ee\n\
             2026-12-01T10:00:04.000000000Z \n"
        );
        // Following a file nothing writes any more: what is there.
        let follow = ReadOptions {
            follow: true,
            ..Default::default()
        };
        assert_eq!(read(follow).await, "one\ntwo\nthree\n\n");
    }

    #[tokio::test]
    async fn a_missing_file_is_an_empty_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = collect(read_logs(
            dir.path().join("0.log"),
            ReadOptions::default(),
            None,
        ))
        .await;
        assert_eq!(out, "");
    }

    async fn next(stream: &mut (impl Stream<Item = io::Result<Bytes>> + Unpin)) -> String {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .expect("a chunk in time");
        String::from_utf8(chunk.expect("not ended").expect("ok").to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn follows_appends_and_rotations_until_done() {
        let (dir, path) = log_file(&line("01", "stdout", "F", "first"));
        let (progress, rx) = watch::channel(Progress::default());
        let options = ReadOptions {
            follow: true,
            ..Default::default()
        };
        let mut stream = Box::pin(read_logs(path.clone(), options, Some(rx)));
        assert_eq!(next(&mut stream).await, "first\n");

        // Appended in two writes: the line shows once it is whole.
        let append = |text: &str| {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open");
            file.write_all(text.as_bytes()).expect("write");
        };
        let second = line("02", "stderr", "F", "second");
        append(&second[..20]);
        progress.send_modify(|p| p.written += 20);
        append(&second[20..]);
        progress.send_modify(|p| p.written += 1);
        assert_eq!(next(&mut stream).await, "second\n");

        // Rotated: the rest of the old file, then the new one.
        append(&line("03", "stdout", "F", "last-of-old"));
        std::fs::rename(&path, dir.path().join("0.log.20261201-100003")).expect("rename");
        std::fs::write(&path, line("04", "stdout", "F", "in-new")).expect("write");
        progress.send_modify(|p| {
            p.rotations += 1;
            p.written = 10;
        });
        let mut seen = String::new();
        while !seen.ends_with("in-new\n") {
            seen += &next(&mut stream).await;
        }
        assert_eq!(seen, "last-of-old\nin-new\n");

        append(&line("05", "stdout", "F", "final"));
        progress.send_modify(|p| p.done = true);
        assert_eq!(next(&mut stream).await, "final\n");
        assert!(
            stream.next().await.is_none(),
            "ends when the copier is done"
        );
    }
}

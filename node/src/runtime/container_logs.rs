//! Follow a container's output as Docker stored it (its json-file log): every record with the
//! time Docker read it and the stream it came from, until the container stops.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, stream};

use super::{DockerRuntime, LogRecord, LogStream, RuntimeError};

/// The output of container `id` from `since` on (whole seconds, as Docker counts; `None`:
/// from the start), following new output until the container stops.
pub(super) fn container_logs(
    runtime: &DockerRuntime,
    id: &str,
    since: Option<DateTime<Utc>>,
) -> impl Stream<Item = Result<LogRecord, RuntimeError>> + Send + 'static {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        // 0 means "from the start".
        since: since.map_or(0, |t| {
            i32::try_from(t.timestamp().max(0)).unwrap_or(i32::MAX)
        }),
        until: 0,
        timestamps: true,
        tail: String::from("all"),
    };
    let runtime = runtime.clone();
    let id = id.to_owned();
    // Connect first (an async step); the stream then owns the client.
    let connect = async move {
        match runtime.client().await {
            Ok(docker) => docker
                .logs(&id, Some(options))
                .map(move |chunk| match chunk {
                    Ok(LogOutput::StdErr { message }) => Ok(record(LogStream::Stderr, message)),
                    // A TTY merges both streams into one (Console); Kubernetes calls it stdout.
                    Ok(
                        LogOutput::StdOut { message }
                        | LogOutput::Console { message }
                        | LogOutput::StdIn { message },
                    ) => Ok(record(LogStream::Stdout, message)),
                    Err(err) => Err(runtime.error(err)),
                })
                .boxed(),
            Err(err) => stream::once(async move { Err(err) }).boxed(),
        }
    };
    stream::once(connect).flatten()
}

/// One record of Docker's output with `timestamps`: `<RFC 3339 time> <content>`. A record
/// without a readable time (Docker always sends one) is kept, stamped now.
fn record(stream: LogStream, message: Bytes) -> LogRecord {
    let stamped = message.iter().position(|b| *b == b' ').and_then(|space| {
        let time = std::str::from_utf8(&message[..space]).ok()?;
        let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
        Some((time, space + 1))
    });
    match stamped {
        Some((time, start)) => LogRecord {
            time,
            stream,
            content: message.slice(start..),
        },
        None => LogRecord {
            time: Utc::now(),
            stream,
            content: message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_dockers_timestamp_from_the_content() {
        let r = record(
            LogStream::Stderr,
            Bytes::from_static(b"2026-12-01T11:41:03.123456789Z oops: a b\n"),
        );
        assert_eq!(r.stream, LogStream::Stderr);
        assert_eq!(
            r.time,
            DateTime::parse_from_rfc3339("2026-12-01T11:41:03.123456789Z").expect("time")
        );
        assert_eq!(r.content, Bytes::from_static(b"oops: a b\n"));

        let before = Utc::now();
        let r = record(LogStream::Stdout, Bytes::from_static(b"no-time-here\n"));
        assert!(r.time >= before);
        assert_eq!(r.content, Bytes::from_static(b"no-time-here\n"));
    }
}

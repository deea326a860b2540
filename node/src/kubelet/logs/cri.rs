//! The CRI log format of the files under `pods/<uid>/logs`, as containerd writes them for
//! the kubelet: one record per line,
//!
//! ```text
//! 2026-12-01T11:41:03.123456789Z stdout F a whole line
//! 2026-12-01T11:41:03.123456789Z stderr P the first part of a long line...
//! ```
//!
//! `F` ends a line of the container's output; `P` is a part of one that goes on in the next
//! record (the content then had no `\n`). The content itself never holds a `\n`.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::runtime::{LogRecord, LogStream};

/// One record read back from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// When the runtime read it.
    pub time: DateTime<Utc>,
    /// Which stream.
    pub stream: LogStream,
    /// Whether the line goes on in the next record.
    pub partial: bool,
    /// The content, without the `\n`.
    pub content: &'a [u8],
}

/// The time as the files write it: RFC 3339 with nanoseconds, in UTC.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Appends `record` to `out` as CRI lines: a line per `\n`-terminated piece (`F`), and a `P`
/// line for a rest without `\n`.
pub fn encode(record: &LogRecord, out: &mut Vec<u8>) {
    let time = format_time(&record.time);
    let stream = match record.stream {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
    };
    let mut rest: &[u8] = &record.content;
    while !rest.is_empty() {
        let (content, tag, next) = match rest.iter().position(|b| *b == b'\n') {
            Some(end) => (&rest[..end], "F", &rest[end + 1..]),
            None => (rest, "P", &[][..]),
        };
        out.extend_from_slice(time.as_bytes());
        out.push(b' ');
        out.extend_from_slice(stream.as_bytes());
        out.push(b' ');
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        out.extend_from_slice(content);
        out.push(b'\n');
        rest = next;
    }
}

/// Reads one line of a file (without its `\n`); `None` if it is not a CRI record.
pub fn parse(line: &[u8]) -> Option<CriLine<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    let stream = match fields.next()? {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        _ => return None,
    };
    let partial = match fields.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    // An empty line of output is `... F ` or even `... F` from other writers.
    let content = fields.next().unwrap_or_default();
    Some(CriLine {
        time,
        stream,
        partial,
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(stream: LogStream, content: &'static [u8]) -> LogRecord {
        LogRecord {
            time: DateTime::parse_from_rfc3339("2026-12-01T11:41:03.5Z")
                .expect("time")
                .with_timezone(&Utc),
            stream,
            content: Bytes::from_static(content),
        }
    }

    #[test]
    fn encodes_whole_and_partial_lines() {
        let mut out = Vec::new();
        encode(&record(LogStream::Stdout, b"hello world\n"), &mut out);
        encode(
            &record(LogStream::Stderr, b"two\nlines\nand a rest"),
            &mut out,
        );
        encode(&record(LogStream::Stdout, b"\n"), &mut out);
        encode(&record(LogStream::Stdout, b""), &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "2026-12-01T11:41:03.500000000Z stdout F hello world\n\
             2026-12-01T11:41:03.500000000Z stderr F two\n\
             2026-12-01T11:41:03.500000000Z stderr F lines\n\
             2026-12-01T11:41:03.500000000Z stderr P and a rest\n\
             2026-12-01T11:41:03.500000000Z stdout F \n"
        );
    }

    #[test]
    fn parses_what_it_encodes_and_what_containerd_writes() {
        let mut out = Vec::new();
        encode(&record(LogStream::Stderr, b"a b  c\n"), &mut out);
        let line = parse(out.strip_suffix(b"\n").expect("newline")).expect("parses");
        assert_eq!(line.stream, LogStream::Stderr);
        assert!(!line.partial);
        assert_eq!(line.content, b"a b  c");
        assert_eq!(line.time, record(LogStream::Stdout, b"").time);

        let containerd =
            parse(b"2016-10-06T00:17:09.669794202Z stdout P log content 1").expect("parses");
        assert!(containerd.partial);
        assert_eq!(containerd.content, b"log content 1");
        assert_eq!(
            parse(b"2016-10-06T00:17:10.113242941Z stderr F")
                .expect("parses")
                .content,
            b""
        );
    }

    #[test]
    fn rejects_lines_that_are_not_records() {
        for bad in [
            &b""[..],
            b"hello world",
            b"2016-10-06T00:17:09Z stdin F x",
            b"2016-10-06T00:17:09Z stdout X x",
            b"yesterday stdout F x",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}

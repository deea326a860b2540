//! The HTTP/1.1 of the heartbeat: the Lease renewal request, built once, whose `renewTime`
//! is overwritten in place before each send; merge patches such as the node status on the
//! same pre-built headers; and a parser for the response (head by `httparse`, body by
//! `Content-Length`, chunked transfer coding, or end of connection).

use std::ops::Range;

use chrono::{DateTime, SecondsFormat, Utc};

/// Why a request cannot be built or a response cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request would not be valid HTTP (URL authority, token, node name, time).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The response is not valid HTTP/1.1.
    #[error("malformed HTTP response: {0}")]
    MalformedResponse(String),
}

/// Largest response body accepted; a Lease is well under 1 KiB.
const MAX_BODY: usize = 1 << 20;
/// Most headers a response may have.
const MAX_HEADERS: usize = 64;
/// `2026-11-25T18:00:00.000000Z`: a MicroTime always has this width until year 9999.
const MICRO_TIME_LEN: usize = 27;

/// The headers every request on the connection carries, built once.
#[derive(Clone, Debug)]
pub(crate) struct RequestHead {
    headers: String,
}

impl RequestHead {
    /// `authority` is the `Host` header (`127.0.0.1:6443`), `token` the bearer token (none:
    /// the connection's client certificate says who it is).
    pub(crate) fn new(authority: &str, token: Option<&str>) -> Result<Self, HttpError> {
        if let Some(token) = token
            && (token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(HttpError::InvalidRequest(
                "the bearer token must be non-empty visible ASCII".into(),
            ));
        }
        if authority.is_empty() || !authority.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HttpError::InvalidRequest(format!(
                "invalid host {authority:?}"
            )));
        }
        Ok(RequestHead {
            headers: format!(
                "Host: {authority}\r\n\
                 {authorization}\
                 User-Agent: skiff-node/{version}\r\n\
                 Accept: application/json\r\n",
                authorization = token
                    .map(|t| format!("Authorization: Bearer {t}\r\n"))
                    .unwrap_or_default(),
                version = env!("CARGO_PKG_VERSION"),
            ),
        })
    }

    /// A JSON merge patch (RFC 7386) of the object at `path` (already percent-safe).
    pub(crate) fn merge_patch(&self, path: &str, body: &[u8]) -> Vec<u8> {
        let head = format!(
            "PATCH {path} HTTP/1.1\r\n{headers}\
             Content-Type: application/merge-patch+json\r\n\
             Content-Length: {length}\r\n\
             \r\n",
            headers = self.headers,
            length = body.len(),
        );
        [head.as_bytes(), body].concat()
    }
}

/// The API path of the Node `node`'s status subresource.
pub(crate) fn node_status_path(node: &str) -> Result<String, HttpError> {
    check_node_name(node)?;
    Ok(format!("/api/v1/nodes/{node}/status"))
}

fn check_node_name(node: &str) -> Result<(), HttpError> {
    if is_dns_subdomain(node) {
        Ok(())
    } else {
        Err(HttpError::InvalidRequest(format!(
            "node name {node:?} is not a DNS-1123 subdomain"
        )))
    }
}

/// The Lease renewal, built once, with the slot of its `spec.renewTime`.
#[derive(Clone, Debug)]
pub(crate) struct LeaseRequest {
    bytes: Vec<u8>,
    renew_time: Range<usize>,
}

impl LeaseRequest {
    /// A merge patch of the Lease `kube-node-lease/<node>`: holder and duration (which never
    /// change) and `renewTime`.
    pub(crate) fn new(
        head: &RequestHead,
        node: &str,
        lease_duration_seconds: i32,
    ) -> Result<Self, HttpError> {
        check_node_name(node)?;
        // The node name is a DNS subdomain: nothing in it needs JSON escaping.
        let body_head = format!(
            r#"{{"spec":{{"holderIdentity":"{node}","leaseDurationSeconds":{lease_duration_seconds},"renewTime":""#
        );
        let placeholder = "0000-00-00T00:00:00.000000Z";
        let body = format!(r#"{body_head}{placeholder}"}}}}"#);
        let bytes = head.merge_patch(
            &format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"),
            body.as_bytes(),
        );
        let start = bytes.len() - body.len() + body_head.len();
        Ok(LeaseRequest {
            bytes,
            renew_time: start..start + MICRO_TIME_LEN,
        })
    }

    /// Writes `time` as the MicroTime `renewTime` into the request.
    pub(crate) fn stamp(&mut self, time: DateTime<Utc>) -> Result<(), HttpError> {
        // RFC 3339 without a format string to parse: a renewal each time.
        let stamp = time.to_rfc3339_opts(SecondsFormat::Micros, true);
        let slot = &mut self.bytes[self.renew_time.clone()];
        if stamp.len() != slot.len() {
            return Err(HttpError::InvalidRequest(format!(
                "{time} is not a MicroTime of 27 bytes"
            )));
        }
        slot.copy_from_slice(stamp.as_bytes());
        Ok(())
    }

    /// The request as it goes on the wire.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Lowercase alphanumerics, `-` and `.`, at most 253 bytes: safe in a URL path as is.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A complete HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// Whether the connection can carry the next request.
    pub(crate) keep_alive: bool,
}

/// Parses the response at the start of `buf`. `Ok(None)`: incomplete, read more.
/// `eof`: the peer closed the connection, so a body without length ends here.
/// Returns the response and the bytes it took.
pub(crate) fn parse_response(
    buf: &[u8],
    eof: bool,
) -> Result<Option<(Response, usize)>, HttpError> {
    let mut offset = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Response::new(&mut headers);
        let head_len = match head.parse(&buf[offset..]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(err) => return Err(malformed(format!("response head: {err}"))),
        };
        let status = head.code.ok_or_else(|| malformed("no status code"))?;
        let body_start = offset + head_len;
        // Interim responses (100 Continue) precede the real one.
        if (100..200).contains(&status) && status != 101 {
            offset = body_start;
            continue;
        }
        let framing = Framing::of(&head)?;
        let keep_alive = keep_alive(&head);
        let rest = &buf[body_start..];
        let (body, body_len) = match framing {
            Framing::None => (Vec::new(), 0),
            Framing::Length(_) if status == 204 || status == 304 => (Vec::new(), 0),
            Framing::Length(len) if rest.len() >= len => (rest[..len].to_vec(), len),
            Framing::Length(_) => return Ok(None),
            Framing::Chunked => match decode_chunked(rest)? {
                Some(done) => done,
                None => return Ok(None),
            },
            Framing::UntilClose if status == 204 || status == 304 => (Vec::new(), 0),
            Framing::UntilClose if eof => (rest.to_vec(), rest.len()),
            Framing::UntilClose if rest.len() > MAX_BODY => {
                return Err(malformed("body too large"));
            }
            Framing::UntilClose => return Ok(None),
        };
        let response = Response {
            status,
            body,
            keep_alive: keep_alive && framing != Framing::UntilClose,
        };
        return Ok(Some((response, body_start + body_len)));
    }
}

/// How the body's end is found (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

impl Framing {
    fn of(head: &httparse::Response<'_, '_>) -> Result<Framing, HttpError> {
        let mut framing = Framing::UntilClose;
        for header in head.headers.iter() {
            if header.name.eq_ignore_ascii_case("transfer-encoding") {
                let value = std::str::from_utf8(header.value)
                    .map_err(|_| malformed("Transfer-Encoding is not text"))?;
                let last = value.rsplit(',').next().unwrap_or_default().trim();
                if !last.eq_ignore_ascii_case("chunked") {
                    return Err(malformed(format!(
                        "unsupported Transfer-Encoding {value:?}"
                    )));
                }
                // Transfer-Encoding wins over Content-Length.
                framing = Framing::Chunked;
            } else if header.name.eq_ignore_ascii_case("content-length")
                && framing != Framing::Chunked
            {
                let len = std::str::from_utf8(header.value)
                    .ok()
                    .and_then(|value| value.trim().parse::<usize>().ok())
                    .ok_or_else(|| malformed("invalid Content-Length"))?;
                if matches!(framing, Framing::Length(other) if other != len) {
                    return Err(malformed("conflicting Content-Length headers"));
                }
                if len > MAX_BODY {
                    return Err(malformed(format!("body of {len} bytes is too large")));
                }
                framing = Framing::Length(len);
            }
        }
        if matches!(head.code, Some(101)) {
            framing = Framing::None;
        }
        Ok(framing)
    }
}

/// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 closes it unless
/// `Connection: keep-alive`.
fn keep_alive(head: &httparse::Response<'_, '_>) -> bool {
    let mut keep = head.version == Some(1);
    for header in head.headers.iter() {
        if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    return false;
                }
                if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep = true;
                }
            }
        }
    }
    keep
}

/// Decodes a chunked body at the start of `buf`: the body and the bytes it took, or `None`
/// if it is not complete yet.
fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete(parsed)) => parsed,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(malformed("invalid chunk size")),
        };
        pos += size_len;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(eol) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|size| body.len() + size <= MAX_BODY)
            .ok_or_else(|| malformed("chunked body too large"))?;
        let Some(chunk) = buf.get(pos..pos + size + 2) else {
            return Ok(None);
        };
        if &chunk[size..] != b"\r\n" {
            return Err(malformed("chunk not followed by CRLF"));
        }
        body.extend_from_slice(&chunk[..size]);
        pos += size + 2;
    }
}

fn malformed(reason: impl Into<String>) -> HttpError {
    HttpError::MalformedResponse(reason.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn parse(text: &str) -> Option<(Response, usize)> {
        parse_response(text.as_bytes(), false).expect("well-formed")
    }

    fn lease_request(node: &str) -> Result<LeaseRequest, HttpError> {
        LeaseRequest::new(&RequestHead::new("127.0.0.1:6443", Some("tok"))?, node, 40)
    }

    #[test]
    fn lease_request_is_a_merge_patch_of_renew_time() {
        let mut request = lease_request("node-1").expect("request");
        let time = Utc
            .with_ymd_and_hms(2026, 11, 25, 18, 0, 0)
            .single()
            .expect("time")
            + chrono::Duration::microseconds(42);
        request.stamp(time).expect("stamp");
        let text = String::from_utf8(request.bytes().to_vec()).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert_eq!(
            head.lines().next(),
            Some(
                "PATCH /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1 HTTP/1.1"
            )
        );
        assert!(head.contains("\r\nHost: 127.0.0.1:6443\r\n"));
        assert!(head.contains("\r\nAuthorization: Bearer tok\r\n"));
        assert!(head.contains("\r\nContent-Type: application/merge-patch+json\r\n"));
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
        let patch: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        assert_eq!(
            patch,
            serde_json::json!({"spec": {
                "holderIdentity": "node-1",
                "leaseDurationSeconds": 40,
                "renewTime": "2026-11-25T18:00:00.000042Z"
            }})
        );
        // Stamping again replaces the time in place.
        request
            .stamp(time + chrono::Duration::seconds(10))
            .expect("stamp");
        assert!(
            String::from_utf8_lossy(request.bytes())
                .ends_with(r#""renewTime":"2026-11-25T18:00:10.000042Z"}}"#)
        );
    }

    #[test]
    fn node_status_patch() {
        let head = RequestHead::new("h:1", Some("tok")).expect("head");
        let path = node_status_path("node-1").expect("path");
        let request = head.merge_patch(&path, br#"{"status":{}}"#);
        let text = String::from_utf8(request).expect("utf-8");
        assert!(text.starts_with("PATCH /api/v1/nodes/node-1/status HTTP/1.1\r\n"));
        assert!(text.ends_with("Content-Length: 13\r\n\r\n{\"status\":{}}"));
    }

    #[test]
    fn requests_reject_what_would_break_the_request_line_or_headers() {
        for node in ["", "Node", "a/b", "a b", "a\r\nX: y", "-a", "a.", "a\"b"] {
            assert!(lease_request(node).is_err(), "{node:?}");
            assert!(node_status_path(node).is_err(), "{node:?}");
        }
        assert!(RequestHead::new("h:1", Some("to\r\nken")).is_err());
        assert!(RequestHead::new("h:1", Some("")).is_err());
        assert!(RequestHead::new("h 1", Some("tok")).is_err());
    }

    #[test]
    fn content_length_body() {
        let text =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let (response, used) = parse(text).expect("complete");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"{}");
        assert!(response.keep_alive);
        assert_eq!(used, text.len());
        // Every strict prefix is incomplete.
        for end in 0..text.len() {
            assert_eq!(parse(&text[..end]), None, "{end}");
        }
    }

    #[test]
    fn chunked_body_with_trailers() {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let (response, used) = parse(text).expect("complete");
        assert_eq!(response.body, b"abcdefg");
        assert_eq!(&text[used..], "NEXT");
        for end in 0..used {
            assert_eq!(parse(&text[..end]), None, "{end}");
        }
        let bad = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n";
        assert!(parse_response(bad.as_bytes(), false).is_err());
    }

    #[test]
    fn connection_close_and_http_1_0() {
        let close = "HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let (response, _) = parse(close).expect("complete");
        assert_eq!(response.status, 500);
        assert!(!response.keep_alive);
        let old = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(!parse(old).expect("complete").0.keep_alive);
    }

    #[test]
    fn body_until_close_needs_eof() {
        let text = "HTTP/1.1 200 OK\r\n\r\nhello";
        assert_eq!(parse(text), None);
        let (response, used) = parse_response(text.as_bytes(), true)
            .expect("well-formed")
            .expect("complete at eof");
        assert_eq!(response.body, b"hello");
        assert!(!response.keep_alive);
        assert_eq!(used, text.len());
    }

    #[test]
    fn interim_responses_are_skipped() {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let (response, used) = parse(text).expect("complete");
        assert_eq!(response.status, 204);
        assert!(response.body.is_empty());
        assert_eq!(used, text.len());
    }

    #[test]
    fn malformed_responses_are_errors() {
        for text in [
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            assert!(parse_response(text.as_bytes(), false).is_err(), "{text:?}");
        }
    }
}

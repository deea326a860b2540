//! `GET /logs/<path>`: the node's log directory (/var/log), read-only, as the kubelet serves
//! it (`http.StripPrefix("/logs/", http.FileServer(http.Dir("/var/log/")))`): a directory is
//! an HTML listing of links, a file its bytes, a directory asked for without its trailing
//! slash a redirect to it.
//!
//! Nothing outside the directory is served: a `..` segment is refused, `.` and empty
//! segments are dropped, and the path found is resolved (symbolic links followed) and must
//! still lie inside the resolved log directory, so a link pointing out is not followed out.
//! That last check is stricter than Go's file server, which follows such links.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream;
use tokio::io::AsyncReadExt;
use tracing::debug;

use super::ServerState;

/// The directory served.
pub const NODE_LOG_DIR: &str = "/var/log";

/// How much of a file one body chunk carries.
const CHUNK: usize = 64 * 1024;

/// Why a path is not served.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeLogsError {
    /// A `..` segment or a NUL byte: a path that would leave the directory (400).
    #[error("invalid log path {0:?}")]
    Invalid(String),
    /// Nothing there, or outside the directory after resolving links (404).
    #[error("404 page not found")]
    NotFound,
    /// It exists but cannot be read (403).
    #[error("403 Forbidden")]
    Forbidden,
}

impl IntoResponse for NodeLogsError {
    fn into_response(self) -> Response {
        let code = match &self {
            NodeLogsError::Invalid(_) => StatusCode::BAD_REQUEST,
            NodeLogsError::NotFound => StatusCode::NOT_FOUND,
            NodeLogsError::Forbidden => StatusCode::FORBIDDEN,
        };
        let mut response = (code, format!("{self}\n")).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// `requested` (the decoded path under `/logs/`) as a path under `root`, without touching the
/// file system.
pub fn join_under(root: &Path, requested: &str) -> Result<PathBuf, NodeLogsError> {
    if requested.contains('\0') {
        return Err(NodeLogsError::Invalid(requested.to_owned()));
    }
    let mut path = root.to_path_buf();
    for segment in requested.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(NodeLogsError::Invalid(requested.to_owned())),
            name => path.push(name),
        }
    }
    Ok(path)
}

/// The handler, for `/logs/` and everything under it.
pub(super) async fn node_logs<R>(
    State(state): State<ServerState<R>>,
    uri: Uri,
) -> Result<Response, NodeLogsError> {
    let raw = uri.path().strip_prefix("/logs/").unwrap_or("");
    let requested = decode(raw).ok_or_else(|| NodeLogsError::Invalid(raw.to_owned()))?;
    serve(&state.node_log_dir, &requested).await
}

/// Serves `requested` (decoded, relative to `root`).
pub async fn serve(root: &Path, requested: &str) -> Result<Response, NodeLogsError> {
    let candidate = join_under(root, requested)?;
    let root = tokio::fs::canonicalize(root)
        .await
        .map_err(|_| NodeLogsError::NotFound)?;
    let resolved = tokio::fs::canonicalize(&candidate)
        .await
        .map_err(|err| io_error(&err))?;
    if !resolved.starts_with(&root) {
        debug!(path = %candidate.display(), "refusing a log path that leads out of the log directory");
        return Err(NodeLogsError::NotFound);
    }
    let metadata = tokio::fs::metadata(&resolved)
        .await
        .map_err(|err| io_error(&err))?;
    let wants_directory = requested.is_empty() || requested.ends_with('/');
    if metadata.is_dir() {
        if !wants_directory {
            // As Go's file server: relative, so it works behind the API server's proxy too.
            let name = requested.rsplit('/').next().unwrap_or("");
            let location = format!("{}/", encode(name));
            let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            return Ok(response);
        }
        return listing(&resolved).await;
    }
    if wants_directory || !metadata.is_file() {
        return Err(NodeLogsError::NotFound);
    }
    let file = tokio::fs::File::open(&resolved)
        .await
        .map_err(|err| io_error(&err))?;
    let body = stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buffer = vec![0; CHUNK];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(Bytes::from(buffer)), Some(file)))
            }
            Err(err) => Some((Err(err), None)),
        }
    });
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&resolved)),
    );
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(metadata.len()));
    Ok(response)
}

/// A directory as Go's file server lists it: sorted links, directories with a `/`.
async fn listing(dir: &Path) -> Result<Response, NodeLogsError> {
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|err| io_error(&err))?;
    let mut names = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let mut name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().await.is_ok_and(|t| t.is_dir()) {
            name.push('/');
        }
        names.push(name);
    }
    names.sort();
    Ok(listing_response(&names))
}

/// The HTML of a listing of `names`.
pub fn listing_html(names: &[String]) -> String {
    let mut html = String::from(
        "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n",
    );
    for name in names {
        let (base, slash) = match name.strip_suffix('/') {
            Some(base) => (base, "/"),
            None => (name.as_str(), ""),
        };
        html.push_str(&format!(
            "<a href=\"{}{slash}\">{}</a>\n",
            encode(base),
            escape_html(name)
        ));
    }
    html.push_str("</pre>\n");
    html
}

fn listing_response(names: &[String]) -> Response {
    let mut response = (StatusCode::OK, listing_html(names)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn io_error(err: &std::io::Error) -> NodeLogsError {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied => NodeLogsError::Forbidden,
        _ => NodeLogsError::NotFound,
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => "application/gzip",
        Some("json") => "application/json",
        Some("html" | "htm") => "text/html; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    }
}

/// Percent-decodes a URL path; `None` when the bytes are not UTF-8.
fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push(((hex(h)? << 4) | hex(l)?) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes a file name for a link.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        let root = Path::new("/var/log");
        assert_eq!(
            join_under(root, "").expect("root"),
            PathBuf::from("/var/log")
        );
        assert_eq!(
            join_under(root, "apt/history.log").expect("file"),
            PathBuf::from("/var/log/apt/history.log")
        );
        // An absolute-looking path is still under the root.
        assert_eq!(
            join_under(root, "//etc/./passwd").expect("under"),
            PathBuf::from("/var/log/etc/passwd")
        );
        for bad in ["..", "../etc/passwd", "apt/../../etc", "a\0b"] {
            assert!(
                matches!(join_under(root, bad), Err(NodeLogsError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(decode("a%20b%2F..").as_deref(), Some("a b/.."));
        assert_eq!(decode("%zz%").as_deref(), Some("%zz%"));
        assert_eq!(decode("%ff"), None);
    }

    #[test]
    fn listings_link_and_escape_names() {
        let html = listing_html(&[String::from("a b.log"), String::from("<x>/")]);
        assert!(
            html.contains("<a href=\"a%20b.log\">a b.log</a>\n"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"%3Cx%3E/\">&lt;x&gt;/</a>\n"),
            "{html}"
        );
    }

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn serves_files_and_listings_but_no_way_out() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), "secret").expect("write");
        let root = outside.path().join("log");
        std::fs::create_dir_all(root.join("apt")).expect("mkdir");
        std::fs::write(root.join("syslog"), "hello\n").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("leak"))
            .expect("symlink");

        let listing = serve(&root, "").await.expect("listing");
        assert_eq!(listing.status(), StatusCode::OK);
        let html = body(listing).await;
        assert!(html.contains("href=\"apt/\""), "{html}");
        assert!(html.contains("href=\"syslog\""), "{html}");

        let file = serve(&root, "syslog").await.expect("file");
        assert_eq!(file.status(), StatusCode::OK);
        assert_eq!(body(file).await, "hello\n");

        let redirect = serve(&root, "apt").await.expect("redirect");
        assert_eq!(redirect.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(redirect.headers()[header::LOCATION], "apt/");

        assert_eq!(
            serve(&root, "leak").await.err(),
            Some(NodeLogsError::NotFound)
        );
        assert!(matches!(
            serve(&root, "../secret").await,
            Err(NodeLogsError::Invalid(_))
        ));
        assert_eq!(
            serve(&root, "missing").await.err(),
            Some(NodeLogsError::NotFound)
        );
        assert_eq!(
            serve(&root, "syslog/").await.err(),
            Some(NodeLogsError::NotFound)
        );
    }
}

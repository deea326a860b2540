//! `GET /containerLogs/{namespace}/{pod}/{container}`: a container's log, as the kubelet
//! serves it to the API server for `kubectl logs`.
//!
//! The container is found by the labels the agent puts on every container (pod namespace and
//! name, container name, restart count), so a restarted agent serves the logs of containers it
//! adopted; its output is read from its log file ([`crate::kubelet::logs`]). Query parameters are the kubelet's (`PodLogOptions`): `follow`, `previous`,
//! `timestamps`, `tailLines`, `sinceSeconds`, `sinceTime`, `limitBytes`.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, stream};
use tracing::{debug, warn};

use super::ServerState;
use crate::kubelet::logs::{ReadOptions, read_logs};
use crate::runtime::{
    ContainerInfo, ContainerKind, ContainerPhase, ContainerRuntime, RuntimeError, by_name,
};

/// What a log request asks for, read from its query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRequest {
    /// The file's part: follow, tail, timestamps, since.
    pub options: ReadOptions,
    /// The instance before the current one (the last terminated container).
    pub previous: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

/// Why a log request is answered with an error (plain text, as the kubelet answers).
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// 400: a query parameter is malformed, or the wanted instance does not exist.
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such pod or container on this node.
    #[error("{0}")]
    NotFound(String),
    /// 500/503: Docker failed.
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
}

impl IntoResponse for LogsError {
    fn into_response(self) -> Response {
        let code = match &self {
            LogsError::BadRequest(_) => StatusCode::BAD_REQUEST,
            LogsError::NotFound(_) => StatusCode::NOT_FOUND,
            LogsError::Runtime(RuntimeError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            LogsError::Runtime(RuntimeError::NotFound(_)) => StatusCode::NOT_FOUND,
            LogsError::Runtime(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        text_response(code, Body::from(self.to_string()))
    }
}

/// The handler: finds the container and streams its log.
pub(super) async fn container_logs<R: ContainerRuntime>(
    State(state): State<ServerState<R>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, LogsError> {
    let request = LogRequest::parse(&query, Utc::now())?;
    let found = find_container(
        state.runtime.as_ref(),
        &namespace,
        &pod,
        &container,
        request.previous,
    )
    .await?;
    if found.phase == ContainerPhase::Created {
        return Err(LogsError::BadRequest(format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
        )));
    }
    // Started here if not yet (e.g. asked for right after the container started).
    state.logs.ensure(&found);
    let path = state.logs.path(&found.pod, &found.name, found.attempt);
    let id = found.id;
    debug!(%namespace, %pod, %container, %id, ?request, "serving container logs");
    let progress = state.logs.subscribe(&id);
    let logs = read_logs(path, request.options, progress).map(move |chunk| {
        // Headers are out: a failure can only end the body early, so say it here.
        chunk.inspect_err(|err| warn!(container = %id, "reading container logs: {err}"))
    });
    Ok(text_response(
        StatusCode::OK,
        Body::from_stream(limit_bytes(logs, request.limit_bytes)),
    ))
}

impl LogRequest {
    /// Reads the query parameters; `now` anchors `sinceSeconds`.
    pub fn parse(
        query: &HashMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<LogRequest, LogsError> {
        let flag = |name: &str| {
            query
                .get(name)
                .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True"))
        };
        let number = |name: &str, min: u64| -> Result<Option<u64>, LogsError> {
            match query.get(name).map(String::as_str) {
                None | Some("") => Ok(None),
                Some(text) => match text.parse::<u64>() {
                    Ok(n) if n >= min => Ok(Some(n)),
                    _ => Err(LogsError::BadRequest(format!(
                        "{name}: invalid value {text:?}: must be an integer of at least {min}"
                    ))),
                },
            }
        };
        let since_seconds = number("sinceSeconds", 1)?;
        let since_time = match query.get("sinceTime").map(String::as_str) {
            None | Some("") => None,
            Some(text) => Some(
                DateTime::parse_from_rfc3339(text)
                    .map_err(|err| {
                        LogsError::BadRequest(format!("sinceTime: invalid time {text:?}: {err}"))
                    })?
                    .with_timezone(&Utc),
            ),
        };
        let since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err(LogsError::BadRequest(String::from(
                    "at most one of `sinceTime` or `sinceSeconds` may be specified",
                )));
            }
            // Further back than time goes: everything.
            (Some(seconds), None) => Some(
                i64::try_from(seconds)
                    .ok()
                    .and_then(chrono::TimeDelta::try_seconds)
                    .and_then(|back| now.checked_sub_signed(back))
                    .unwrap_or(DateTime::UNIX_EPOCH),
            ),
            (None, time) => time,
        };
        Ok(LogRequest {
            options: ReadOptions {
                follow: flag("follow"),
                tail_lines: number("tailLines", 0)?,
                timestamps: flag("timestamps"),
                since,
            },
            previous: flag("previous"),
            limit_bytes: number("limitBytes", 1)?,
        })
    }
}

/// Container `container` of pod `namespace/pod`: its newest instance, or the one before with
/// The containers of pod `namespace/pod` on this node (sandbox included). A pod deleted and
/// made again under the same name may leave containers for a moment: the newest uid is the
/// pod that exists.
pub async fn pod_containers<R: ContainerRuntime>(
    runtime: &R,
    namespace: &str,
    pod: &str,
) -> Result<Vec<ContainerInfo>, LogsError> {
    let all = runtime.list_pod_containers(None).await?;
    let of_pod: Vec<_> = all
        .into_iter()
        .filter(|c| c.pod.namespace == namespace && c.pod.name == pod)
        .collect();
    let Some(uid) = of_pod
        .iter()
        .max_by_key(|c| c.created)
        .map(|c| c.pod.uid.clone())
    else {
        return Err(LogsError::NotFound(format!(
            "pod \"{namespace}/{pod}\" does not exist on this node"
        )));
    };
    Ok(of_pod.into_iter().filter(|c| c.pod.uid == uid).collect())
}

/// `previous`.
pub async fn find_container<R: ContainerRuntime>(
    runtime: &R,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<ContainerInfo, LogsError> {
    let of_pod = pod_containers(runtime, namespace, pod).await?;
    let groups = by_name(&of_pod);
    let instances = groups
        .iter()
        .find(|((kind, name), _)| *kind != ContainerKind::Sandbox && name == container)
        .map(|(_, instances)| instances)
        .ok_or_else(|| {
            LogsError::NotFound(format!(
                "container \"{container}\" not found in pod \"{namespace}/{pod}\" on this node (not in the pod, or not created yet)"
            ))
        })?;
    let wanted = if previous {
        instances.get(1).ok_or_else(|| {
            LogsError::BadRequest(format!(
                "previous terminated container \"{container}\" in pod \"{pod}\" not found"
            ))
        })?
    } else {
        instances.first().ok_or_else(|| {
            LogsError::NotFound(format!(
                "container \"{container}\" not found in pod \"{namespace}/{pod}\""
            ))
        })?
    };
    Ok((*wanted).clone())
}

/// `stream` cut off after `limit` bytes (all of it for `None`); ends without waiting for more
/// once the limit is reached (a followed log would otherwise hold the request open).
pub fn limit_bytes<S, E>(stream: S, limit: Option<u64>) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    stream::unfold((Box::pin(stream), limit), |(mut stream, left)| async move {
        if left == Some(0) {
            return None;
        }
        let chunk = stream.next().await?;
        let (chunk, left) = match (chunk, left) {
            (Ok(mut bytes), Some(left)) => {
                let keep = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                bytes.truncate(keep);
                (Ok(bytes), Some(left - keep as u64))
            }
            (chunk, left) => (chunk, left),
        };
        Some((chunk, (stream, left)))
    })
}

fn text_response(code: StatusCode, body: Body) -> Response {
    let mut response = (code, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_the_kubelets_query_parameters() {
        let now = Utc::now();
        let request = LogRequest::parse(
            &query(&[
                ("follow", "true"),
                ("tailLines", "1"),
                ("timestamps", "true"),
                ("previous", "true"),
                ("sinceSeconds", "30"),
                ("limitBytes", "100"),
            ]),
            now,
        )
        .expect("parses");
        assert_eq!(
            request,
            LogRequest {
                options: ReadOptions {
                    follow: true,
                    tail_lines: Some(1),
                    timestamps: true,
                    since: Some(now - chrono::Duration::seconds(30)),
                },
                previous: true,
                limit_bytes: Some(100),
            }
        );
        assert_eq!(
            LogRequest::parse(&query(&[]), now).expect("parses"),
            LogRequest::default()
        );
        let forever = LogRequest::parse(&query(&[("sinceSeconds", "18446744073709551615")]), now)
            .expect("parses");
        assert_eq!(forever.options.since, Some(DateTime::UNIX_EPOCH));
    }

    #[test]
    fn rejects_malformed_parameters() {
        let now = Utc::now();
        for bad in [
            query(&[("tailLines", "-1")]),
            query(&[("tailLines", "x")]),
            query(&[("limitBytes", "0")]),
            query(&[("sinceSeconds", "0")]),
            query(&[("sinceTime", "yesterday")]),
            query(&[("sinceSeconds", "5"), ("sinceTime", "2024-05-01T10:00:00Z")]),
        ] {
            assert!(
                matches!(LogRequest::parse(&bad, now), Err(LogsError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn limit_bytes_cuts_the_stream_and_stops_reading() {
        let chunks = stream::iter([
            Ok::<_, ()>(Bytes::from_static(b"hello\n")),
            Ok(Bytes::from_static(b"world\n")),
        ])
        // A followed log: nothing more ever comes.
        .chain(stream::pending());
        let out: Vec<_> = limit_bytes(chunks, Some(8)).collect().await;
        assert_eq!(
            out,
            vec![
                Ok(Bytes::from_static(b"hello\n")),
                Ok(Bytes::from_static(b"wo"))
            ]
        );
        let all: Vec<_> = limit_bytes(
            stream::iter([Ok::<_, ()>(Bytes::from_static(b"abc"))]),
            None,
        )
        .collect()
        .await;
        assert_eq!(all, vec![Ok(Bytes::from_static(b"abc"))]);
    }
}

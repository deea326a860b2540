//! Read a container's logs (stdout and stderr, interleaved as Docker stored them), once or
//! following new output until the container stops.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use bytes::Bytes;
use futures::{Stream, StreamExt, stream};

use super::{DockerRuntime, LogOptions, RuntimeError};

/// The log stream of container `id`: chunks of output as Docker sends them. With
/// `options.follow` it ends when the container stops (or the caller drops it).
pub(super) fn container_logs(
    runtime: &DockerRuntime,
    id: &str,
    options: &LogOptions,
) -> impl Stream<Item = Result<Bytes, RuntimeError>> + Send + 'static {
    let docker_options = LogsOptions {
        follow: options.follow,
        stdout: true,
        stderr: true,
        // Docker's `since` is whole Unix seconds; 0 means "from the start".
        since: options.since.map_or(0, |t| {
            i32::try_from(t.timestamp().max(0)).unwrap_or(i32::MAX)
        }),
        until: 0,
        timestamps: options.timestamps,
        tail: options
            .tail_lines
            .map_or_else(|| String::from("all"), |n| n.to_string()),
    };
    let runtime = runtime.clone();
    let id = id.to_owned();
    // Connect first (an async step); the stream then owns the client.
    let connect = async move {
        match runtime.client().await {
            Ok(docker) => docker
                .logs(&id, Some(docker_options))
                .map(move |chunk| match chunk {
                    Ok(
                        LogOutput::StdOut { message }
                        | LogOutput::StdErr { message }
                        | LogOutput::Console { message }
                        | LogOutput::StdIn { message },
                    ) => Ok(message),
                    Err(err) => Err(runtime.error(err)),
                })
                .boxed(),
            Err(err) => stream::once(async move { Err(err) }).boxed(),
        }
    };
    stream::once(connect).flatten()
}

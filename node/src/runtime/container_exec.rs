//! Run a command in a running container (`kubectl exec`, exec probes): Docker's exec, attached
//! to the command's input and output, its exit code read once the output ends. And attach to
//! a container's main process (`kubectl attach`).

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{AttachContainerOptions, ResizeContainerTTYOptions};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use super::{DockerRuntime, ExecSession, ExecSpec, LogStream, RuntimeError};

/// Starts `spec` in container `id`.
pub(super) async fn exec(
    runtime: &DockerRuntime,
    id: &str,
    spec: &ExecSpec,
) -> Result<ExecSession, RuntimeError> {
    if spec.command.is_empty() {
        return Err(RuntimeError::Rejected(String::from("no command to run")));
    }
    let client = runtime.client().await?;
    let options = CreateExecOptions {
        attach_stdin: Some(spec.stdin),
        attach_stdout: Some(spec.stdout),
        attach_stderr: Some(spec.stderr),
        tty: Some(spec.tty),
        cmd: Some(spec.command.clone()),
        ..Default::default()
    };
    let created = client
        .create_exec(id, options)
        .await
        .map_err(|err| runtime.error(err))?;
    let start = StartExecOptions {
        detach: false,
        tty: spec.tty,
        output_capacity: None,
    };
    match client
        .start_exec(&created.id, Some(start))
        .await
        .map_err(|err| runtime.error(err))?
    {
        StartExecResults::Attached { output, input } => Ok(ExecSession {
            id: created.id,
            output: streams(runtime, output),
            input,
        }),
        StartExecResults::Detached => Err(RuntimeError::Unexpected(String::from(
            "Docker detached an attached exec",
        ))),
    }
}

/// Docker's output as (stream, bytes); a TTY's output counts as stdout.
fn streams(
    runtime: &DockerRuntime,
    output: impl Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send + 'static,
) -> BoxStream<'static, Result<(LogStream, bytes::Bytes), RuntimeError>> {
    let runtime = runtime.clone();
    output
        .map(move |chunk| match chunk {
            Ok(LogOutput::StdErr { message }) => Ok((LogStream::Stderr, message)),
            Ok(
                LogOutput::StdOut { message }
                | LogOutput::Console { message }
                | LogOutput::StdIn { message },
            ) => Ok((LogStream::Stdout, message)),
            Err(err) => Err(runtime.error(err)),
        })
        .boxed()
}

/// Attaches to container `id`'s main process.
pub(super) async fn attach(
    runtime: &DockerRuntime,
    id: &str,
    spec: &ExecSpec,
) -> Result<ExecSession, RuntimeError> {
    let client = runtime.client().await?;
    let options = AttachContainerOptions {
        detach_keys: None,
        logs: false,
        stream: true,
        stdin: spec.stdin,
        stdout: spec.stdout,
        stderr: spec.stderr,
    };
    let attached = client
        .attach_container(id, Some(options))
        .await
        .map_err(|err| runtime.error(err))?;
    Ok(ExecSession {
        id: id.to_owned(),
        output: streams(runtime, attached.output),
        input: attached.input,
    })
}

/// Sets the terminal size of container `id`.
pub(super) async fn resize_container(
    runtime: &DockerRuntime,
    id: &str,
    width: u16,
    height: u16,
) -> Result<(), RuntimeError> {
    let client = runtime.client().await?;
    let options = ResizeContainerTTYOptions {
        h: i32::from(height),
        w: i32::from(width),
    };
    client
        .resize_container_tty(id, options)
        .await
        .map_err(|err| runtime.error(err))
}

/// The exit code of exec `exec_id`, once it has ended.
pub(super) async fn exit_code(
    runtime: &DockerRuntime,
    exec_id: &str,
) -> Result<Option<i64>, RuntimeError> {
    let client = runtime.client().await?;
    let inspected = client
        .inspect_exec(exec_id)
        .await
        .map_err(|err| runtime.error(err))?;
    if inspected.running == Some(true) {
        return Ok(None);
    }
    Ok(inspected.exit_code)
}

/// Sets the terminal size of exec `exec_id`.
pub(super) async fn resize(
    runtime: &DockerRuntime,
    exec_id: &str,
    width: u16,
    height: u16,
) -> Result<(), RuntimeError> {
    let client = runtime.client().await?;
    client
        .resize_exec(exec_id, ResizeExecOptions { height, width })
        .await
        .map_err(|err| runtime.error(err))
}

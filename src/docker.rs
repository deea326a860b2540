//! Docker for the end-to-end tests, through bollard: [`ensure_dockerd`] starts the daemon when
//! it is not running (CI machines start without one), [`remove_node_containers`] cleans up
//! after a node agent, and [`node_containers`] / [`inspect_container`] let tests look at what
//! an agent made.
//!
//! dockerd is the machine's daemon, shared by every test process: it is started detached and
//! left running, logging to `<repo>/.skiff/dockerd.log` (see [`skiff_tooling::dockerd`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
};
use skiff_tooling::dockerd;

/// How long one Docker request may take.
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// The label the node agent puts on every container it makes (`io.skiff.node=<node>`).
const NODE_LABEL: &str = "io.skiff.node";

/// The label with the pod's name on each of its containers.
const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";

/// dockerd's log when the harness started it.
pub fn dockerd_log_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".skiff")
        .join("dockerd.log")
}

/// Makes sure dockerd runs and answers: returns at once if it does, else starts it (once,
/// even with several test processes at a time) and waits up to 60 s. Blocking.
pub fn ensure_dockerd() -> anyhow::Result<()> {
    dockerd::ensure(&dockerd_log_path()).map(|_| ())
}

/// Force-removes every container of node agent `node` and its pod network `skiff-<node>`
/// (what a test leaves behind). Errors are returned, containers already gone are fine.
/// Blocking.
pub fn remove_node_containers(node: &str) -> anyhow::Result<()> {
    crate::block_on(async {
        let docker = connect().await?;
        for id in list(&docker, node, None).await? {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            match docker.remove_container(&id, Some(options)).await {
                // Gone already, or being removed by the agent right now.
                Ok(())
                | Err(DockerError::DockerResponseServerError {
                    status_code: 404 | 409,
                    ..
                }) => {}
                Err(err) => return Err(err).context(format!("removing container {id}")),
            }
        }
        let network = format!("skiff-{node}");
        match docker.remove_network(&network).await {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(err) => Err(err).context(format!("removing network {network}")),
        }
    })
}

/// The ids of the running and stopped containers of node agent `node`, optionally of one pod
/// (by name). Blocking.
pub fn node_containers(node: &str, pod: Option<&str>) -> anyhow::Result<Vec<String>> {
    crate::block_on(async { list(&connect().await?, node, pod).await })
}

/// `docker inspect` of one container. Blocking.
pub fn inspect_container(id: &str) -> anyhow::Result<ContainerInspectResponse> {
    crate::block_on(async {
        connect()
            .await?
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .with_context(|| format!("inspecting container {id}"))
    })
}

/// A client on the local socket, at the API version the daemon speaks (Debian's is older
/// than bollard's default).
async fn connect() -> anyhow::Result<Docker> {
    let docker = Docker::connect_with_socket(
        dockerd::SOCKET,
        REQUEST_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )
    .context("connecting to Docker")?;
    docker
        .negotiate_version()
        .await
        .context("negotiating Docker's API version")
}

/// The container ids labelled with node `node` and, if given, pod name `pod`.
async fn list(docker: &Docker, node: &str, pod: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut labels = vec![format!("{NODE_LABEL}={node}")];
    if let Some(pod) = pod {
        labels.push(format!("{POD_NAME_LABEL}={pod}"));
    }
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(String::from("label"), labels)])),
        ..Default::default()
    };
    let listed = docker
        .list_containers(Some(options))
        .await
        .with_context(|| format!("listing the containers of node {node}"))?;
    if listed.iter().any(|c| c.id.is_none()) {
        bail!("Docker listed a container without an id");
    }
    Ok(listed.into_iter().filter_map(|c| c.id).collect())
}

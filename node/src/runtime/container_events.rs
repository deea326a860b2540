//! Docker's event stream, narrowed to the containers of this node: how the kubelet learns at
//! once that a container died, instead of polling.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptions;
use futures::{Stream, StreamExt, stream};

use super::{ContainerEvent, DockerRuntime, RuntimeError, labels};

/// Container actions that can change a pod's state.
const ACTIONS: &[&str] = &["start", "die", "oom", "destroy", "kill", "stop"];

/// The stream of container events of this node; ends (after an error item) when the
/// connection to Docker does.
pub(super) fn container_events(
    runtime: &DockerRuntime,
) -> impl Stream<Item = Result<ContainerEvent, RuntimeError>> + Send + 'static {
    let filters = HashMap::from([
        (String::from("type"), vec![String::from("container")]),
        (
            String::from("label"),
            vec![format!("{}={}", labels::NODE, runtime.node())],
        ),
        (
            String::from("event"),
            ACTIONS.iter().map(|a| (*a).to_owned()).collect(),
        ),
    ]);
    let runtime = runtime.clone();
    // The client is connected (an async step) before the stream starts; the stream then owns it.
    let connect = async move {
        match runtime.client().await {
            Ok(docker) => {
                let options = EventsOptions {
                    filters: Some(filters),
                    ..Default::default()
                };
                docker
                    .events(Some(options))
                    .map(move |event| {
                        // A broken connection drops the client, as after any other call.
                        let event = event.map_err(|err| runtime.error(err))?;
                        let actor = event.actor.unwrap_or_default();
                        let attributes = actor.attributes.unwrap_or_default();
                        Ok(ContainerEvent {
                            pod_uid: attributes.get(labels::POD_UID).cloned().unwrap_or_default(),
                            container_id: actor.id.unwrap_or_default(),
                            action: event.action.unwrap_or_default(),
                        })
                    })
                    .boxed()
            }
            Err(err) => stream::once(async move { Err(err) }).boxed(),
        }
    };
    stream::once(connect).flatten()
}

//! The root CA certificate publisher: every active namespace has the ConfigMap
//! `kube-root-ca.crt` whose `ca.crt` is the cluster CA, so that pods can verify the API
//! server (kube-controller-manager's `root-ca-cert-publisher`, `rootcacertpublisher/publisher.go`).
//!
//! As there: a namespace is reconciled when it is created or changes and when its
//! `kube-root-ca.crt` changes or is deleted; the reconcile creates the ConfigMap if it is
//! missing and puts back its data (exactly `ca.crt`) and its `kubernetes.io/description`
//! annotation if someone changed them, keeping any other labels and annotations. Unlike there,
//! nothing is created in a namespace that is not `Active`: the publisher there relies on the
//! API server refusing creates in a terminating namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::{info, warn};

use super::informers::{Informers, synced};
use super::service_account::is_active;

/// The ConfigMap's name in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// Its data key holding the CA bundle (PEM).
pub const CA_KEY: &str = "ca.crt";
/// The annotation that says what the ConfigMap is.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Kubernetes' words for it.
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the \
    kube-apiserver when using internal endpoints such as the internal service IP or \
    kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes \
    clusters.";

/// What a reconcile can fail with (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// The controller on the shared informers, publishing `root_ca` (the cluster CA, PEM); it
/// runs until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    root_ca: String,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let namespaces = informers.namespaces.reader();
    let namespace_changes = informers.namespaces.subscribe();
    let config_maps = informers.config_maps.reader();
    let config_map_changes = informers.config_maps.subscribe();
    let context = Arc::new(Context {
        client,
        config_maps,
        root_ca,
    });
    async move {
        info!("root CA certificate publisher started");
        let results = Controller::for_shared_stream(namespace_changes, namespaces)
            // Only the published ConfigMap concerns its namespace.
            .watches_shared_stream(config_map_changes, |cm: Arc<ConfigMap>| {
                (cm.metadata.name.as_deref() == Some(ROOT_CA_CONFIG_MAP))
                    .then(|| cm.namespace())
                    .flatten()
                    .map(|ns| ObjectRef::<Namespace>::new(&ns))
            })
            .run(reconcile, error_policy, context);
        super::drive("root-ca-cert-publisher", results, shutdown).await;
    }
}

struct Context {
    client: kube::Client,
    config_maps: Store<ConfigMap>,
    root_ca: String,
}

fn error_policy(namespace: Arc<Namespace>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(namespace = %namespace.name_any(), "publishing {ROOT_CA_CONFIG_MAP}: {err}");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(namespace: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !synced(&ctx.config_maps).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let name = namespace.name_any();
    let current = ctx
        .config_maps
        .get(&ObjectRef::new(ROOT_CA_CONFIG_MAP).within(&name));
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    match publish(&namespace, current.as_deref(), &ctx.root_ca) {
        Publish::Nothing => {}
        Publish::Create(cm) => match api.create(&PostParams::default(), &cm).await {
            Ok(_) => info!(namespace = %name, "published {ROOT_CA_CONFIG_MAP}"),
            // Already there (the cache was behind: its change brings us back), or the
            // namespace is gone or terminating.
            Err(kube::Error::Api(e)) if matches!(e.code, 403 | 404 | 409) => {}
            Err(e) => return Err(e.into()),
        },
        // Replaced at the cached resourceVersion: a conflict is retried on fresher data.
        Publish::Update(cm) => match api
            .replace(ROOT_CA_CONFIG_MAP, &PostParams::default(), &cm)
            .await
        {
            Ok(_) => info!(namespace = %name, "restored {ROOT_CA_CONFIG_MAP}"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        },
    }
    Ok(Action::await_change())
}

/// What the publisher does in one namespace.
#[derive(Debug, PartialEq)]
enum Publish {
    /// The ConfigMap is as it should be, or the namespace is terminating.
    Nothing,
    /// Create this ConfigMap.
    Create(ConfigMap),
    /// Replace the ConfigMap with this one.
    Update(ConfigMap),
}

/// The publisher's decision for `namespace`, whose `kube-root-ca.crt` is `current`.
fn publish(namespace: &Namespace, current: Option<&ConfigMap>, root_ca: &str) -> Publish {
    let data = BTreeMap::from([(CA_KEY.to_string(), root_ca.to_string())]);
    let Some(current) = current else {
        if !is_active(namespace) {
            return Publish::Nothing;
        }
        return Publish::Create(ConfigMap {
            metadata: ObjectMeta {
                name: Some(ROOT_CA_CONFIG_MAP.to_string()),
                namespace: namespace.metadata.name.clone(),
                annotations: Some(BTreeMap::from([(
                    DESCRIPTION_ANNOTATION.to_string(),
                    DESCRIPTION.to_string(),
                )])),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        });
    };
    let described = current
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .is_some_and(|d| !d.is_empty());
    if current.data.as_ref() == Some(&data) && described {
        return Publish::Nothing;
    }
    let mut updated = current.clone();
    updated.data = Some(data);
    updated
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.to_string(), DESCRIPTION.to_string());
    Publish::Update(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn namespace(phase: &str) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": "team-a"}, "status": {"phase": phase}}))
            .expect("namespace")
    }

    fn published() -> ConfigMap {
        match publish(&namespace("Active"), None, CA) {
            Publish::Create(cm) => cm,
            other => panic!("expected a create, got {other:?}"),
        }
    }

    #[test]
    fn a_new_namespace_gets_the_ca_with_its_description() {
        let cm = published();
        assert_eq!(cm.metadata.name.as_deref(), Some("kube-root-ca.crt"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(
            cm.data,
            Some(BTreeMap::from([("ca.crt".to_string(), CA.to_string())]))
        );
        let annotations = cm.metadata.annotations.expect("annotations");
        assert!(annotations["kubernetes.io/description"].starts_with("Contains a CA bundle"));
    }

    #[test]
    fn a_published_config_map_is_left_alone() {
        let mut current = published();
        current.metadata.resource_version = Some("7".into());
        // Labels and other annotations are the user's.
        current.metadata.labels = Some(BTreeMap::from([("team".into(), "a".into())]));
        assert_eq!(
            publish(&namespace("Active"), Some(&current), CA),
            Publish::Nothing
        );
    }

    #[test]
    fn changed_data_and_a_missing_description_are_put_back() {
        let mut current = published();
        current.metadata.resource_version = Some("7".into());
        current.metadata.annotations = Some(BTreeMap::from([("mine".into(), "x".into())]));
        current.data = Some(BTreeMap::from([
            ("ca.crt".to_string(), "forged".to_string()),
            ("extra".to_string(), "x".to_string()),
        ]));
        let Publish::Update(updated) = publish(&namespace("Active"), Some(&current), CA) else {
            panic!("expected an update");
        };
        // Exactly `ca.crt`, at the resourceVersion it was read at.
        assert_eq!(updated.data, published().data);
        assert_eq!(updated.metadata.resource_version.as_deref(), Some("7"));
        let annotations = updated.metadata.annotations.expect("annotations");
        assert_eq!(annotations["mine"], "x");
        assert_eq!(annotations["kubernetes.io/description"], DESCRIPTION);
        // An empty description counts as missing.
        let mut blank = published();
        blank
            .metadata
            .annotations
            .as_mut()
            .expect("annotations")
            .insert(DESCRIPTION_ANNOTATION.into(), String::new());
        assert!(matches!(
            publish(&namespace("Active"), Some(&blank), CA),
            Publish::Update(_)
        ));
    }

    #[test]
    fn nothing_is_created_in_a_terminating_namespace() {
        assert_eq!(
            publish(&namespace("Terminating"), None, CA),
            Publish::Nothing
        );
    }
}

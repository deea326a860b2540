//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount, the
//! one a pod without `serviceAccountName` runs as.
//!
//! As kube-controller-manager's `serviceaccount` controller (`serviceaccounts_controller.go`)
//! does: a namespace is reconciled when it is created or changes and when one of its
//! ServiceAccounts is deleted; the reconcile creates `default` if the cache has none. Nothing
//! is created in a namespace that is not `Active` (terminating), and a create refused because
//! the namespace is gone or terminating, or answered by AlreadyExists, is not retried.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::{info, warn};

use super::informers::{Informers, synced};

/// The ServiceAccounts every namespace gets (kube-controller-manager's
/// `serviceAccountsToEnsure`).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// What a reconcile can fail with (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// The controller on the shared informers; it runs until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let namespaces = informers.namespaces.reader();
    let namespace_changes = informers.namespaces.subscribe();
    let service_accounts = informers.service_accounts.reader();
    let service_account_changes = informers.service_accounts.subscribe();
    let context = Arc::new(Context {
        client,
        service_accounts,
    });
    async move {
        info!("serviceaccount controller started");
        let results = Controller::for_shared_stream(namespace_changes, namespaces)
            // A changed (above all, deleted) ServiceAccount concerns its namespace.
            .watches_shared_stream(service_account_changes, |sa: Arc<ServiceAccount>| {
                sa.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns))
            })
            .run(reconcile, error_policy, context);
        super::drive("serviceaccount", results, shutdown).await;
    }
}

struct Context {
    client: kube::Client,
    service_accounts: Store<ServiceAccount>,
}

fn error_policy(namespace: Arc<Namespace>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(namespace = %namespace.name_any(), "ensuring the default ServiceAccount: {err}");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(namespace: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !synced(&ctx.service_accounts).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let name = namespace.name_any();
    let missing = missing(&namespace, |sa| {
        ctx.service_accounts
            .get(&ObjectRef::new(sa).within(&name))
            .is_some()
    });
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    for sa in missing {
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => info!(namespace = %name, name = %sa.name_any(), "created ServiceAccount"),
            // Already there (the cache was behind), or the namespace is gone or terminating.
            Err(kube::Error::Api(e)) if matches!(e.code, 403 | 404 | 409) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}

/// Whether objects may be created in `namespace`: it is `Active` (not being deleted).
pub fn is_active(namespace: &Namespace) -> bool {
    let phase = namespace.status.as_ref().and_then(|s| s.phase.as_deref());
    namespace.metadata.deletion_timestamp.is_none() && matches!(phase, None | Some("Active"))
}

/// The ServiceAccounts to create in `namespace`, given which names it has (`exists`):
/// `default` if it is missing and the namespace is active.
fn missing(namespace: &Namespace, exists: impl Fn(&str) -> bool) -> Vec<ServiceAccount> {
    if !is_active(namespace) || exists(DEFAULT_SERVICE_ACCOUNT) {
        return Vec::new();
    }
    vec![ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT_SERVICE_ACCOUNT.to_string()),
            namespace: namespace.metadata.name.clone(),
            ..Default::default()
        },
        ..Default::default()
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn namespace(value: serde_json::Value) -> Namespace {
        serde_json::from_value(value).expect("namespace")
    }

    #[test]
    fn an_active_namespace_without_default_gets_it() {
        let ns = namespace(json!({"metadata": {"name": "team-a"}, "status": {"phase": "Active"}}));
        let created = missing(&ns, |_| false);
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].metadata.name.as_deref(), Some("default"));
        assert_eq!(created[0].metadata.namespace.as_deref(), Some("team-a"));
        // Nothing else is set: the API server defaults the rest.
        assert_eq!(created[0].secrets, None);
        assert_eq!(created[0].automount_service_account_token, None);
        // A namespace without status yet counts as active.
        assert_eq!(
            missing(&namespace(json!({"metadata": {"name": "b"}})), |_| false).len(),
            1
        );
    }

    #[test]
    fn an_existing_default_is_left_alone() {
        let ns = namespace(json!({"metadata": {"name": "team-a"}, "status": {"phase": "Active"}}));
        assert!(missing(&ns, |name| name == "default").is_empty());
        // Other ServiceAccounts do not count.
        assert_eq!(missing(&ns, |name| name == "builder").len(), 1);
    }

    #[test]
    fn nothing_is_created_in_a_terminating_namespace() {
        let terminating =
            namespace(json!({"metadata": {"name": "a"}, "status": {"phase": "Terminating"}}));
        assert!(!is_active(&terminating));
        assert!(missing(&terminating, |_| false).is_empty());
        let deleted = namespace(json!({"metadata": {"name": "a",
            "deletionTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Active"}}));
        assert!(!is_active(&deleted));
        assert!(missing(&deleted, |_| false).is_empty());
    }
}

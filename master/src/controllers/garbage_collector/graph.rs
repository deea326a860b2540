//! The graph of owners and dependents (Kubernetes' `graph.go`): what the collector keeps
//! of each watched object, and which objects name which owners.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use skiff_api::meta::FINALIZER_DELETE_DEPENDENTS;

/// What the collector keeps of one object.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Item {
    /// Index into the monitored kinds.
    pub(super) kind: usize,
    pub(super) namespace: Option<String>,
    pub(super) name: String,
    pub(super) uid: String,
    pub(super) owners: Vec<OwnerReference>,
    /// `metadata.deletionTimestamp` is set.
    pub(super) deleting: bool,
    pub(super) finalizers: Vec<String>,
}

impl Item {
    pub(super) fn from_meta(kind: usize, meta: &ObjectMeta) -> Option<Self> {
        Some(Self {
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        })
    }

    pub(super) fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Being deleted in the foreground: waiting until its dependents are gone.
    pub(super) fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FINALIZER_DELETE_DEPENDENTS)
    }

    /// Whether `owner` (the object an owner reference of `self` points to) may own `self`: a
    /// namespaced owner must be in the dependent's namespace, and a cluster-scoped object
    /// cannot have a namespaced owner.
    pub(super) fn may_be_owned_by(&self, owner: &Item, owner_namespaced: bool) -> bool {
        !owner_namespaced || (self.namespace.is_some() && owner.namespace == self.namespace)
    }
}

/// The owner/dependent graph of every watched object, by uid.
#[derive(Debug, Default)]
pub(super) struct Graph {
    pub(super) items: HashMap<String, Item>,
    /// Owner uid -> uids of the objects that name it (whether the owner exists or not).
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Records `item` as it is now. Returns the uids whose sync this may change: the item
    /// itself, owners it stopped naming (one may be waiting for it), and, when it is being
    /// deleted in the foreground, its dependents.
    pub(super) fn apply(&mut self, item: Item) -> Vec<String> {
        // An update that changes nothing the collector keeps (a Lease renewal, a status
        // write) changes no decision, as in Kubernetes' graph builder.
        if self.items.get(&item.uid) == Some(&item) {
            return Vec::new();
        }
        let uid = item.uid.clone();
        let new_owners: BTreeSet<String> = item.owners.iter().map(|o| o.uid.clone()).collect();
        let old_owners: BTreeSet<String> = self
            .items
            .get(&uid)
            .map(|old| old.owners.iter().map(|o| o.uid.clone()).collect())
            .unwrap_or_default();
        let mut touched = vec![uid.clone()];
        for gone in old_owners.difference(&new_owners) {
            self.unlink(gone, &uid);
            touched.push(gone.clone());
        }
        for owner in new_owners.difference(&old_owners) {
            self.dependents
                .entry(owner.clone())
                .or_default()
                .insert(uid.clone());
        }
        if item.deleting_dependents() {
            touched.extend(self.dependents.get(&uid).into_iter().flatten().cloned());
        }
        self.items.insert(uid, item);
        touched
    }

    /// Forgets the object `uid`. Returns the uids whose sync this may change: its owners (one
    /// may be waiting for it) and its dependents (their owner is gone).
    pub(super) fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(old) = self.items.remove(uid) else {
            return Vec::new();
        };
        let mut touched = Vec::new();
        for owner in &old.owners {
            self.unlink(&owner.uid, uid);
            touched.push(owner.uid.clone());
        }
        touched.extend(self.dependents.get(uid).into_iter().flatten().cloned());
        touched
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }

    /// The objects whose owner references name `owner` (and that it may own).
    pub(super) fn dependents_of<'a>(
        &'a self,
        owner: &'a Item,
        owner_namespaced: bool,
    ) -> impl Iterator<Item = &'a Item> + 'a {
        self.dependents
            .get(&owner.uid)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.items.get(uid))
            .filter(move |d| d.may_be_owned_by(owner, owner_namespaced))
    }

    pub(super) fn has_dependents(&self, uid: &str) -> bool {
        self.dependents.get(uid).is_some_and(|d| !d.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner_ref(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("cm-{uid}"),
            uid: uid.into(),
            block_owner_deletion: block.then_some(true),
            controller: None,
        }
    }

    fn item(uid: &str, owners: Vec<OwnerReference>) -> Item {
        Item {
            kind: 0,
            namespace: Some("default".into()),
            name: format!("obj-{uid}"),
            uid: uid.into(),
            owners,
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    fn sorted(mut uids: Vec<String>) -> Vec<String> {
        uids.sort();
        uids.dedup();
        uids
    }

    #[test]
    fn the_graph_queues_what_a_change_affects() {
        let mut graph = Graph::default();
        assert_eq!(
            graph.apply(item("owner", vec![])),
            vec!["owner".to_string()]
        );
        assert_eq!(
            graph.apply(item("pod1", vec![owner_ref("owner", true)])),
            vec!["pod1".to_string()]
        );
        graph.apply(item("pod2", vec![owner_ref("owner", false)]));
        // An update that changes neither owners nor deletion (a status write) queues nothing.
        assert_eq!(
            graph.apply(item("pod2", vec![owner_ref("owner", false)])),
            Vec::<String>::new()
        );
        let owner = graph.items["owner"].clone();
        let deps: Vec<&str> = graph
            .dependents_of(&owner, true)
            .map(|d| d.uid.as_str())
            .collect();
        assert_eq!(deps, vec!["pod1", "pod2"]);

        // The owner starts a foreground deletion: its dependents are to be looked at.
        let mut deleting = owner.clone();
        deleting.deleting = true;
        deleting.finalizers = vec![FINALIZER_DELETE_DEPENDENTS.into()];
        assert_eq!(
            sorted(graph.apply(deleting)),
            vec!["owner".to_string(), "pod1".into(), "pod2".into()]
        );

        // A dependent that stops naming its owner, or goes, wakes the owner.
        assert_eq!(
            sorted(graph.apply(item("pod2", vec![]))),
            vec!["owner".to_string(), "pod2".into()]
        );
        assert_eq!(graph.remove("pod1"), vec!["owner".to_string()]);
        assert!(!graph.has_dependents("owner"));

        // An owner that goes wakes its dependents.
        graph.apply(item("pod3", vec![owner_ref("owner", false)]));
        assert_eq!(graph.remove("owner"), vec!["pod3".to_string()]);
        assert!(graph.has_dependents("owner"), "pod3 still names it");
        assert_eq!(graph.remove("unknown"), Vec::<String>::new());
    }

    #[test]
    fn dependents_must_share_a_namespaced_owners_namespace() {
        let owner = item("owner", vec![]);
        let mut elsewhere = item("pod", vec![owner_ref("owner", true)]);
        elsewhere.namespace = Some("other".into());
        assert!(!elsewhere.may_be_owned_by(&owner, true));
        assert!(
            elsewhere.may_be_owned_by(&owner, false),
            "cluster-scoped owner"
        );
        let mut cluster_scoped = elsewhere.clone();
        cluster_scoped.namespace = None;
        assert!(!cluster_scoped.may_be_owned_by(&owner, true));
        assert!(item("p", vec![]).may_be_owned_by(&owner, true));
    }
}

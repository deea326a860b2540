//! Strategic merge patch (`application/strategic-merge-patch+json`), as Kubernetes'
//! `k8s.io/apimachinery/pkg/util/strategicpatch` applies it on the server.
//!
//! `kubectl apply` (client side) and `kubectl patch` send these. Maps merge recursively and a
//! `null` deletes a key, like a JSON merge patch; lists are replaced unless the field's Go
//! struct tag says `patchStrategy:"merge"`, in which case lists of objects merge element by
//! element on their `patchMergeKey` and lists of scalars are unioned. The directives `$patch`
//! (`replace`, `delete`), `$retainKeys`, `$setElementOrder/<field>` and
//! `$deleteFromPrimitiveList/<field>` are honoured and never appear in the result.
//!
//! Kubernetes finds each field's strategy by reflection over the Go types; here a small
//! schema table ([`list_strategy`]) plays that part for the kinds skiff serves, walking the
//! object from its kind: a Pod's `spec` and a Deployment's `spec.template.spec` are both a
//! `PodSpec`, so `containers` merges by `name` in both. Kinds and fields not in the table get
//! JSON merge patch semantics: maps merge, lists are replaced.
//!
//! Deliberate differences from the Go code, where it would keep directive keys or empty husks in
//! the result, or fail: values added by the patch are themselves applied (so their directives are
//! processed and their `null`s dropped), a nested map with `$patch: delete` is removed rather
//! than left as `{}`, a `$deleteFromPrimitiveList` for a field the object lacks does nothing,
//! and a `$setElementOrder` for an atomic list is ignored (the patch's list is taken as given).

use serde_json::{Map, Value};

const DIRECTIVE_MARKER: &str = "$patch";
const DELETE_DIRECTIVE: &str = "delete";
const REPLACE_DIRECTIVE: &str = "replace";
const MERGE_DIRECTIVE: &str = "merge";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

type Object = Map<String, Value>;

/// Why a strategic merge patch could not be applied. All are the client's fault (the API
/// server answers 400 Bad Request or 422); the messages follow Kubernetes' wording.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch or the original is not a JSON object.
    #[error("invalid JSON document: the {0} must be a JSON object")]
    NotAnObject(&'static str),
    /// `$patch` with a value other than `replace` or `delete` (or `merge` in a map).
    #[error("unknown patch type: {directive} in map: {map}")]
    UnknownPatchType {
        /// The `$patch` value, as JSON.
        directive: String,
        /// The map holding it, as JSON.
        map: String,
    },
    /// `{"$patch": "merge"}` as a list element.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// An element of a list that merges by key lacks the key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    MissingMergeKey {
        /// The element, as JSON.
        map: String,
        /// The merge key, e.g. `name`.
        key: String,
    },
    /// A value has the wrong JSON type (e.g. a directive list that is not a list).
    #[error("expected a {expected}, but received a {actual}")]
    WrongType {
        /// The JSON type needed.
        expected: &'static str,
        /// The JSON type found.
        actual: &'static str,
    },
    /// A merging list of scalars received objects.
    #[error("cannot merge lists of objects without a merge key")]
    ObjectsWithoutMergeKey,
    /// A merging list holds lists.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// A merging list mixes element types (e.g. strings and objects).
    #[error("list element types are not identical: {0}")]
    MixedListTypes(String),
    /// `$retainKeys` is not a list.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// The patch sets a key that its `$retainKeys` list does not name.
    #[error("patch content doesn't match retainKeys list")]
    RetainKeysMismatch,
    /// A `$setElementOrder` key without `/<field>`.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// A `$deleteFromPrimitiveList` key without `/<field>`, or with a value that is not a list
    /// of scalars.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// The patch list's elements are not in the order of its `$setElementOrder` list.
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    OrderMismatch {
        /// The patch list, as JSON.
        patch: String,
        /// The `$setElementOrder` list, as JSON.
        order: String,
    },
}

/// How a list field is patched, from its Go struct tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// No `patchStrategy`: the patch's list replaces the original (JSON merge patch).
    Atomic,
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: objects with the same key merge, others
    /// are added (e.g. containers by `name`).
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` on a list of scalars: the union (e.g. `metadata.finalizers`).
    Set,
}

impl ListStrategy {
    fn merges(self) -> bool {
        self != ListStrategy::Atomic
    }

    fn merge_key(self) -> Option<&'static str> {
        match self {
            ListStrategy::MergeByKey(key) => Some(key),
            _ => None,
        }
    }
}

/// A position in an object's type tree: which Go struct a JSON object at that place is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schema {
    /// Not in the table: maps merge, lists are atomic, and so for everything below.
    Unknown,
    /// A served kind whose only merging lists are in its `metadata`.
    PlainObject,
    Pod,
    PodTemplate,
    /// Deployment, ReplicaSet, ReplicationController, DaemonSet, StatefulSet, Job.
    Workload,
    CronJob,
    Service,
    Node,
    Namespace,
    ServiceAccount,
    ObjectMeta,
    PodTemplateSpec,
    /// The `spec` of a [`Schema::Workload`]: only its `template` matters here.
    WorkloadSpec,
    CronJobSpec,
    JobTemplateSpec,
    PodSpec,
    /// Container and EphemeralContainer (same tags).
    Container,
    PodStatus,
    ServiceSpec,
    /// A status whose `conditions` merge by `type` (workloads, Service, Namespace).
    ConditionsStatus,
    NodeSpec,
    NodeStatus,
}

impl Schema {
    fn for_kind(kind: &str) -> Self {
        match kind {
            "Pod" => Schema::Pod,
            "PodTemplate" => Schema::PodTemplate,
            "Deployment"
            | "ReplicaSet"
            | "ReplicationController"
            | "DaemonSet"
            | "StatefulSet"
            | "Job" => Schema::Workload,
            "CronJob" => Schema::CronJob,
            "Service" => Schema::Service,
            "Node" => Schema::Node,
            "Namespace" => Schema::Namespace,
            "ServiceAccount" => Schema::ServiceAccount,
            "Endpoints" | "EndpointSlice" | "Event" | "Lease" | "ConfigMap" | "Secret"
            | "Binding" | "Scale" | "LimitRange" | "PriorityClass" => Schema::PlainObject,
            _ => Schema::Unknown,
        }
    }

    fn is_root(self) -> bool {
        matches!(
            self,
            Schema::PlainObject
                | Schema::Pod
                | Schema::PodTemplate
                | Schema::Workload
                | Schema::CronJob
                | Schema::Service
                | Schema::Node
                | Schema::Namespace
                | Schema::ServiceAccount
        )
    }

    /// The schema of field `name` of an object at this position, and how the field patches
    /// if it is a list. This is the table of Kubernetes' `patchStrategy`/`patchMergeKey` tags
    /// (k8s.io/api v1.32). Lists not named here are atomic, as in Kubernetes: among them
    /// `tolerations`, `envFrom`, `resizePolicy`, container statuses, Endpoints subsets and
    /// `NodeSpec.taints` (the tag on the `Taint.key` field does not make the list merge).
    fn field(self, name: &str) -> (Schema, ListStrategy) {
        use ListStrategy::{Atomic, MergeByKey, Set};
        match (self, name) {
            (Schema::Unknown, _) => (Schema::Unknown, Atomic),
            (root, "metadata") if root.is_root() => (Schema::ObjectMeta, Atomic),
            (Schema::Pod, "spec") => (Schema::PodSpec, Atomic),
            (Schema::Pod, "status") => (Schema::PodStatus, Atomic),
            (Schema::PodTemplate, "template") => (Schema::PodTemplateSpec, Atomic),
            (Schema::Workload, "spec") => (Schema::WorkloadSpec, Atomic),
            (Schema::Workload | Schema::Service | Schema::Namespace, "status") => {
                (Schema::ConditionsStatus, Atomic)
            }
            (Schema::CronJob, "spec") => (Schema::CronJobSpec, Atomic),
            (Schema::Service, "spec") => (Schema::ServiceSpec, Atomic),
            (Schema::Node, "spec") => (Schema::NodeSpec, Atomic),
            (Schema::Node, "status") => (Schema::NodeStatus, Atomic),
            (Schema::ServiceAccount, "secrets") => (Schema::Unknown, MergeByKey("name")),
            (Schema::ObjectMeta, "finalizers") => (Schema::Unknown, Set),
            (Schema::ObjectMeta, "ownerReferences") => (Schema::Unknown, MergeByKey("uid")),
            (Schema::PodTemplateSpec | Schema::JobTemplateSpec, "metadata") => {
                (Schema::ObjectMeta, Atomic)
            }
            (Schema::PodTemplateSpec, "spec") => (Schema::PodSpec, Atomic),
            (Schema::WorkloadSpec, "template") => (Schema::PodTemplateSpec, Atomic),
            (Schema::CronJobSpec, "jobTemplate") => (Schema::JobTemplateSpec, Atomic),
            (Schema::JobTemplateSpec, "spec") => (Schema::WorkloadSpec, Atomic),
            (Schema::PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
                (Schema::Container, MergeByKey("name"))
            }
            (
                Schema::PodSpec,
                "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates",
            ) => (Schema::Unknown, MergeByKey("name")),
            (Schema::PodSpec, "hostAliases") => (Schema::Unknown, MergeByKey("ip")),
            (Schema::PodSpec, "topologySpreadConstraints") => {
                (Schema::Unknown, MergeByKey("topologyKey"))
            }
            (Schema::Container, "env") => (Schema::Unknown, MergeByKey("name")),
            (Schema::Container, "ports") => (Schema::Unknown, MergeByKey("containerPort")),
            (Schema::Container, "volumeMounts") => (Schema::Unknown, MergeByKey("mountPath")),
            (Schema::Container, "volumeDevices") => (Schema::Unknown, MergeByKey("devicePath")),
            (Schema::PodStatus | Schema::ConditionsStatus, "conditions") => {
                (Schema::Unknown, MergeByKey("type"))
            }
            (Schema::PodStatus, "podIPs" | "hostIPs") => (Schema::Unknown, MergeByKey("ip")),
            (Schema::PodStatus, "resourceClaimStatuses") => (Schema::Unknown, MergeByKey("name")),
            (Schema::ServiceSpec, "ports") => (Schema::Unknown, MergeByKey("port")),
            (Schema::NodeSpec, "podCIDRs") => (Schema::Unknown, Set),
            (Schema::NodeStatus, "conditions" | "addresses") => {
                (Schema::Unknown, MergeByKey("type"))
            }
            _ => (Schema::Unknown, Atomic),
        }
    }
}

/// Whether `kind` has a strategic-merge schema here (Kubernetes answers 415 Unsupported Media
/// Type to a strategic merge patch for kinds it has no Go type for, e.g. custom resources).
pub fn is_known_kind(kind: &str) -> bool {
    Schema::for_kind(kind) != Schema::Unknown
}

/// How the list at `path` (field names joined by `.`, no indices, e.g.
/// `spec.template.spec.containers`) of an object of `kind` is patched:
/// `list_strategy("Deployment", "spec.template.spec.containers") == MergeByKey("name")`.
/// Unknown kinds and paths are [`ListStrategy::Atomic`].
pub fn list_strategy(kind: &str, path: &str) -> ListStrategy {
    let mut schema = Schema::for_kind(kind);
    let mut strategy = ListStrategy::Atomic;
    for segment in path.split('.') {
        (schema, strategy) = schema.field(segment);
    }
    strategy
}

/// Applies a strategic merge patch to an object of `kind` ("Pod", "Deployment", ...) and
/// returns the patched object, as the Kubernetes API server does for
/// `application/strategic-merge-patch+json`. Both documents must be JSON objects.
pub fn apply_patch(kind: &str, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(original) = original else {
        return Err(PatchError::NotAnObject("original object"));
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject("patch"));
    };
    let merged = merge_map(original.clone(), patch.clone(), Schema::for_kind(kind))?;
    // `{"$patch": "delete"}` at the top empties the object, as in Kubernetes.
    Ok(Value::Object(merged.unwrap_or_default()))
}

// ---------------------------------------------------------------------------------------------
// Maps
// ---------------------------------------------------------------------------------------------

/// Merges `patch` into `original`; `None` means the map was deleted (`$patch: delete`).
fn merge_map(
    mut original: Object,
    mut patch: Object,
    schema: Schema,
) -> Result<Option<Object>, PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE_MARKER) {
        return match directive.as_str() {
            // Replace: the patch's content applied to nothing.
            Some(REPLACE_DIRECTIVE) => merge_map(Object::new(), patch, schema),
            Some(DELETE_DIRECTIVE) => Ok(None),
            _ => {
                patch.insert(DIRECTIVE_MARKER.to_string(), directive.clone());
                Err(unknown_patch_type(&directive, &patch))
            }
        };
    }

    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order_lists(&mut original, &mut patch, schema)?;

    // Deletion lists go last so that the result does not depend on key order.
    let mut deletion_lists = Vec::new();
    for (key, patch_value) in patch {
        if key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            let field = directive_field(&key, DELETE_FROM_PRIMITIVE_LIST_PREFIX)
                .ok_or(PatchError::BadPrimitiveList)?;
            deletion_lists.push((field.to_string(), patch_value));
            continue;
        }
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let (child, strategy) = schema.field(&key);
        let merged = match original.remove(&key) {
            Some(original_value) => merge_value(original_value, patch_value, child, strategy)?,
            None => fresh_value(patch_value, child, strategy)?,
        };
        if let Some(value) = merged {
            original.insert(key, value);
        }
    }

    for (field, to_delete) in deletion_lists {
        let Value::Array(to_delete) = to_delete else {
            return Err(PatchError::BadPrimitiveList);
        };
        if to_delete.iter().any(|v| v.is_object() || v.is_array()) {
            return Err(PatchError::BadPrimitiveList);
        }
        if let Some(Value::Array(list)) = original.get_mut(&field) {
            list.retain(|item| !to_delete.iter().any(|d| json_eq(item, d)));
        }
    }
    Ok(Some(original))
}

/// Merges one field's patch value into its original value; `None` deletes the field.
fn merge_value(
    original: Value,
    patch: Value,
    schema: Schema,
    strategy: ListStrategy,
) -> Result<Option<Value>, PatchError> {
    match (original, patch) {
        (Value::Object(original), Value::Object(patch)) => {
            Ok(merge_map(original, patch, schema)?.map(Value::Object))
        }
        (Value::Array(original), Value::Array(patch)) => Ok(Some(Value::Array(merge_list(
            original, patch, schema, strategy,
        )?))),
        // Scalars, and values whose type changed, are replaced.
        (_, patch) => fresh_value(patch, schema, strategy),
    }
}

/// A patch value for a field the original lacks: the patch applied to nothing, so that its
/// directives are processed (Kubernetes copies it verbatim, directives included).
fn fresh_value(
    patch: Value,
    schema: Schema,
    strategy: ListStrategy,
) -> Result<Option<Value>, PatchError> {
    match patch {
        Value::Object(patch) => Ok(merge_map(Object::new(), patch, schema)?.map(Value::Object)),
        Value::Array(patch) => Ok(Some(Value::Array(merge_list(
            Vec::new(),
            patch,
            schema,
            strategy,
        )?))),
        scalar => Ok(Some(scalar)),
    }
}

/// `$retainKeys`: drop the original's keys not in the list; the patch may only set listed keys.
fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadRetainKeys);
    };
    let keep = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || key.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !keep(key) {
            return Err(PatchError::RetainKeysMismatch);
        }
    }
    original.retain(|key, _| keep(key));
    Ok(())
}

/// The field named by a `$prefix/<field>` directive key, if well formed.
fn directive_field<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    let (head, field) = key.split_once('/')?;
    (head == prefix && !field.is_empty()).then_some(field)
}

// ---------------------------------------------------------------------------------------------
// $setElementOrder
// ---------------------------------------------------------------------------------------------

/// Processes every `$setElementOrder/<field>` of `patch`: merges the field's list (taking it
/// out of `patch`) and orders the result. Precedence: the directive's order, then the patch
/// list's, then the original's, as Kubernetes' `mergePatchIntoOriginal`.
fn merge_set_element_order_lists(
    original: &mut Object,
    patch: &mut Object,
    schema: Schema,
) -> Result<(), PatchError> {
    let directive_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for directive_key in directive_keys {
        let Some(order) = patch.remove(&directive_key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(wrong_type("list", &order));
        };
        let field = directive_field(&directive_key, SET_ELEMENT_ORDER_PREFIX)
            .ok_or(PatchError::BadSetElementOrder)?
            .to_string();
        let (child, strategy) = schema.field(&field);
        if !strategy.merges() {
            // An atomic list is replaced by the patch's list as given; Kubernetes' clients
            // only send an order for merging lists (its server fails on the others).
            continue;
        }
        let original_list = match original.get(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(wrong_type("list", other)),
        };
        let patch_list = match patch.remove(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(other) => return Err(wrong_type("list", &other)),
        };
        if let Some(patch_list) = &patch_list {
            validate_patch_with_order(patch_list, &order, strategy.merge_key())?;
        }

        let original_list = original_list.unwrap_or_default();
        let merged = match patch_list {
            Some(patch_list) => merge_list(original_list.clone(), patch_list, child, strategy)?,
            None if original.contains_key(&field) => original_list.clone(),
            None => continue,
        };

        let identity = match (strategy.merge_key(), merged.first()) {
            (Some(key), Some(Value::Object(_))) => Identity::Key(key),
            _ => Identity::Value,
        };
        let (patch_items, server_only): (Vec<Value>, Vec<Value>) = merged
            .into_iter()
            .partition(|item| index_of(&order, item, identity).is_some());
        let ordered =
            normalize_element_order(patch_items, server_only, &order, &original_list, identity)?;
        original.insert(field, Value::Array(ordered));
    }
    Ok(())
}

/// Kubernetes' `validatePatchWithSetOrderList`: the patch list (without deletions) must be in
/// the relative order of the `$setElementOrder` list.
fn validate_patch_with_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut kept = Vec::with_capacity(patch_list.len());
    for item in patch_list {
        if merge_key.is_some() {
            let Value::Object(map) = item else {
                return Err(wrong_type("map", item));
            };
            if directive_of(map) == Some(DELETE_DIRECTIVE) {
                continue;
            }
        }
        kept.push(item);
    }
    let (mut patch_index, mut order_index) = (0, 0);
    while patch_index < kept.len() && order_index < order.len() {
        let item = kept[patch_index];
        if item
            .as_object()
            .is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
        {
            patch_index += 1;
            continue;
        }
        let equal = match merge_key {
            Some(key) => json_eq(
                merge_key_value(item, key)?,
                merge_key_value(&order[order_index], key)?,
            ),
            None => json_eq(item, &order[order_index]),
        };
        if equal {
            patch_index += 1;
        }
        order_index += 1;
    }
    if patch_index < kept.len() {
        return Err(PatchError::OrderMismatch {
            patch: Value::Array(patch_list.to_vec()).to_string(),
            order: Value::Array(order.to_vec()).to_string(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------------

/// Merges a list field according to its strategy.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Schema,
    strategy: ListStrategy,
) -> Result<Vec<Value>, PatchError> {
    if !strategy.merges() {
        return replace_list(patch, schema);
    }
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    if element_kind(&original, &patch)? != "map" {
        return merge_scalar_list(original, patch);
    }
    let Some(key) = strategy.merge_key() else {
        return Err(PatchError::ObjectsWithoutMergeKey);
    };
    let (original, patch) = apply_list_directives(original, patch, key, schema)?;
    let merged = merge_list_elements(original.clone(), &patch, key, schema)?;
    let identity = Identity::Key(key);
    let (patch_items, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| index_of(&patch, item, identity).is_some());
    normalize_element_order(patch_items, server_only, &patch, &original, identity)
}

/// An atomic list: the patch's list, with directive elements dropped and its objects applied
/// to nothing (so no directive key survives).
fn replace_list(patch: Vec<Value>, schema: Schema) -> Result<Vec<Value>, PatchError> {
    let mut out = Vec::with_capacity(patch.len());
    for item in patch {
        match item {
            Value::Object(map) => {
                if let Some(directive) = map.get(DIRECTIVE_MARKER) {
                    match directive.as_str() {
                        // Replacing and deleting from an atomic list: the list is replaced
                        // anyway, so the marker element just goes.
                        Some(REPLACE_DIRECTIVE | DELETE_DIRECTIVE) => continue,
                        Some(MERGE_DIRECTIVE) => return Err(PatchError::MergeDirectiveInList),
                        _ => return Err(unknown_patch_type(directive, &map)),
                    }
                }
                if let Some(map) = merge_map(Object::new(), map, schema)? {
                    out.push(Value::Object(map));
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// A merging list of scalars: the union, ordered like Kubernetes (patch items by the patch's
/// order, the others by the original's, interleaved by `merge_sorted`).
fn merge_scalar_list(original: Vec<Value>, patch: Vec<Value>) -> Result<Vec<Value>, PatchError> {
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for item in original.iter().chain(patch.iter()) {
        if !merged.iter().any(|m| json_eq(m, item)) {
            merged.push(item.clone());
        }
    }
    let identity = Identity::Value;
    let (patch_items, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| index_of(&patch, item, identity).is_some());
    normalize_element_order(patch_items, server_only, &patch, &original, identity)
}

/// Handles `{"$patch": ...}` list elements (Kubernetes' `mergeSliceWithSpecialElements`):
/// `delete` removes the original elements with that key, `replace` makes the rest of the
/// patch list the whole list. Returns the new original and the patch without those elements.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    schema: Schema,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(map) = &item else {
            return Err(wrong_type("map", &item));
        };
        let Some(directive) = map.get(DIRECTIVE_MARKER) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some(DELETE_DIRECTIVE) => {
                let Some(value) = map.get(key) else {
                    return Err(missing_merge_key(map, key));
                };
                original.retain(|o| {
                    !o.as_object()
                        .and_then(|m| m.get(key))
                        .is_some_and(|v| json_eq(v, value))
                });
            }
            Some(REPLACE_DIRECTIVE) => replace = true,
            Some(MERGE_DIRECTIVE) => return Err(PatchError::MergeDirectiveInList),
            _ => return Err(unknown_patch_type(directive, map)),
        }
    }
    if replace {
        let replacement = replace_list(plain, schema)?;
        return Ok((replacement, Vec::new()));
    }
    Ok((original, plain))
}

/// Merges each patch element into the original element with the same key, or appends it
/// (Kubernetes' `mergeSliceWithoutSpecialElements`).
fn merge_list_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    schema: Schema,
) -> Result<Vec<Value>, PatchError> {
    for item in patch {
        let Value::Object(patch_map) = item else {
            return Err(wrong_type("map", item));
        };
        let Some(value) = patch_map.get(key) else {
            return Err(missing_merge_key(patch_map, key));
        };
        let found = original.iter().position(|o| {
            o.as_object()
                .and_then(|m| m.get(key))
                .is_some_and(|v| json_eq(v, value))
        });
        match found {
            Some(index) => {
                let original_map = match &mut original[index] {
                    Value::Object(map) => std::mem::take(map),
                    other => return Err(wrong_type("map", other)),
                };
                match merge_map(original_map, patch_map.clone(), schema)? {
                    Some(map) => original[index] = Value::Object(map),
                    None => {
                        original.remove(index);
                    }
                }
            }
            None => {
                if let Some(map) = merge_map(Object::new(), patch_map.clone(), schema)? {
                    original.push(Value::Object(map));
                }
            }
        }
    }
    Ok(original)
}

/// The JSON type shared by the elements of both lists (Kubernetes' `sliceElementType`).
fn element_kind(original: &[Value], patch: &[Value]) -> Result<&'static str, PatchError> {
    let mut kind = None;
    for item in original.iter().chain(patch) {
        let this = type_name(item);
        if this == "list" {
            return Err(PatchError::ListOfLists);
        }
        match kind {
            None => kind = Some(this),
            Some(seen) if seen != this => {
                return Err(PatchError::MixedListTypes(format!(
                    "{} and {}",
                    Value::Array(original.to_vec()),
                    Value::Array(patch.to_vec())
                )));
            }
            Some(_) => {}
        }
    }
    Ok(kind.unwrap_or("null"))
}

// ---------------------------------------------------------------------------------------------
// Ordering (Kubernetes' normalizeElementOrder / mergeSortedSlice)
// ---------------------------------------------------------------------------------------------

/// How list elements are identified when ordering: by merge key, or by whole value.
#[derive(Clone, Copy)]
enum Identity<'a> {
    Key(&'a str),
    Value,
}

/// Position of `item` in `list` by identity.
fn index_of(list: &[Value], item: &Value, identity: Identity<'_>) -> Option<usize> {
    match identity {
        Identity::Value => list.iter().position(|v| json_eq(v, item)),
        Identity::Key(key) => {
            let wanted = item.as_object()?.get(key)?;
            list.iter().position(|v| {
                v.as_object()
                    .and_then(|m| m.get(key))
                    .is_some_and(|v| json_eq(v, wanted))
            })
        }
    }
}

/// Sorts the patch items by `patch_order` and the server-only items by `server_order`, then
/// interleaves them keeping both relative orders (Kubernetes' `normalizeElementOrder`).
fn normalize_element_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    identity: Identity<'_>,
) -> Result<Vec<Value>, PatchError> {
    if let Identity::Key(key) = identity {
        for item in patch_items
            .iter()
            .chain(patch_order)
            .chain(&server_only)
            .chain(server_order)
        {
            merge_key_value(item, key)?;
        }
    }
    let position =
        |list: &[Value], item: &Value| index_of(list, item, identity).unwrap_or(usize::MAX);
    patch_items.sort_by_key(|item| position(patch_order, item));
    server_only.sort_by_key(|item| position(server_order, item));
    Ok(merge_sorted(
        server_only,
        patch_items,
        server_order,
        identity,
    ))
}

/// Kubernetes' `mergeSortedSlice`: walks both lists, taking the server-only item first only
/// when both items are in the original and it came first there. So a changed item stays in
/// place and a new item goes before the server-only items that follow it.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    identity: Identity<'_>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (
                index_of(server_order, l, identity),
                index_of(server_order, r, identity),
            ) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The merge key's value of a list element, which must be an object holding the key.
fn merge_key_value<'a>(item: &'a Value, key: &str) -> Result<&'a Value, PatchError> {
    let Value::Object(map) = item else {
        return Err(wrong_type("map", item));
    };
    map.get(key).ok_or_else(|| missing_merge_key(map, key))
}

fn directive_of(map: &Object) -> Option<&str> {
    map.get(DIRECTIVE_MARKER).and_then(Value::as_str)
}

/// Equality as Go compares decoded JSON: numbers by value (`80` equals `80.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        _ => a == b,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

fn wrong_type(expected: &'static str, actual: &Value) -> PatchError {
    PatchError::WrongType {
        expected,
        actual: type_name(actual),
    }
}

fn missing_merge_key(map: &Object, key: &str) -> PatchError {
    PatchError::MissingMergeKey {
        map: Value::Object(map.clone()).to_string(),
        key: key.to_string(),
    }
}

fn unknown_patch_type(directive: &Value, map: &Object) -> PatchError {
    PatchError::UnknownPatchType {
        directive: directive
            .as_str()
            .map_or_else(|| directive.to_string(), str::to_string),
        map: Value::Object(map.clone()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(kind: &str, original: Value, patch: Value) -> Value {
        match apply_patch(kind, &original, &patch) {
            Ok(result) => {
                assert_no_directives(&result);
                result
            }
            Err(e) => panic!("patch failed: {e}"),
        }
    }

    fn patch_err(kind: &str, original: Value, patch: Value) -> PatchError {
        match apply_patch(kind, &original, &patch) {
            Ok(result) => panic!("patch should fail, got {result}"),
            Err(e) => e,
        }
    }

    fn assert_no_directives(value: &Value) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    assert!(
                        !(key == DIRECTIVE_MARKER
                            || key == RETAIN_KEYS_DIRECTIVE
                            || key.starts_with(SET_ELEMENT_ORDER_PREFIX)
                            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)),
                        "directive key {key} left in result"
                    );
                    assert_no_directives(v);
                }
            }
            Value::Array(items) => items.iter().for_each(assert_no_directives),
            _ => {}
        }
    }

    fn names(list: &Value) -> Vec<&str> {
        list.as_array()
            .map(|items| items.iter().filter_map(|i| i["name"].as_str()).collect())
            .unwrap_or_default()
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {"app": "web", "tier": "front"},
                "finalizers": ["a.example.com/x", "b.example.com/y"]
            },
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "app:1",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                    },
                    {"name": "sidecar", "image": "sidecar:1"}
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "tolerations": [{"key": "k1", "operator": "Exists"}],
                "securityContext": {"runAsUser": 1000, "runAsGroup": 1000}
            },
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "PodScheduled", "status": "True"}
                ]
            }
        })
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "nginx",
                "namespace": "default",
                "generation": 1,
                "annotations": {
                    "deployment.kubernetes.io/revision": "1",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}\n"
                }
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "nginx"}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
                },
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {
                        "containers": [{
                            "name": "nginx",
                            "image": "nginx:1.24",
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log"
                        }],
                        "restartPolicy": "Always",
                        "dnsPolicy": "ClusterFirst"
                    }
                }
            },
            "status": {
                "replicas": 2,
                "conditions": [
                    {"type": "Available", "status": "True"},
                    {"type": "Progressing", "status": "True"}
                ]
            }
        })
    }

    // --- maps ---

    #[test]
    fn maps_merge_recursively_and_null_deletes_a_label() {
        let result = patch(
            "Pod",
            pod(),
            json!({"metadata": {"labels": {"tier": null, "version": "v2"}}}),
        );
        assert_eq!(
            result["metadata"]["labels"],
            json!({"app": "web", "version": "v2"})
        );
        assert_eq!(result["metadata"]["name"], "web", "untouched keys stay");
        assert_eq!(result["spec"], pod()["spec"]);
    }

    #[test]
    fn null_for_a_missing_key_is_ignored() {
        let result = patch("Pod", pod(), json!({"metadata": {"annotations": null}}));
        assert!(result["metadata"].get("annotations").is_none());
        let result = patch("Pod", pod(), json!({"spec": {"nodeName": null}}));
        assert_eq!(result, pod());
    }

    #[test]
    fn scalars_and_type_changes_are_replaced() {
        let result = patch(
            "Pod",
            pod(),
            json!({"spec": {"securityContext": "oops", "hostname": "h"}}),
        );
        assert_eq!(result["spec"]["securityContext"], "oops");
        assert_eq!(result["spec"]["hostname"], "h");
    }

    #[test]
    fn patch_replace_directive_on_a_map() {
        let result = patch(
            "Pod",
            pod(),
            json!({"spec": {"securityContext": {"$patch": "replace", "runAsNonRoot": true}}}),
        );
        assert_eq!(
            result["spec"]["securityContext"],
            json!({"runAsNonRoot": true})
        );
    }

    #[test]
    fn patch_delete_directive_on_a_map_removes_it() {
        let result = patch(
            "Pod",
            pod(),
            json!({"spec": {"securityContext": {"$patch": "delete"}}}),
        );
        assert!(result["spec"].get("securityContext").is_none());
        let emptied = patch("Pod", pod(), json!({"$patch": "delete"}));
        assert_eq!(emptied, json!({}), "a top-level delete empties the object");
    }

    #[test]
    fn retain_keys_clears_other_fields() {
        let result = patch(
            "Deployment",
            deployment(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(result["spec"]["strategy"], json!({"type": "Recreate"}));
        // A volume switching source, as kubectl sends it for `retainKeys` fields.
        let result = patch(
            "Pod",
            pod(),
            json!({"spec": {"volumes": [{
                "$retainKeys": ["configMap", "name"],
                "name": "data",
                "configMap": {"name": "cfg"}
            }]}}),
        );
        assert_eq!(
            result["spec"]["volumes"],
            json!([{"name": "data", "configMap": {"name": "cfg"}}])
        );
    }

    #[test]
    fn retain_keys_errors() {
        let err = patch_err(
            "Deployment",
            deployment(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        );
        assert_eq!(err, PatchError::RetainKeysMismatch);
        let err = patch_err(
            "Deployment",
            deployment(),
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
        );
        assert_eq!(err.to_string(), "invalid patch format of retainKeys");
        // Nulls and parallel lists need not be listed.
        let result = patch(
            "Deployment",
            deployment(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null}}}),
        );
        assert_eq!(result["spec"]["strategy"], json!({"type": "RollingUpdate"}));
    }

    // --- lists merging by key ---

    #[test]
    fn container_image_change_merges_by_name_keeping_other_containers() {
        let result = patch(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "sidecar", "image": "sidecar:2"}]}}),
        );
        let containers = &result["spec"]["containers"];
        assert_eq!(names(containers), ["app", "sidecar"]);
        assert_eq!(containers[0], pod()["spec"]["containers"][0]);
        assert_eq!(
            containers[1],
            json!({"name": "sidecar", "image": "sidecar:2"})
        );
    }

    #[test]
    fn deployment_template_containers_merge_by_name() {
        let result = patch(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.25"}
            ]}}}}),
        );
        let container = &result["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "nginx:1.25");
        assert_eq!(container["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            container["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}])
        );
        assert_eq!(
            result["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn adding_an_env_var_merges_by_name() {
        let result = patch(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "app", "env": [{"name": "C", "value": "3"}]}]}}),
        );
        let env = &result["spec"]["containers"][0]["env"];
        // Without $setElementOrder Kubernetes puts new items before the server's.
        assert_eq!(names(env), ["C", "A", "B"]);
        assert_eq!(result["spec"]["containers"][0]["image"], "app:1");

        let ordered = patch(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{
                "name": "app",
                "$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "C"}],
                "env": [{"name": "C", "value": "3"}]
            }]}}),
        );
        assert_eq!(
            names(&ordered["spec"]["containers"][0]["env"]),
            ["A", "B", "C"]
        );
    }

    #[test]
    fn changing_an_env_var_keeps_its_place() {
        let result = patch(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": "9"}]}]}}),
        );
        assert_eq!(
            result["spec"]["containers"][0]["env"],
            json!([{"name": "A", "value": "9"}, {"name": "B", "value": "2"}])
        );
    }

    #[test]
    fn deleting_a_container_with_patch_delete() {
        let result = patch(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}),
        );
        assert_eq!(names(&result["spec"]["containers"]), ["app"]);
        // Deleting something absent is fine.
        let result = patch(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "ghost", "$patch": "delete"}]}}),
        );
        assert_eq!(names(&result["spec"]["containers"]), ["app", "sidecar"]);
    }

    #[test]
    fn patch_replace_directive_on_a_list() {
        let result = patch(
            "Pod",
            pod(),
            json!({"spec": {"containers": [
                {"$patch": "replace"},
                {"name": "only", "image": "only:1"}
            ]}}),
        );
        assert_eq!(
            result["spec"]["containers"],
            json!([{"name": "only", "image": "only:1"}])
        );
    }

    #[test]
    fn set_element_order_reorders_containers() {
        let mut original = pod();
        original["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "third", "image": "t:1"}));
        let result = patch(
            "Pod",
            original,
            json!({"spec": {"$setElementOrder/containers": [
                {"name": "third"}, {"name": "app"}, {"name": "sidecar"}
            ]}}),
        );
        assert_eq!(
            names(&result["spec"]["containers"]),
            ["third", "app", "sidecar"]
        );
        assert_eq!(result["spec"]["containers"][1]["image"], "app:1");
    }

    #[test]
    fn set_element_order_with_server_only_items_follows_kubernetes() {
        let mut original = pod();
        original["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "injected", "image": "mesh:1"}));
        // The user's config lists sidecar then app; "injected" was added by someone else.
        let result = patch(
            "Pod",
            original,
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                "containers": [{"name": "app", "image": "app:2"}]
            }}),
        );
        assert_eq!(
            names(&result["spec"]["containers"]),
            ["sidecar", "app", "injected"]
        );
        assert_eq!(result["spec"]["containers"][1]["image"], "app:2");
    }

    #[test]
    fn set_element_order_on_a_missing_list_takes_the_patch() {
        let mut original = pod();
        original["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("env");
        let result = patch(
            "Pod",
            original,
            json!({"spec": {"containers": [{
                "name": "app",
                "$setElementOrder/env": [{"name": "Y"}, {"name": "X"}],
                "env": [{"name": "Y", "value": "y"}, {"name": "X", "value": "x"}]
            }]}}),
        );
        assert_eq!(names(&result["spec"]["containers"][0]["env"]), ["Y", "X"]);
    }

    #[test]
    fn set_element_order_mismatch_is_an_error() {
        let err = patch_err(
            "Pod",
            pod(),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                "containers": [{"name": "sidecar", "image": "s:2"}, {"name": "app", "image": "a:2"}]
            }}),
        );
        assert!(matches!(err, PatchError::OrderMismatch { .. }), "{err}");
        assert!(err.to_string().starts_with("The order in patch list:"));
        let err = patch_err(
            "Pod",
            pod(),
            json!({"spec": {"$setElementOrder/containers": [{"image": "x"}]}}),
        );
        assert!(matches!(err, PatchError::MissingMergeKey { .. }), "{err}");
        let err = patch_err(
            "Pod",
            pod(),
            json!({"spec": {"$setElementOrder": [{"name": "app"}]}}),
        );
        assert_eq!(err, PatchError::BadSetElementOrder);
        let err = patch_err(
            "Pod",
            pod(),
            json!({"spec": {"$setElementOrder/containers": {"name": "app"}}}),
        );
        assert_eq!(err.to_string(), "expected a list, but received a map");
    }

    #[test]
    fn service_ports_merge_by_port() {
        let service = json!({
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.10",
                "selector": {"app": "web"},
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}
                ]
            }
        });
        let result = patch(
            "Service",
            service.clone(),
            json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}),
        );
        assert_eq!(
            result["spec"]["ports"],
            json!([
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 9443, "protocol": "TCP"}
            ])
        );
        assert_eq!(result["spec"]["clusterIP"], "10.96.0.10");
        // Numbers match by value, as Go's decoded float64s do.
        let result = patch(
            "Service",
            service,
            json!({"spec": {"ports": [{"port": 80.0, "name": "web"}]}}),
        );
        assert_eq!(result["spec"]["ports"][0]["name"], "web");
        assert_eq!(result["spec"]["ports"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let original = json!({"metadata": {"name": "p", "ownerReferences": [
            {"uid": "u1", "kind": "ReplicaSet", "name": "rs1", "controller": true}
        ]}});
        let result = patch(
            "Pod",
            original,
            json!({"metadata": {"ownerReferences": [
                {"uid": "u1", "controller": false},
                {"uid": "u2", "kind": "Node", "name": "n"}
            ]}}),
        );
        assert_eq!(
            result["metadata"]["ownerReferences"],
            json!([
                {"uid": "u1", "kind": "ReplicaSet", "name": "rs1", "controller": false},
                {"uid": "u2", "kind": "Node", "name": "n"}
            ])
        );
    }

    #[test]
    fn pod_status_conditions_merge_by_type() {
        // What a kubelet sends to pods/status.
        let result = patch(
            "Pod",
            pod(),
            json!({"status": {
                "$setElementOrder/conditions": [
                    {"type": "Initialized"}, {"type": "Ready"}, {"type": "PodScheduled"}
                ],
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
                ],
                "podIP": "10.244.1.5"
            }}),
        );
        assert_eq!(
            result["status"]["conditions"],
            json!([
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                {"type": "PodScheduled", "status": "True"}
            ])
        );
        assert_eq!(result["status"]["phase"], "Running");
        assert_eq!(result["status"]["podIP"], "10.244.1.5");
    }

    #[test]
    fn node_status_addresses_and_conditions_merge_by_type() {
        let node = json!({
            "kind": "Node",
            "metadata": {"name": "n1"},
            "spec": {"podCIDRs": ["10.244.1.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}]},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "192.168.1.10"},
                    {"type": "Hostname", "address": "n1"}
                ],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"}
            }
        });
        let result = patch(
            "Node",
            node.clone(),
            json!({"status": {
                "conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.11"}],
                "capacity": {"cpu": "4"}
            }}),
        );
        assert_eq!(
            result["status"]["addresses"],
            json!([
                {"type": "InternalIP", "address": "192.168.1.11"},
                {"type": "Hostname", "address": "n1"}
            ])
        );
        assert_eq!(result["status"]["conditions"][0]["status"], "Unknown");
        assert_eq!(
            result["status"]["capacity"],
            json!({"cpu": "4", "memory": "4Gi", "pods": "110"})
        );
        // Taints carry no patch strategy in Kubernetes' NodeSpec: the list is replaced.
        let result = patch(
            "Node",
            node,
            json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}], "podCIDRs": ["fd00::/64"]}}),
        );
        assert_eq!(
            result["spec"]["taints"],
            json!([{"key": "b", "effect": "NoExecute"}])
        );
        assert_eq!(
            result["spec"]["podCIDRs"],
            json!(["fd00::/64", "10.244.1.0/24"]),
            "podCIDRs is a merging set"
        );
    }

    // --- primitive lists ---

    #[test]
    fn finalizers_union_and_delete_from_primitive_list() {
        let result = patch(
            "Pod",
            pod(),
            json!({"metadata": {"finalizers": ["b.example.com/y", "c.example.com/z"]}}),
        );
        assert_eq!(
            result["metadata"]["finalizers"],
            json!(["a.example.com/x", "b.example.com/y", "c.example.com/z"])
        );
        let result = patch(
            "Pod",
            pod(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/x"]}}),
        );
        assert_eq!(result["metadata"]["finalizers"], json!(["b.example.com/y"]));
        let result = patch(
            "Pod",
            pod(),
            json!({"metadata": {
                "$setElementOrder/finalizers": ["c.example.com/z", "b.example.com/y"],
                "$deleteFromPrimitiveList/finalizers": ["a.example.com/x"],
                "finalizers": ["c.example.com/z"]
            }}),
        );
        assert_eq!(
            result["metadata"]["finalizers"],
            json!(["c.example.com/z", "b.example.com/y"])
        );
    }

    #[test]
    fn new_primitive_items_go_before_server_items_like_kubernetes() {
        let result = patch(
            "Pod",
            pod(),
            json!({"metadata": {"finalizers": ["c.example.com/z"]}}),
        );
        assert_eq!(
            result["metadata"]["finalizers"],
            json!(["c.example.com/z", "a.example.com/x", "b.example.com/y"])
        );
    }

    #[test]
    fn delete_from_primitive_list_edge_cases() {
        let mut original = pod();
        original["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("finalizers");
        let result = patch(
            "Pod",
            original,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
        );
        assert!(result["metadata"].get("finalizers").is_none());
        let err = patch_err(
            "Pod",
            pod(),
            json!({"metadata": {"$deleteFromPrimitiveList": ["x"]}}),
        );
        assert_eq!(err.to_string(), "invalid patch format of primitive list");
        let err = patch_err(
            "Pod",
            pod(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}}),
        );
        assert_eq!(err, PatchError::BadPrimitiveList);
    }

    // --- atomic lists ---

    #[test]
    fn atomic_lists_are_replaced() {
        let result = patch(
            "Pod",
            pod(),
            json!({"spec": {
                "tolerations": [{"key": "k2", "operator": "Exists"}],
                "containers": [{"name": "app", "args": ["--x"], "envFrom": [{"configMapRef": {"name": "c"}}]}]
            }}),
        );
        assert_eq!(
            result["spec"]["tolerations"],
            json!([{"key": "k2", "operator": "Exists"}])
        );
        assert_eq!(result["spec"]["containers"][0]["args"], json!(["--x"]));
        let result = patch(
            "Pod",
            pod(),
            json!({"status": {"containerStatuses": [{"name": "app", "ready": true}]}}),
        );
        assert_eq!(
            result["status"]["containerStatuses"],
            json!([{"name": "app", "ready": true}])
        );
    }

    #[test]
    fn atomic_list_directive_elements_are_dropped() {
        let result = patch(
            "Pod",
            pod(),
            json!({"spec": {"tolerations": [{"$patch": "replace"}, {"key": "k3", "operator": "Exists"}]}}),
        );
        assert_eq!(
            result["spec"]["tolerations"],
            json!([{"key": "k3", "operator": "Exists"}])
        );
    }

    #[test]
    fn endpoints_subsets_are_atomic() {
        let endpoints = json!({
            "kind": "Endpoints",
            "metadata": {"name": "web", "finalizers": ["f1"]},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]
        });
        let result = patch(
            "Endpoints",
            endpoints,
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}], "metadata": {"finalizers": ["f2"]}}),
        );
        assert_eq!(
            result["subsets"],
            json!([{"addresses": [{"ip": "10.0.0.2"}]}])
        );
        assert_eq!(result["metadata"]["finalizers"], json!(["f2", "f1"]));
    }

    #[test]
    fn unknown_kinds_get_json_merge_semantics() {
        let original = json!({
            "metadata": {"name": "x", "finalizers": ["a"], "labels": {"k": "v"}},
            "spec": {"items": [{"name": "one", "v": 1}], "nested": {"a": 1, "b": 2}}
        });
        let result = patch(
            "Widget",
            original,
            json!({
                "metadata": {"finalizers": ["b"], "labels": {"k2": "v2"}},
                "spec": {"items": [{"name": "one", "v": 2}], "nested": {"b": null}}
            }),
        );
        assert_eq!(result["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(result["metadata"]["labels"], json!({"k": "v", "k2": "v2"}));
        assert_eq!(result["spec"]["items"], json!([{"name": "one", "v": 2}]));
        assert_eq!(result["spec"]["nested"], json!({"a": 1}));
        assert!(!is_known_kind("Widget"));
        assert!(is_known_kind("Deployment"));
    }

    // --- kubectl apply ---

    #[test]
    fn kubectl_apply_three_way_patch_on_a_deployment() {
        let last_applied = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"name":"nginx","namespace":"default"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"nginx"}},"template":{"metadata":{"labels":{"app":"nginx"}},"spec":{"containers":[{"image":"nginx:1.25","name":"nginx","ports":[{"containerPort":80}]}]}}}}"#;
        let kubectl_patch = json!({
            "metadata": {"annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": format!("{last_applied}\n")
            }},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [{"image": "nginx:1.25", "name": "nginx"}]
            }}}
        });
        let result = patch("Deployment", deployment(), kubectl_patch);
        let mut expected = deployment();
        expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
            json!(format!("{last_applied}\n"));
        expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.25");
        assert_eq!(result, expected);
    }

    #[test]
    fn kubectl_apply_adding_a_container_and_removing_a_port() {
        let kubectl_patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "redis"}],
            "containers": [
                {
                    "name": "nginx",
                    "$setElementOrder/ports": [{"containerPort": 8080}],
                    "ports": [{"containerPort": 8080}, {"$patch": "delete", "containerPort": 80}]
                },
                {"name": "redis", "image": "redis:7"}
            ]
        }}}});
        let result = patch("Deployment", deployment(), kubectl_patch);
        let containers = &result["spec"]["template"]["spec"]["containers"];
        assert_eq!(names(containers), ["nginx", "redis"]);
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 8080}]));
        assert_eq!(containers[0]["image"], "nginx:1.24");
        assert_eq!(containers[1], json!({"name": "redis", "image": "redis:7"}));
    }

    #[test]
    fn brief_style_patch_on_deployment_spec_does_not_fail() {
        // `containers` directly under a Deployment's spec is not a Kubernetes field: it is
        // kept as an unknown (atomic) field, and no directive leaks into the result.
        let result = patch(
            "Deployment",
            deployment(),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [{"image": "nginx:1.25", "name": "nginx"}]
            }}),
        );
        assert_eq!(
            result["spec"]["containers"],
            json!([{"image": "nginx:1.25", "name": "nginx"}])
        );
        assert_eq!(result["spec"]["template"], deployment()["spec"]["template"]);
    }

    #[test]
    fn new_values_have_their_directives_processed() {
        let mut original = deployment();
        original["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("containers");
        let result = patch(
            "Deployment",
            original,
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [
                    {"name": "a", "$setElementOrder/env": [{"name": "X"}], "env": [{"name": "X", "value": "1", "valueFrom": null}]},
                    {"name": "b", "securityContext": {"$patch": "replace", "privileged": false}},
                    {"name": "gone", "$patch": "delete"}
                ]
            }}}}),
        );
        assert_eq!(
            result["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "a", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "securityContext": {"privileged": false}}
            ])
        );
    }

    // --- cron jobs and other nested pod specs ---

    #[test]
    fn nested_pod_specs_are_found_for_every_workload() {
        for (kind, path) in [
            ("Pod", "spec.containers"),
            ("Deployment", "spec.template.spec.containers"),
            ("ReplicaSet", "spec.template.spec.containers"),
            ("ReplicationController", "spec.template.spec.containers"),
            ("DaemonSet", "spec.template.spec.initContainers"),
            ("StatefulSet", "spec.template.spec.ephemeralContainers"),
            ("Job", "spec.template.spec.containers"),
            ("CronJob", "spec.jobTemplate.spec.template.spec.containers"),
            ("PodTemplate", "template.spec.containers"),
        ] {
            assert_eq!(
                list_strategy(kind, path),
                ListStrategy::MergeByKey("name"),
                "{kind} {path}"
            );
        }
    }

    #[test]
    fn list_strategy_table() {
        use ListStrategy::{Atomic, MergeByKey, Set};
        let cases = [
            ("Pod", "spec.volumes", MergeByKey("name")),
            ("Pod", "spec.imagePullSecrets", MergeByKey("name")),
            ("Pod", "spec.hostAliases", MergeByKey("ip")),
            ("Pod", "spec.containers.env", MergeByKey("name")),
            ("Pod", "spec.containers.ports", MergeByKey("containerPort")),
            (
                "Pod",
                "spec.containers.volumeMounts",
                MergeByKey("mountPath"),
            ),
            (
                "Pod",
                "spec.containers.volumeDevices",
                MergeByKey("devicePath"),
            ),
            ("Pod", "spec.containers.envFrom", Atomic),
            ("Pod", "spec.containers.resizePolicy", Atomic),
            ("Pod", "spec.containers.args", Atomic),
            ("Pod", "spec.tolerations", Atomic),
            (
                "Pod",
                "spec.topologySpreadConstraints",
                MergeByKey("topologyKey"),
            ),
            ("Pod", "spec.resourceClaims", MergeByKey("name")),
            ("Pod", "spec.schedulingGates", MergeByKey("name")),
            ("Pod", "spec.readinessGates", Atomic),
            ("Pod", "spec.affinity.nodeAffinity", Atomic),
            ("Pod", "metadata.finalizers", Set),
            ("Pod", "metadata.ownerReferences", MergeByKey("uid")),
            ("Pod", "metadata.managedFields", Atomic),
            ("Pod", "status.conditions", MergeByKey("type")),
            ("Pod", "status.podIPs", MergeByKey("ip")),
            ("Pod", "status.containerStatuses", Atomic),
            ("Deployment", "spec.template.metadata.finalizers", Set),
            ("Deployment", "status.conditions", MergeByKey("type")),
            ("ReplicaSet", "status.conditions", MergeByKey("type")),
            (
                "ReplicationController",
                "status.conditions",
                MergeByKey("type"),
            ),
            ("Deployment", "spec.selector.matchExpressions", Atomic),
            ("Service", "spec.ports", MergeByKey("port")),
            ("Service", "spec.externalIPs", Atomic),
            ("Service", "status.conditions", MergeByKey("type")),
            ("Node", "status.conditions", MergeByKey("type")),
            ("Node", "status.addresses", MergeByKey("type")),
            ("Node", "status.images", Atomic),
            ("Node", "spec.taints", Atomic),
            ("Node", "spec.podCIDRs", Set),
            ("Namespace", "status.conditions", MergeByKey("type")),
            ("Namespace", "spec.finalizers", Atomic),
            ("Namespace", "metadata.finalizers", Set),
            ("Endpoints", "subsets", Atomic),
            ("Endpoints", "subsets.addresses", Atomic),
            ("Event", "metadata.finalizers", Set),
            ("Lease", "metadata.ownerReferences", MergeByKey("uid")),
            ("ServiceAccount", "secrets", MergeByKey("name")),
            ("Widget", "metadata.finalizers", Atomic),
            ("Pod", "", Atomic),
            ("Pod", "spec.containers.env.valueFrom", Atomic),
        ];
        for (kind, path, want) in cases {
            assert_eq!(list_strategy(kind, path), want, "{kind} {path}");
        }
    }

    // --- errors ---

    #[test]
    fn patch_must_be_an_object() {
        let err = patch_err("Pod", pod(), json!([1, 2]));
        assert_eq!(err, PatchError::NotAnObject("patch"));
        assert_eq!(
            err.to_string(),
            "invalid JSON document: the patch must be a JSON object"
        );
        let err = patch_err("Pod", json!("x"), json!({}));
        assert_eq!(err, PatchError::NotAnObject("original object"));
    }

    #[test]
    fn unknown_patch_directive_values_are_errors() {
        let err = patch_err("Pod", pod(), json!({"spec": {"$patch": "explode"}}));
        assert_eq!(
            err.to_string(),
            r#"unknown patch type: explode in map: {"$patch":"explode"}"#
        );
        let err = patch_err(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "app", "$patch": 7}]}}),
        );
        assert!(matches!(err, PatchError::UnknownPatchType { .. }), "{err}");
        let err = patch_err(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"$patch": "merge"}]}}),
        );
        assert_eq!(err, PatchError::MergeDirectiveInList);
        let err = patch_err(
            "Pod",
            pod(),
            json!({"spec": {"tolerations": [{"$patch": "bogus"}]}}),
        );
        assert!(matches!(err, PatchError::UnknownPatchType { .. }), "{err}");
    }

    #[test]
    fn merge_key_missing_is_an_error() {
        let err = patch_err(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"image": "x:1"}]}}),
        );
        assert_eq!(
            err.to_string(),
            r#"map: {"image":"x:1"} does not contain declared merge key: name"#
        );
        let err = patch_err(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"$patch": "delete"}]}}),
        );
        assert!(matches!(err, PatchError::MissingMergeKey { .. }), "{err}");
    }

    #[test]
    fn malformed_merge_lists_are_errors() {
        let err = patch_err("Pod", pod(), json!({"spec": {"containers": [["x"]]}}));
        assert_eq!(err, PatchError::ListOfLists);
        let err = patch_err("Pod", pod(), json!({"spec": {"containers": ["app"]}}));
        assert!(matches!(err, PatchError::MixedListTypes(_)), "{err}");
        let err = patch_err(
            "Pod",
            pod(),
            json!({"metadata": {"finalizers": [{"name": "x"}]}}),
        );
        assert!(matches!(err, PatchError::MixedListTypes(_)), "{err}");
        let mut original = pod();
        original["metadata"]["finalizers"] = json!([]);
        let err = patch_err(
            "Pod",
            original,
            json!({"metadata": {"finalizers": [{"name": "x"}]}}),
        );
        assert_eq!(err, PatchError::ObjectsWithoutMergeKey);
    }

    #[test]
    fn original_elements_without_merge_key_are_an_error() {
        let mut original = pod();
        original["spec"]["containers"] = json!([{"image": "nameless"}]);
        let err = patch_err(
            "Pod",
            original,
            json!({"spec": {"containers": [{"name": "x", "image": "x"}]}}),
        );
        assert!(matches!(err, PatchError::MissingMergeKey { .. }), "{err}");
    }

    #[test]
    fn empty_patch_changes_nothing() {
        assert_eq!(patch("Pod", pod(), json!({})), pod());
        assert_eq!(
            patch("Pod", pod(), json!({"spec": {"containers": []}})),
            pod(),
            "an empty merging list is a no-op"
        );
        assert_eq!(
            patch("Pod", pod(), json!({"spec": {"tolerations": []}}))["spec"]["tolerations"],
            json!([]),
            "an empty atomic list replaces"
        );
    }

    #[test]
    fn arbitrary_patches_never_panic() {
        // Every combination of a few hostile fragments at a few interesting places.
        let fragments = [
            json!(null),
            json!(1),
            json!("s"),
            json!([]),
            json!({}),
            json!([null]),
            json!([1, "a"]),
            json!([[1]]),
            json!([{"name": "app"}, {"name": "app"}]),
            json!([{"$patch": "delete"}]),
            json!([{"$patch": "replace"}, 3]),
            json!({"$patch": "replace"}),
            json!({"$patch": null}),
            json!({"$retainKeys": [1, null]}),
            json!({"$setElementOrder/containers": [1, {"name": 2}]}),
            json!({"$setElementOrder/x": null}),
            json!({"$deleteFromPrimitiveList/finalizers": [{"a": 1}]}),
            json!({"$deleteFromPrimitiveList/": []}),
            json!([{"containerPort": 80}, {"containerPort": 80.0}]),
        ];
        let places = [
            "spec",
            "containers",
            "finalizers",
            "env",
            "$setElementOrder/containers",
            "$setElementOrder/finalizers",
            "$retainKeys",
            "metadata",
        ];
        for kind in ["Pod", "Widget"] {
            for place in places {
                for fragment in &fragments {
                    let patches = [
                        json!({ place: fragment }),
                        json!({"spec": { place: fragment }}),
                        json!({"metadata": { place: fragment }}),
                        json!({"spec": {"containers": [{"name": "app", place: fragment}]}}),
                        json!({"spec": {"$setElementOrder/containers": fragment, "containers": fragment}}),
                    ];
                    for p in patches {
                        if let Ok(result) = apply_patch(kind, &pod(), &p) {
                            assert!(result.is_object());
                        }
                    }
                }
            }
        }
    }
}

//! Server-side printing: the `meta.k8s.io` **Table** form of list, get and watch responses.
//!
//! kubectl asks for it with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...` and
//! prints the columns the server chose (READY, STATUS, RESTARTS, AGE for pods; `-o wide`
//! shows the priority-1 columns too). The columns and cells follow kube-apiserver's printers
//! (`pkg/printers/internalversion/printers.go`), which always produce the wide columns: the
//! client hides what it does not want. Everything here is pure: JSON objects in, JSON out,
//! and no object shape (they come from users) makes it panic.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value, json};

/// The `meta.k8s.io` version of the Table a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableVersion {
    /// `meta.k8s.io/v1`, what current clients ask for first.
    V1,
    /// `meta.k8s.io/v1beta1`, still accepted for older clients.
    V1Beta1,
}

impl TableVersion {
    /// The `apiVersion` of the Table and of the PartialObjectMetadata in its rows.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::V1 => "meta.k8s.io/v1",
            Self::V1Beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// What each row carries besides its cells (the `includeObject` query parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object: `"object": null`.
    None,
    /// The object's metadata as a `PartialObjectMetadata` (the default; kubectl reads labels
    /// and names from it).
    Metadata,
    /// The whole object (kubectl asks for it with `--sort-by`).
    Object,
}

impl IncludeObject {
    /// Parse `includeObject`: absent or empty is `Metadata`; anything other than `None`,
    /// `Metadata` or `Object` is the error message of a 400 Bad Request, as Kubernetes says it.
    pub fn parse(q: Option<&str>) -> Result<Self, String> {
        match q.unwrap_or("") {
            "" | "Metadata" => Ok(Self::Metadata),
            "Object" => Ok(Self::Object),
            "None" => Ok(Self::None),
            other => Err(format!("unrecognized includeObject value: {other:?}")),
        }
    }
}

/// A Table for `objects` (each the full JSON object, as served) of resource `kind` ("Pod",
/// "Deployment", ...): kube-apiserver's columns for that kind, one row per object with `cells`
/// and `object` according to `include`, and `list_meta` (resourceVersion, continue, ...) as
/// the Table's metadata. Kinds without a printer get Kubernetes' default table (Name,
/// Created At). Ages are measured against the current time.
pub fn table(
    kind: &str,
    objects: &[Value],
    include: IncludeObject,
    version: TableVersion,
    list_meta: Value,
) -> Value {
    table_at(kind, objects, include, version, list_meta, Utc::now())
}

/// Drop a Table's column definitions, as Kubernetes does on every watch event after the
/// first (kubectl keeps the columns it was last given). They become `null`, as Go writes a
/// nil slice.
pub fn drop_column_definitions(table: &mut Value) {
    if let Some(table) = table.as_object_mut() {
        table.insert("columnDefinitions".into(), Value::Null);
    }
}

/// Kubernetes' `duration.HumanDuration`: about two significant figures ("45s", "3m10s",
/// "70m", "3h5m", "47h", "2d3h", "10d", "2y1d", "9y"); "0s" for up to two seconds in the
/// future (clock skew), `<invalid>` beyond.
pub fn human_duration(d: TimeDelta) -> String {
    // num_seconds truncates toward zero, as Go's int(d.Seconds()).
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// [`table`] with an explicit "now", so ages are deterministic in tests.
fn table_at(
    kind: &str,
    objects: &[Value],
    include: IncludeObject,
    version: TableVersion,
    list_meta: Value,
    now: DateTime<Utc>,
) -> Value {
    let printer = printer(kind);
    let columns: Vec<Value> = printer.columns.iter().map(Column::to_json).collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let row = (printer.row)(object, now);
            let mut json = Map::new();
            json.insert("cells".into(), Value::Array(row.cells));
            if let Some(conditions) = row.conditions {
                json.insert("conditions".into(), conditions);
            }
            json.insert("object".into(), row_object(object, include, version));
            Value::Object(json)
        })
        .collect();
    let metadata = match list_meta {
        Value::Object(meta) => Value::Object(meta),
        _ => json!({}),
    };
    json!({
        "kind": "Table",
        "apiVersion": version.api_version(),
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The `object` of a row, as `includeObject` asks.
fn row_object(object: &Value, include: IncludeObject, version: TableVersion) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => object.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": version.api_version(),
            "metadata": object.get("metadata").filter(|m| m.is_object()).cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Columns and printers
// ---------------------------------------------------------------------------------------

/// One column definition, as `metav1.TableColumnDefinition`.
struct Column {
    name: &'static str,
    /// OpenAPI type of the cells: "string", "integer", "date".
    type_: &'static str,
    format: &'static str,
    description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    priority: i32,
}

impl Column {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 1,
    }
}

const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: doc::NAME,
    priority: 0,
};
const AGE: Column = col("Age", "string", doc::CREATION_TIMESTAMP);
const CONTAINERS: Column = wide("Containers", "string", doc::CONTAINERS);
const IMAGES: Column = wide("Images", "string", doc::IMAGES);

/// What a printer makes of one object.
struct Row {
    cells: Vec<Value>,
    /// Row conditions (`Completed` for finished pods), omitted when empty.
    conditions: Option<Value>,
}

impl From<Vec<Value>> for Row {
    fn from(cells: Vec<Value>) -> Self {
        Self {
            cells,
            conditions: None,
        }
    }
}

/// Fills one row from an object, given "now" for ages.
type RowFn = fn(&Value, DateTime<Utc>) -> Row;

/// The columns of one kind and how to fill them from an object.
struct Printer {
    columns: &'static [Column],
    row: RowFn,
}

fn printer(kind: &str) -> Printer {
    let (columns, row): (&'static [Column], RowFn) = match kind {
        "Pod" => (POD_COLUMNS, pod_row),
        "Node" => (NODE_COLUMNS, node_row),
        "Namespace" => (NAMESPACE_COLUMNS, namespace_row),
        "Service" => (SERVICE_COLUMNS, service_row),
        "Endpoints" => (ENDPOINTS_COLUMNS, endpoints_row),
        "EndpointSlice" => (ENDPOINT_SLICE_COLUMNS, endpoint_slice_row),
        "ReplicationController" => (REPLICATION_CONTROLLER_COLUMNS, replication_controller_row),
        "ReplicaSet" => (REPLICA_SET_COLUMNS, replica_set_row),
        "Deployment" => (DEPLOYMENT_COLUMNS, deployment_row),
        "DaemonSet" => (DAEMON_SET_COLUMNS, daemon_set_row),
        "StatefulSet" => (STATEFUL_SET_COLUMNS, stateful_set_row),
        "ControllerRevision" => (CONTROLLER_REVISION_COLUMNS, controller_revision_row),
        "Job" => (JOB_COLUMNS, job_row),
        "CronJob" => (CRON_JOB_COLUMNS, cron_job_row),
        "PodDisruptionBudget" => (PDB_COLUMNS, pdb_row),
        "Event" => (EVENT_COLUMNS, event_row),
        "Lease" => (LEASE_COLUMNS, lease_row),
        "ConfigMap" => (CONFIG_MAP_COLUMNS, config_map_row),
        "Secret" => (SECRET_COLUMNS, secret_row),
        "ServiceAccount" => (SERVICE_ACCOUNT_COLUMNS, service_account_row),
        "PodTemplate" => (POD_TEMPLATE_COLUMNS, pod_template_row),
        "ResourceQuota" => (RESOURCE_QUOTA_COLUMNS, resource_quota_row),
        "Role" | "ClusterRole" => (ROLE_COLUMNS, role_row),
        "CertificateSigningRequest" => (CSR_COLUMNS, csr_row),
        "RoleBinding" | "ClusterRoleBinding" => (ROLE_BINDING_COLUMNS, role_binding_row),
        _ => (DEFAULT_COLUMNS, default_row),
    };
    Printer { columns, row }
}

// --- Pod -------------------------------------------------------------------------------

const POD_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", doc::POD_IP),
    wide("Node", "string", doc::NODE_NAME),
    wide("Nominated Node", "string", doc::NOMINATED_NODE_NAME),
    wide("Readiness Gates", "string", doc::READINESS_GATES),
];

/// kubectl's pod line: the display status is the most telling of the pod's reason, its
/// init containers' and containers' waiting/terminated reasons, and Terminating.
fn pod_row(pod: &Value, now: DateTime<Utc>) -> Row {
    let init_specs = arr(pod, "/spec/initContainers");
    // A restartable init container (a sidecar) counts as a container of the pod.
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| str_at(c, "/name") == name && str_at(c, "/restartPolicy") == "Always")
    };
    let sidecars = init_specs
        .iter()
        .filter(|c| str_at(c, "/restartPolicy") == "Always")
        .count();
    let total = arr(pod, "/spec/containers").len() + sidecars;
    let conditions = arr(pod, "/status/conditions");
    let condition_true = |type_: &str| {
        conditions
            .iter()
            .any(|c| str_at(c, "/type") == type_ && str_at(c, "/status") == "True")
    };

    let phase = str_at(pod, "/status/phase");
    let mut reason = match str_at(pod, "/status/reason") {
        "" => phase.to_string(),
        reason => reason.to_string(),
    };
    if conditions
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut ready = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;
    let mut initializing = false;
    let init_statuses = arr(pod, "/status/initContainerStatuses");
    for (i, status) in init_statuses.iter().enumerate() {
        let count = int_at(status, "/restartCount");
        let finished = time_at(status, "/lastState/terminated/finishedAt");
        let sidecar = is_sidecar(str_at(status, "/name"));
        restarts += count;
        last_restart = later(last_restart, finished);
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let terminated = obj_at(status, "/state/terminated");
        let waiting = obj_at(status, "/state/waiting");
        if terminated.is_some_and(|t| int_at(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && bool_at(status, "/started") {
            if bool_at(status, "/ready") {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match str_at(t, "/reason") {
                "" if int_at(t, "/signal") != 0 => format!("Init:Signal:{}", int_at(t, "/signal")),
                "" => format!("Init:ExitCode:{}", int_at(t, "/exitCode")),
                why => format!("Init:{why}"),
            }
        } else if let Some(why) = waiting
            .map(|w| str_at(w, "/reason"))
            .filter(|why| !why.is_empty() && *why != "PodInitializing")
        {
            format!("Init:{why}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true("Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += int_at(status, "/restartCount");
            last_restart = later(
                last_restart,
                time_at(status, "/lastState/terminated/finishedAt"),
            );
            let waiting = obj_at(status, "/state/waiting").map(|w| str_at(w, "/reason"));
            let terminated = obj_at(status, "/state/terminated");
            if let Some(why) = waiting.filter(|why| !why.is_empty()) {
                reason = why.to_string();
            } else if let Some(t) = terminated {
                reason = match str_at(t, "/reason") {
                    "" if int_at(t, "/signal") != 0 => format!("Signal:{}", int_at(t, "/signal")),
                    "" => format!("ExitCode:{}", int_at(t, "/exitCode")),
                    why => why.to_string(),
                };
            } else if bool_at(status, "/ready") && obj_at(status, "/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed but another still runs is not Completed.
        if reason == "Completed" && has_running {
            reason = if condition_true("Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    let deleting = !pod
        .pointer("/metadata/deletionTimestamp")
        .unwrap_or(&Value::Null)
        .is_null();
    if deleting && str_at(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts = match last_restart {
        Some(at) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(at), now)),
        _ => restarts.to_string(),
    };

    let mut pod_ip = arr(pod, "/status/podIPs")
        .first()
        .map(|ip| str_at(ip, "/ip"))
        .unwrap_or("");
    if pod_ip.is_empty() {
        pod_ip = str_at(pod, "/status/podIP");
    }
    let gates = arr(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let passed = gates
            .iter()
            .filter(|gate| {
                let wanted = str_at(gate, "/conditionType");
                conditions
                    .iter()
                    .find(|c| str_at(c, "/type") == wanted)
                    .is_some_and(|c| str_at(c, "/status") == "True")
            })
            .count();
        format!("{passed}/{}", gates.len())
    };

    let conditions = match phase {
        "Succeeded" => Some(completed_condition(
            "Succeeded",
            "The pod has completed successfully.",
        )),
        "Failed" => Some(completed_condition("Failed", "The pod failed.")),
        _ => None,
    };
    Row {
        cells: vec![
            json!(name(pod)),
            json!(format!("{ready}/{total}")),
            json!(reason),
            json!(restarts),
            json!(age(pod, now)),
            json!(or_none(pod_ip)),
            json!(or_none(str_at(pod, "/spec/nodeName"))),
            json!(or_none(str_at(pod, "/status/nominatedNodeName"))),
            json!(readiness_gates),
        ],
        conditions,
    }
}

fn completed_condition(reason: &str, message: &str) -> Value {
    json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}])
}

// --- Node ------------------------------------------------------------------------------

const NODE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", doc::KUBELET_VERSION),
    wide("Internal-IP", "string", doc::NODE_ADDRESSES),
    wide("External-IP", "string", doc::NODE_ADDRESSES),
    wide("OS-Image", "string", doc::OS_IMAGE),
    wide("Kernel-Version", "string", doc::KERNEL_VERSION),
    wide(
        "Container-Runtime",
        "string",
        doc::CONTAINER_RUNTIME_VERSION,
    ),
];

fn node_row(node: &Value, now: DateTime<Utc>) -> Row {
    // The last Ready condition wins, as Go's map of conditions by type.
    let mut status: Vec<&str> = arr(node, "/status/conditions")
        .iter()
        .rfind(|c| str_at(c, "/type") == "Ready")
        .map(|c| {
            if str_at(c, "/status") == "True" {
                "Ready"
            } else {
                "NotReady"
            }
        })
        .into_iter()
        .collect();
    if status.is_empty() {
        status.push("Unknown");
    }
    if bool_at(node, "/spec/unschedulable") {
        status.push("SchedulingDisabled");
    }

    let mut roles = BTreeSet::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if key == "kubernetes.io/role"
                && let Some(role) = value.as_str().filter(|r| !r.is_empty())
            {
                roles.insert(role.to_string());
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };

    let address = |type_: &str| {
        arr(node, "/status/addresses")
            .iter()
            .find(|a| str_at(a, "/type") == type_)
            .map(|a| str_at(a, "/address"))
            .unwrap_or("<none>")
    };
    let info = |field: &str| match str_at(node, &format!("/status/nodeInfo/{field}")) {
        "" => "<unknown>",
        value => value,
    };
    Row::from(vec![
        json!(name(node)),
        json!(status.join(",")),
        json!(roles),
        json!(age(node, now)),
        json!(str_at(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ])
}

// --- Namespace -------------------------------------------------------------------------

const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

fn namespace_row(namespace: &Value, now: DateTime<Utc>) -> Row {
    Row::from(vec![
        json!(name(namespace)),
        json!(str_at(namespace, "/status/phase")),
        json!(age(namespace, now)),
    ])
}

// --- Service ---------------------------------------------------------------------------

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", doc::SERVICE_TYPE),
    col("Cluster-IP", "string", doc::CLUSTER_IP),
    col("External-IP", "string", doc::EXTERNAL_IPS),
    col("Port(s)", "string", doc::SERVICE_PORTS),
    AGE,
    wide("Selector", "string", doc::SERVICE_SELECTOR),
];

fn service_row(service: &Value, now: DateTime<Utc>) -> Row {
    let type_ = str_at(service, "/spec/type");
    let mut cluster_ip = arr(service, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or("");
    if cluster_ip.is_empty() {
        cluster_ip = str_at(service, "/spec/clusterIP");
    }
    let ports = arr(service, "/spec/ports")
        .iter()
        .map(|port| {
            // An unset protocol is TCP, as defaulting makes it.
            let protocol = match str_at(port, "/protocol") {
                "" => "TCP",
                protocol => protocol,
            };
            match int_at(port, "/nodePort") {
                node_port if node_port > 0 => {
                    format!("{}:{node_port}/{protocol}", int_at(port, "/port"))
                }
                _ => format!("{}/{protocol}", int_at(port, "/port")),
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    Row::from(vec![
        json!(name(service)),
        json!(type_),
        json!(or_none(cluster_ip)),
        json!(service_external_ip(service, type_)),
        json!(or_none(&ports)),
        json!(age(service, now)),
        json!(format_labels(service.pointer("/spec/selector"))),
    ])
}

fn service_external_ip(service: &Value, type_: &str) -> String {
    let external_ips: Vec<&str> = arr(service, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match type_ {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".into(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            // Sorted and unique, as Go's sets.String; never clipped (the server prints wide).
            let ingress: BTreeSet<&str> = arr(service, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match str_at(i, "/ip") {
                    "" => str_at(i, "/hostname"),
                    ip => ip,
                })
                .filter(|a| !a.is_empty())
                .collect();
            let all: Vec<&str> = ingress.into_iter().chain(external_ips).collect();
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(service, "/spec/externalName").into(),
        _ => "<unknown>".into(),
    }
}

// --- Endpoints -------------------------------------------------------------------------

const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    col("Endpoints", "string", doc::ENDPOINTS_SUBSETS),
    AGE,
];

fn endpoints_row(endpoints: &Value, now: DateTime<Utc>) -> Row {
    Row::from(vec![
        json!(name(endpoints)),
        json!(format_endpoints(endpoints)),
        json!(age(endpoints, now)),
    ])
}

/// `ip:port` of every ready address and port, the first three and "+ N more...".
fn format_endpoints(endpoints: &Value) -> String {
    const MAX: usize = 3;
    let subsets = arr(endpoints, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for subset in subsets {
        let addresses = arr(subset, "/addresses");
        let ports = arr(subset, "/ports");
        if ports.is_empty() {
            // A headless service may have no ports.
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(address, "/ip").to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(
                    str_at(address, "/ip"),
                    int_at(port, "/port"),
                ));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count.saturating_sub(MAX))
    } else {
        joined
    }
}

fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// --- ReplicationController, ReplicaSet, Deployment -------------------------------------

const REPLICATION_CONTROLLER_COLUMNS: &[Column] = &[
    NAME,
    col("Desired", "integer", doc::RC_SPEC_REPLICAS),
    col("Current", "integer", doc::RC_STATUS_REPLICAS),
    col("Ready", "integer", doc::RC_READY_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", doc::RC_SELECTOR),
];

fn replication_controller_row(rc: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = containers_and_images(rc);
    Row::from(vec![
        json!(name(rc)),
        json!(desired_replicas(rc)),
        json!(int_at(rc, "/status/replicas")),
        json!(int_at(rc, "/status/readyReplicas")),
        json!(age(rc, now)),
        json!(names),
        json!(images),
        json!(format_labels(rc.pointer("/spec/selector"))),
    ])
}

const REPLICA_SET_COLUMNS: &[Column] = &[
    NAME,
    col("Desired", "integer", doc::RS_SPEC_REPLICAS),
    col("Current", "integer", doc::RS_STATUS_REPLICAS),
    col("Ready", "integer", doc::RS_READY_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", doc::RS_SELECTOR),
];

fn replica_set_row(rs: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = containers_and_images(rs);
    let selector = match label_selector(rs.pointer("/spec/selector")) {
        Ok(selector) if selector.is_empty() => "<none>".to_string(),
        Ok(selector) => selector,
        Err(()) => "<error>".to_string(),
    };
    Row::from(vec![
        json!(name(rs)),
        json!(desired_replicas(rs)),
        json!(int_at(rs, "/status/replicas")),
        json!(int_at(rs, "/status/readyReplicas")),
        json!(age(rs, now)),
        json!(names),
        json!(images),
        json!(selector),
    ])
}

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", doc::DEPLOYMENT_UPDATED_REPLICAS),
    col("Available", "string", doc::DEPLOYMENT_AVAILABLE_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", doc::DEPLOYMENT_SELECTOR),
];

fn deployment_row(deployment: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = containers_and_images(deployment);
    let selector = label_selector(deployment.pointer("/spec/selector"))
        .unwrap_or_else(|()| "<invalid>".into());
    Row::from(vec![
        json!(name(deployment)),
        json!(format!(
            "{}/{}",
            int_at(deployment, "/status/readyReplicas"),
            desired_replicas(deployment)
        )),
        json!(int_at(deployment, "/status/updatedReplicas")),
        json!(int_at(deployment, "/status/availableReplicas")),
        json!(age(deployment, now)),
        json!(names),
        json!(images),
        json!(selector),
    ])
}

// --- DaemonSet -------------------------------------------------------------------------

const DAEMON_SET_COLUMNS: &[Column] = &[
    NAME,
    col("Desired", "integer", doc::DS_DESIRED),
    col("Current", "integer", doc::DS_CURRENT),
    col("Ready", "integer", doc::DS_READY),
    col("Up-to-date", "integer", doc::DS_UPDATED),
    col("Available", "integer", doc::DS_AVAILABLE),
    col("Node Selector", "string", doc::NODE_SELECTOR),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", doc::DS_SELECTOR),
];

fn daemon_set_row(ds: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = containers_and_images(ds);
    let selector = match label_selector(ds.pointer("/spec/selector")) {
        Ok(selector) if selector.is_empty() => "<none>".to_string(),
        Ok(selector) => selector,
        Err(()) => "<error>".to_string(),
    };
    Row::from(vec![
        json!(name(ds)),
        json!(int_at(ds, "/status/desiredNumberScheduled")),
        json!(int_at(ds, "/status/currentNumberScheduled")),
        json!(int_at(ds, "/status/numberReady")),
        json!(int_at(ds, "/status/updatedNumberScheduled")),
        json!(int_at(ds, "/status/numberAvailable")),
        json!(format_labels(
            ds.pointer("/spec/template/spec/nodeSelector")
        )),
        json!(age(ds, now)),
        json!(names),
        json!(images),
        json!(selector),
    ])
}

// --- StatefulSet -----------------------------------------------------------------------

const STATEFUL_SET_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

fn stateful_set_row(sts: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = containers_and_images(sts);
    Row::from(vec![
        json!(name(sts)),
        json!(format!(
            "{}/{}",
            int_at(sts, "/status/readyReplicas"),
            desired_replicas(sts)
        )),
        json!(age(sts, now)),
        json!(names),
        json!(images),
    ])
}

// --- ControllerRevision ----------------------------------------------------------------

const CONTROLLER_REVISION_COLUMNS: &[Column] = &[
    NAME,
    col("Controller", "string", "Controller of the object"),
    col("Revision", "integer", doc::CONTROLLER_REVISION_REVISION),
    AGE,
];

fn controller_revision_row(revision: &Value, now: DateTime<Utc>) -> Row {
    // `<kind>.<group>/<name>` of its controller, as kubectl's printer writes it.
    let controller = arr(revision, "/metadata/ownerReferences")
        .iter()
        .find(|owner| owner.pointer("/controller").and_then(Value::as_bool) == Some(true))
        .map_or_else(
            || "<none>".to_string(),
            |owner| {
                let group = str_at(owner, "/apiVersion")
                    .rsplit_once('/')
                    .map_or("", |(group, _)| group);
                let kind = str_at(owner, "/kind").to_lowercase();
                let kind = if group.is_empty() {
                    kind
                } else {
                    format!("{kind}.{group}")
                };
                format!("{kind}/{}", str_at(owner, "/name"))
            },
        );
    Row::from(vec![
        json!(name(revision)),
        json!(controller),
        json!(int_at(revision, "/revision")),
        json!(age(revision, now)),
    ])
}

/// `spec.replicas`, which defaulting sets to 1 when absent.
fn desired_replicas(object: &Value) -> i64 {
    object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// The pod template's container names and images, each comma-separated.
fn containers_and_images(object: &Value) -> (String, String) {
    let containers = arr(object, "/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    (names.join(","), images.join(","))
}

// --- EndpointSlice ---------------------------------------------------------------------

const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    col("AddressType", "string", doc::ENDPOINT_SLICE_ADDRESS_TYPE),
    col("Ports", "string", doc::ENDPOINT_SLICE_PORTS),
    col("Endpoints", "string", doc::ENDPOINT_SLICE_ENDPOINTS),
    AGE,
];

/// kubectl's endpointslice row: the first 3 ports (a port without a number by its name, `*`
/// without either) and addresses, then `+ N more...`; `<unset>` for none.
fn endpoint_slice_row(slice: &Value, now: DateTime<Utc>) -> Row {
    let ports: Vec<String> = arr(slice, "/ports")
        .iter()
        .map(|port| match port.get("port").and_then(Value::as_i64) {
            Some(number) => number.to_string(),
            None => port
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| String::from("*"), str::to_owned),
        })
        .collect();
    let addresses: Vec<String> = arr(slice, "/endpoints")
        .iter()
        .flat_map(|endpoint| arr(endpoint, "/addresses"))
        .filter_map(|address| address.as_str().map(str::to_owned))
        .collect();
    Row::from(vec![
        json!(name(slice)),
        json!(str_at(slice, "/addressType")),
        json!(first_three(&ports)),
        json!(first_three(&addresses)),
        json!(age(slice, now)),
    ])
}

/// kubectl's `listWithMoreString` with 3 shown.
fn first_three(items: &[String]) -> String {
    match items.len() {
        0 => String::from("<unset>"),
        n if n > 3 => format!("{} + {} more...", items[..3].join(","), n - 3),
        _ => items.join(","),
    }
}

// --- Job -------------------------------------------------------------------------------

const JOB_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", doc::JOB_SUCCEEDED),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", doc::JOB_SELECTOR),
];

/// kubectl's job row: the first of Complete, Failed, Terminating, Suspended, FailureTarget,
/// SuccessCriteriaMet that holds, else Running; `succeeded/completions` (`n/1 of p` for a
/// Job with parallelism only); how long it ran.
fn job_row(job: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = containers_and_images(job);
    let selector = match label_selector(job.pointer("/spec/selector")) {
        Ok(selector) if selector.is_empty() => "<none>".to_string(),
        Ok(selector) => selector,
        Err(()) => "<error>".to_string(),
    };
    let holds = |condition: &str| {
        arr(job, "/status/conditions")
            .iter()
            .any(|c| str_at(c, "/type") == condition && str_at(c, "/status") == "True")
    };
    let status = if holds("Complete") {
        "Complete"
    } else if holds("Failed") {
        "Failed"
    } else if obj_at(job, "/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if holds("Suspended") {
        "Suspended"
    } else if holds("FailureTarget") {
        "FailureTarget"
    } else if holds("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let succeeded = int_at(job, "/status/succeeded");
    let completions = match job.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match int_at(job, "/spec/parallelism") {
            parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time_at(job, "/status/startTime"),
        time_at(job, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    Row::from(vec![
        json!(name(job)),
        json!(status),
        json!(completions),
        json!(duration),
        json!(age(job, now)),
        json!(names),
        json!(images),
        json!(selector),
    ])
}

// --- CronJob ---------------------------------------------------------------------------

const CRON_JOB_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Schedule",
        "string",
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    col(
        "Timezone",
        "string",
        "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones",
    ),
    col(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.",
    ),
    col(
        "Active",
        "integer",
        "A list of pointers to currently running jobs.",
    ),
    col(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
    wide(
        "Containers",
        "string",
        "Names of each container in the template.",
    ),
    wide(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    ),
    wide(
        "Selector",
        "string",
        "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    ),
];

/// kubectl's cronjob row (the template's containers under `spec.jobTemplate.spec`).
fn cron_job_row(cron_job: &Value, now: DateTime<Utc>) -> Row {
    let containers = arr(cron_job, "/spec/jobTemplate/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    let selector = match label_selector(cron_job.pointer("/spec/jobTemplate/spec/selector")) {
        Ok(selector) if selector.is_empty() => "<none>".to_string(),
        Ok(selector) => selector,
        Err(()) => "<error>".to_string(),
    };
    let last = match time_at(cron_job, "/status/lastScheduleTime") {
        Some(at) => human_duration(now - at),
        None => "<none>".to_string(),
    };
    Row::from(vec![
        json!(name(cron_job)),
        json!(str_at(cron_job, "/spec/schedule")),
        json!(or_none(str_at(cron_job, "/spec/timeZone"))),
        // kubectl's printBoolPtr.
        json!(
            match cron_job.pointer("/spec/suspend").and_then(Value::as_bool) {
                Some(true) => "True",
                Some(false) => "False",
                None => "<unset>",
            }
        ),
        json!(arr(cron_job, "/status/active").len()),
        json!(last),
        json!(age(cron_job, now)),
        json!(names.join(",")),
        json!(images.join(",")),
        json!(selector),
    ])
}

// --- PodDisruptionBudget ---------------------------------------------------------------

const PDB_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Min Available",
        "string",
        "An eviction is allowed if at least \"minAvailable\" pods selected by \"selector\" will still be available after the eviction, i.e. even in the absence of the evicted pod.  So for example you can prevent all voluntary evictions by specifying \"100%\".",
    ),
    col(
        "Max Unavailable",
        "string",
        "An eviction is allowed if at most \"maxUnavailable\" pods selected by \"selector\" are unavailable after the eviction, i.e. even in absence of the evicted pod. For example, one can prevent all voluntary evictions by specifying 0. This is a mutually exclusive setting with \"minAvailable\".",
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "Number of pod disruptions that are currently allowed.",
    ),
    AGE,
];

/// kubectl's poddisruptionbudget row: `N/A` for the bound not set.
fn pdb_row(pdb: &Value, now: DateTime<Utc>) -> Row {
    let bound = |pointer: &str| match pdb.pointer(pointer) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::from("N/A"),
    };
    Row::from(vec![
        json!(name(pdb)),
        json!(bound("/spec/minAvailable")),
        json!(bound("/spec/maxUnavailable")),
        json!(int_at(pdb, "/status/disruptionsAllowed")),
        json!(age(pdb, now)),
    ])
}

// --- Event -----------------------------------------------------------------------------

const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", doc::EVENT_LAST_TIMESTAMP),
    col("Type", "string", doc::EVENT_TYPE),
    col("Reason", "string", doc::EVENT_REASON),
    col("Object", "string", doc::EVENT_INVOLVED_OBJECT),
    wide("Subobject", "string", doc::EVENT_FIELD_PATH),
    wide("Source", "string", doc::EVENT_SOURCE),
    col("Message", "string", doc::EVENT_MESSAGE),
    wide("First Seen", "string", doc::EVENT_FIRST_TIMESTAMP),
    wide("Count", "string", doc::EVENT_COUNT),
    Column {
        priority: 1,
        ..NAME
    },
];

fn event_row(event: &Value, now: DateTime<Utc>) -> Row {
    let first_seen = match time_at(event, "/firstTimestamp") {
        Some(at) => since(Some(at), now),
        None => since(time_at(event, "/eventTime"), now),
    };
    let mut last_seen = match time_at(event, "/lastTimestamp") {
        Some(at) => since(Some(at), now),
        None => first_seen.clone(),
    };
    let mut count = int_at(event, "/count");
    if let Some(series) = obj_at(event, "/series") {
        last_seen = since(time_at(series, "/lastObservedTime"), now);
        count = int_at(series, "/count");
    } else if count == 0 {
        // Singleton events of the events.k8s.io API have no count.
        count = 1;
    }
    let kind = str_at(event, "/involvedObject/kind").to_lowercase();
    let target = match str_at(event, "/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let component = first_non_empty(
        str_at(event, "/source/component"),
        str_at(event, "/reportingComponent"),
    );
    let instance = first_non_empty(
        str_at(event, "/source/host"),
        str_at(event, "/reportingInstance"),
    );
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    Row::from(vec![
        json!(last_seen),
        json!(str_at(event, "/type")),
        json!(str_at(event, "/reason")),
        json!(target),
        json!(str_at(event, "/involvedObject/fieldPath")),
        json!(source),
        json!(str_at(event, "/message").trim()),
        json!(first_seen),
        json!(count),
        json!(name(event)),
    ])
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

// --- Lease -----------------------------------------------------------------------------

const LEASE_COLUMNS: &[Column] = &[NAME, col("Holder", "string", doc::LEASE_HOLDER), AGE];

fn lease_row(lease: &Value, now: DateTime<Utc>) -> Row {
    Row::from(vec![
        json!(name(lease)),
        json!(str_at(lease, "/spec/holderIdentity")),
        json!(age(lease, now)),
    ])
}

// --- CertificateSigningRequest -------------------------------------------------------------

const CSR_COLUMNS: &[Column] = &[
    NAME,
    AGE,
    col(
        "SignerName",
        "string",
        "Name of the signer that will sign the certificate.",
    ),
    col(
        "Requestor",
        "string",
        "Name of the user who made the request.",
    ),
    col(
        "RequestedDuration",
        "string",
        "The requested lifetime of the certificate.",
    ),
    col(
        "Condition",
        "string",
        "The approval status and whether the certificate is issued.",
    ),
];

fn csr_row(csr: &Value, now: DateTime<Utc>) -> Row {
    let mut conditions: Vec<String> = arr(csr, "/status/conditions")
        .iter()
        .map(|c| str_at(c, "/type").to_owned())
        .collect();
    if conditions.is_empty() {
        conditions.push("Pending".into());
    }
    if !str_at(csr, "/status/certificate").is_empty() {
        conditions.push("Issued".into());
    }
    let duration = csr
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .map_or_else(|| "<none>".to_owned(), since_seconds);
    Row::from(vec![
        json!(name(csr)),
        json!(age(csr, now)),
        json!(str_at(csr, "/spec/signerName")),
        json!(str_at(csr, "/spec/username")),
        json!(duration),
        json!(conditions.join(",")),
    ])
}

/// A duration in seconds as kubectl writes ages (`10m`, `24h`).
fn since_seconds(seconds: i64) -> String {
    let now = Utc::now();
    since(
        Some(skiff_api::time::plus_seconds(now, seconds.saturating_neg())),
        now,
    )
}

// --- Role, ClusterRole, RoleBinding, ClusterRoleBinding ------------------------------------

const ROLE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Created At",
        "date",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
];

fn role_row(role: &Value, _now: DateTime<Utc>) -> Row {
    Row::from(vec![
        json!(name(role)),
        json!(str_at(role, "/metadata/creationTimestamp")),
    ])
}

const ROLE_BINDING_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Role",
        "string",
        "RoleRef is the reference to the role the binding grants.",
    ),
    AGE,
    wide("Users", "string", "Users in the binding."),
    wide("Groups", "string", "Groups in the binding."),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the binding.",
    ),
];

fn role_binding_row(binding: &Value, now: DateTime<Utc>) -> Row {
    let subjects = arr(binding, "/subjects");
    let of_kind = |kind: &str| {
        subjects
            .iter()
            .filter(|s| str_at(s, "/kind") == kind)
            .map(|s| match (kind, str_at(s, "/namespace")) {
                ("ServiceAccount", ns) => format!("{ns}/{}", str_at(s, "/name")),
                _ => str_at(s, "/name").to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Row::from(vec![
        json!(name(binding)),
        json!(format!(
            "{}/{}",
            str_at(binding, "/roleRef/kind"),
            str_at(binding, "/roleRef/name")
        )),
        json!(age(binding, now)),
        json!(of_kind("User")),
        json!(of_kind("Group")),
        json!(of_kind("ServiceAccount")),
    ])
}

// --- ConfigMap, Secret, ServiceAccount ---------------------------------------------------

/// The number of entries of the maps at `pointers` together.
fn entries(object: &Value, pointers: &[&str]) -> usize {
    pointers
        .iter()
        .filter_map(|p| object.pointer(p))
        .filter_map(Value::as_object)
        .map(|m| m.len())
        .sum()
}

const CONFIG_MAP_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Data",
        "integer",
        "Number of entries in data and binaryData.",
    ),
    AGE,
];

fn config_map_row(cm: &Value, now: DateTime<Utc>) -> Row {
    Row::from(vec![
        json!(name(cm)),
        json!(entries(cm, &["/data", "/binaryData"])),
        json!(age(cm, now)),
    ])
}

const SECRET_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", "The type of the secret."),
    col("Data", "integer", "Number of entries in data."),
    AGE,
];

fn secret_row(secret: &Value, now: DateTime<Utc>) -> Row {
    Row::from(vec![
        json!(name(secret)),
        json!(str_at(secret, "/type")),
        json!(entries(secret, &["/data"])),
        json!(age(secret, now)),
    ])
}

const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Secrets",
        "integer",
        "Number of secrets of the service account.",
    ),
    AGE,
];

fn service_account_row(sa: &Value, now: DateTime<Utc>) -> Row {
    let secrets = sa
        .pointer("/secrets")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    Row::from(vec![json!(name(sa)), json!(secrets), json!(age(sa, now))])
}

// --- PodTemplate, ResourceQuota ------------------------------------------------------------

const POD_TEMPLATE_COLUMNS: &[Column] = &[
    NAME,
    col("Containers", "string", doc::CONTAINERS),
    col("Images", "string", doc::IMAGES),
    col("Pod Labels", "string", "The labels for the pod template."),
];

fn pod_template_row(template: &Value, _now: DateTime<Utc>) -> Row {
    let containers = arr(template, "/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    Row::from(vec![
        json!(name(template)),
        json!(names.join(",")),
        json!(images.join(",")),
        json!(format_labels(template.pointer("/template/metadata/labels"))),
    ])
}

const RESOURCE_QUOTA_COLUMNS: &[Column] = &[
    NAME,
    AGE,
    col(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    col(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
];

/// A quantity of a quota's status in its canonical form (`0` when absent; as written when it
/// does not parse).
fn quota_quantity(quota: &Value, pointer: &str) -> String {
    match quota.pointer(pointer).and_then(Value::as_str) {
        None => "0".into(),
        Some(q) => skiff_api::quantity::ParsedQuantity::parse(q)
            .map_or_else(|_| q.to_owned(), |p| p.to_string()),
    }
}

/// `resource: used/hard` of every hard limit, sorted by resource: `limits.*` in the Limit
/// column, the rest in the Request column.
fn resource_quota_row(quota: &Value, now: DateTime<Utc>) -> Row {
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    let hard = quota
        .pointer("/status/hard")
        .and_then(Value::as_object)
        .map(|hard| hard.keys().collect::<BTreeSet<_>>())
        .unwrap_or_default();
    for resource in hard {
        let escaped = resource.replace('~', "~0").replace('/', "~1");
        let entry = format!(
            "{resource}: {}/{}",
            quota_quantity(quota, &format!("/status/used/{escaped}")),
            quota_quantity(quota, &format!("/status/hard/{escaped}")),
        );
        if resource.split('.').next() == Some("limits") && resource.contains('.') {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    Row::from(vec![
        json!(name(quota)),
        json!(age(quota, now)),
        json!(requests.join(", ")),
        json!(limits.join(", ")),
    ])
}

// --- Any other kind ----------------------------------------------------------------------

/// kube-apiserver's default table (`rest.NewDefaultTableConvertor`): name and creation time.
const DEFAULT_COLUMNS: &[Column] = &[NAME, col("Created At", "date", doc::CREATION_TIMESTAMP)];

fn default_row(object: &Value, _now: DateTime<Utc>) -> Row {
    let created = time_at(object, "/metadata/creationTimestamp")
        .map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
    Row::from(vec![json!(name(object)), json!(created)])
}

// ---------------------------------------------------------------------------------------
// Reading objects that may have any shape
// ---------------------------------------------------------------------------------------

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int_at(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn bool_at(value: &Value, pointer: &str) -> bool {
    value
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn arr<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A nested object, if present and an object (Go's non-nil pointer).
fn obj_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a Value> {
    value.pointer(pointer).filter(|v| v.is_object())
}

/// A timestamp; absent, unparsable and Go's zero time are all `None` (Go's `IsZero`).
fn time_at(value: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    /// Go's zero `time.Time`, 0001-01-01T00:00:00Z, in Unix seconds.
    const GO_ZERO_TIME: i64 = -62_135_596_800;
    let at = DateTime::parse_from_rfc3339(str_at(value, pointer))
        .ok()?
        .with_timezone(&Utc);
    (at.timestamp() != GO_ZERO_TIME || at.timestamp_subsec_nanos() != 0).then_some(at)
}

fn later(
    current: Option<DateTime<Utc>>,
    candidate: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (current, candidate) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn name(object: &Value) -> &str {
    str_at(object, "/metadata/name")
}

/// Time since a moment, as kubectl prints it; `<unknown>` when there is none.
fn since(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match at {
        Some(at) => human_duration(now - at),
        None => "<unknown>".into(),
    }
}

fn age(object: &Value, now: DateTime<Utc>) -> String {
    since(time_at(object, "/metadata/creationTimestamp"), now)
}

fn or_none(value: &str) -> &str {
    if value.is_empty() { "<none>" } else { value }
}

/// Go's `labels.FormatLabels`: `k=v` sorted by key, comma-separated; `<none>` when empty.
fn format_labels(labels: Option<&Value>) -> String {
    let pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

/// A `metav1.LabelSelector` as a selector string (`app=web,tier in (a,b),!legacy`),
/// requirements sorted by key as Go's `labels.Selector`; empty for a nil or empty selector,
/// `Err` for one Kubernetes would reject.
fn label_selector(selector: Option<&Value>) -> Result<String, ()> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Ok(String::new());
    };
    let selector = selector.as_object().ok_or(())?;
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").filter(|l| !l.is_null()) {
        for (key, value) in labels.as_object().ok_or(())? {
            let value = value.as_str().ok_or(())?;
            requirements.push((key.clone(), format!("{key}={value}")));
        }
    }
    if let Some(expressions) = selector.get("matchExpressions").filter(|e| !e.is_null()) {
        for expression in expressions.as_array().ok_or(())? {
            let key = str_at(expression, "/key");
            let mut values: Vec<&str> = arr(expression, "/values")
                .iter()
                .map(|v| v.as_str().ok_or(()))
                .collect::<Result<_, _>>()?;
            values.sort_unstable();
            let text = match str_at(expression, "/operator") {
                "In" | "NotIn" if values.is_empty() => return Err(()),
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" | "DoesNotExist" if !values.is_empty() => return Err(()),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => return Err(()),
            };
            if key.is_empty() {
                return Err(());
            }
            requirements.push((key.to_string(), text));
        }
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(","))
}

/// Column descriptions: the API field documentation kube-apiserver puts there (its
/// `SwaggerDoc()` strings).
mod doc {
    pub const NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
    pub const CREATION_TIMESTAMP: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
    pub const CONTAINERS: &str = "Names of each container in the template.";
    pub const IMAGES: &str = "Images referenced by each container in the template.";

    pub const POD_IP: &str = "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
    pub const NODE_NAME: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
    pub const NOMINATED_NODE_NAME: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
    pub const READINESS_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";

    pub const KUBELET_VERSION: &str = "Kubelet Version reported by the node.";
    pub const NODE_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
    pub const OS_IMAGE: &str =
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
    pub const KERNEL_VERSION: &str =
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
    pub const CONTAINER_RUNTIME_VERSION: &str = "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";

    pub const SERVICE_TYPE: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
    pub const CLUSTER_IP: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
    pub const EXTERNAL_IPS: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
    pub const SERVICE_PORTS: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
    pub const SERVICE_SELECTOR: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";

    pub const ENDPOINTS_SUBSETS: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";

    pub const RC_SPEC_REPLICAS: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
    pub const RC_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
    pub const RC_READY_REPLICAS: &str =
        "The number of ready replicas for this replication controller.";
    pub const RC_SELECTOR: &str = "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

    pub const RS_SPEC_REPLICAS: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller";
    pub const RS_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller";
    pub const RS_READY_REPLICAS: &str =
        "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition.";
    pub const RS_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

    pub const DS_DESIRED: &str = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
    pub const DS_CURRENT: &str = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
    pub const DS_READY: &str = "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.";
    pub const DS_UPDATED: &str = "The total number of nodes that are running updated daemon pod";
    pub const DS_AVAILABLE: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)";
    pub const NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
    pub const DS_SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
    pub const CONTROLLER_REVISION_REVISION: &str =
        "Revision indicates the revision of the state represented by Data.";
    pub const DEPLOYMENT_UPDATED_REPLICAS: &str = "Total number of non-terminated pods targeted by this deployment that have the desired template spec.";
    pub const DEPLOYMENT_AVAILABLE_REPLICAS: &str = "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.";
    pub const ENDPOINT_SLICE_ADDRESS_TYPE: &str = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported:\n* IPv4: Represents an IPv4 Address.\n* IPv6: Represents an IPv6 Address.\n* FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.";
    pub const ENDPOINT_SLICE_PORTS: &str = "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.";
    pub const ENDPOINT_SLICE_ENDPOINTS: &str = "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.";
    pub const JOB_SUCCEEDED: &str = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.";
    pub const JOB_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
    pub const DEPLOYMENT_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";

    pub const EVENT_LAST_TIMESTAMP: &str =
        "The time at which the most recent occurrence of this event was recorded.";
    pub const EVENT_TYPE: &str =
        "Type of this event (Normal, Warning), new types could be added in the future";
    pub const EVENT_REASON: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
    pub const EVENT_INVOLVED_OBJECT: &str = "The object that this event is about.";
    pub const EVENT_FIELD_PATH: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
    pub const EVENT_SOURCE: &str =
        "The component reporting this event. Should be a short machine understandable string.";
    pub const EVENT_MESSAGE: &str = "A human-readable description of the status of this operation.";
    pub const EVENT_FIRST_TIMESTAMP: &str =
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
    pub const EVENT_COUNT: &str = "The number of times this event has occurred.";

    pub const LEASE_HOLDER: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    /// An RFC 3339 timestamp `ago` before [`now`].
    fn ago(ago: TimeDelta) -> String {
        (now() - ago).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    fn rows(kind: &str, objects: &[Value]) -> Vec<Vec<Value>> {
        let table = table_at(
            kind,
            objects,
            IncludeObject::Metadata,
            TableVersion::V1,
            json!({}),
            now(),
        );
        table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["cells"].as_array().unwrap().clone())
            .collect()
    }

    fn cells(kind: &str, object: Value) -> Vec<Value> {
        rows(kind, &[object]).remove(0)
    }

    fn column_names(kind: &str) -> Vec<(String, i64)> {
        let table = table_at(
            kind,
            &[],
            IncludeObject::Metadata,
            TableVersion::V1,
            json!({}),
            now(),
        );
        table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["priority"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    const KINDS: &[&str] = &[
        "PodTemplate",
        "ResourceQuota",
        "Pod",
        "Node",
        "Namespace",
        "Service",
        "Endpoints",
        "ReplicationController",
        "ReplicaSet",
        "Deployment",
        "DaemonSet",
        "StatefulSet",
        "ControllerRevision",
        "Event",
        "Lease",
        "ConfigMap",
    ];

    // --- HumanDuration ---------------------------------------------------------------

    #[test]
    fn human_duration_matches_kubernetes() {
        let s = TimeDelta::seconds;
        let ms = TimeDelta::milliseconds;
        let h = TimeDelta::hours;
        let day = TimeDelta::days;
        let year = day(365);
        let cases = [
            (s(1), "1s"),
            (s(70), "70s"),
            (s(190), "3m10s"),
            (TimeDelta::minutes(70), "70m"),
            (h(47), "47h"),
            (h(49), "2d1h"),
            (h(8 * 24 + 2), "8d"),
            (h(367 * 24), "367d"),
            (h(365 * 2 * 24 + 25), "2y1d"),
            (h(365 * 8 * 24 + 2), "8y"),
            // Boundaries, from apimachinery's duration_test.go.
            (s(-2), "<invalid>"),
            (s(-2) + TimeDelta::nanoseconds(1), "0s"),
            (s(0), "0s"),
            (s(1) - ms(1), "0s"),
            (s(120) - ms(1), "119s"),
            (s(120), "2m"),
            (s(121), "2m1s"),
            (s(330), "5m30s"),
            (s(600) - ms(1), "9m59s"),
            (s(600), "10m"),
            (s(601), "10m"),
            (h(3) - ms(1), "179m"),
            (h(3), "3h"),
            (h(3) + TimeDelta::minutes(5), "3h5m"),
            (h(8) - ms(1), "7h59m"),
            (h(8), "8h"),
            (h(8) + TimeDelta::minutes(59), "8h"),
            (day(2) - ms(1), "47h"),
            (day(2), "2d"),
            (day(2) + h(3), "2d3h"),
            (day(8) - ms(1), "7d23h"),
            (day(8), "8d"),
            (day(10), "10d"),
            (year * 2 - ms(1), "729d"),
            (year * 2, "2y"),
            (year * 2 + day(1) - ms(1), "2y"),
            (year * 2 + day(1), "2y1d"),
            (year * 8 - ms(1), "7y364d"),
            (year * 8, "8y"),
            (year * 9, "9y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "HumanDuration({d})");
        }
    }

    #[test]
    fn include_object_parses_as_kubernetes() {
        assert_eq!(IncludeObject::parse(None), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse(Some("")), Ok(IncludeObject::Metadata));
        assert_eq!(
            IncludeObject::parse(Some("Metadata")),
            Ok(IncludeObject::Metadata)
        );
        assert_eq!(
            IncludeObject::parse(Some("Object")),
            Ok(IncludeObject::Object)
        );
        assert_eq!(IncludeObject::parse(Some("None")), Ok(IncludeObject::None));
        assert_eq!(
            IncludeObject::parse(Some("object")),
            Err("unrecognized includeObject value: \"object\"".to_string())
        );
    }

    // --- Table shape -----------------------------------------------------------------

    fn web_pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "uid": "6b1c0f0e-1",
                "resourceVersion": "42",
                "labels": {"app": "web"},
                "creationTimestamp": ago(TimeDelta::hours(1)),
            },
            "spec": {
                "nodeName": "node-1",
                "containers": [
                    {"name": "nginx", "image": "nginx:1.27"},
                    {"name": "sidecar", "image": "busybox"},
                ],
            },
            "status": {
                "phase": "Running",
                "podIP": "10.244.1.5",
                "podIPs": [{"ip": "10.244.1.5"}],
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "True"},
                    {"type": "PodScheduled", "status": "True"},
                ],
                "containerStatuses": [
                    {
                        "name": "nginx", "ready": true, "restartCount": 0,
                        "state": {"running": {"startedAt": ago(TimeDelta::hours(1))}},
                    },
                    {
                        "name": "sidecar", "ready": true, "restartCount": 3,
                        "state": {"running": {"startedAt": ago(TimeDelta::minutes(5))}},
                        "lastState": {"terminated": {
                            "exitCode": 1, "reason": "Error",
                            "finishedAt": ago(TimeDelta::minutes(5)),
                        }},
                    },
                ],
            },
        })
    }

    #[test]
    fn table_has_the_kubernetes_shape() {
        let table = table_at(
            "Pod",
            &[web_pod()],
            IncludeObject::Metadata,
            TableVersion::V1,
            json!({"resourceVersion": "42", "continue": "abc"}),
            now(),
        );
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            table["metadata"],
            json!({"resourceVersion": "42", "continue": "abc"})
        );
        assert_eq!(
            table["columnDefinitions"][0],
            json!({
                "name": "Name", "type": "string", "format": "name",
                "description": doc::NAME, "priority": 0,
            })
        );
        assert_eq!(
            table["columnDefinitions"][5],
            json!({
                "name": "IP", "type": "string", "format": "",
                "description": doc::POD_IP, "priority": 1,
            })
        );
        let row = &table["rows"][0];
        assert_eq!(
            row.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["cells", "object"],
            "no conditions on a running pod"
        );
        assert_eq!(
            row["object"],
            json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": web_pod()["metadata"],
            })
        );
    }

    #[test]
    fn include_object_and_version_shape_the_row_object() {
        let pod = web_pod();
        let object = |include, version| {
            table_at(
                "Pod",
                std::slice::from_ref(&pod),
                include,
                version,
                Value::Null,
                now(),
            )
        };
        let full = object(IncludeObject::Object, TableVersion::V1);
        assert_eq!(full["rows"][0]["object"], pod);
        assert_eq!(full["metadata"], json!({}), "no list metadata given");
        let none = object(IncludeObject::None, TableVersion::V1);
        assert_eq!(none["rows"][0]["object"], Value::Null);
        let beta = object(IncludeObject::Metadata, TableVersion::V1Beta1);
        assert_eq!(beta["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(
            beta["rows"][0]["object"]["apiVersion"],
            "meta.k8s.io/v1beta1"
        );
    }

    #[test]
    fn watch_events_after_the_first_drop_column_definitions() {
        let mut event = table_at(
            "Pod",
            &[web_pod()],
            IncludeObject::Metadata,
            TableVersion::V1,
            json!({"resourceVersion": "42"}),
            now(),
        );
        drop_column_definitions(&mut event);
        assert_eq!(event["columnDefinitions"], Value::Null);
        assert_eq!(event["rows"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn every_row_has_one_cell_per_column() {
        for kind in KINDS {
            let columns = column_names(kind).len();
            for object in [web_pod(), json!({}), json!({"metadata": {"name": "x"}})] {
                assert_eq!(cells(kind, object).len(), columns, "{kind}");
            }
        }
    }

    #[test]
    fn objects_of_any_shape_never_panic() {
        let shapes = [
            Value::Null,
            json!("pod"),
            json!(7),
            json!([]),
            json!({"metadata": null, "spec": null, "status": null}),
            json!({"metadata": {"name": 7, "creationTimestamp": "yesterday", "labels": [1],
                                "deletionTimestamp": 3},
                   "spec": {"containers": "nginx", "initContainers": [null, 1, {"name": 2}],
                            "replicas": "three", "selector": "app=web", "ports": [{"port": "80"}],
                            "type": 5, "clusterIPs": [null], "unschedulable": "yes",
                            "readinessGates": [{}], "template": []},
                   "status": {"phase": ["Running"], "containerStatuses": [null, {"state": []},
                              {"state": {"terminated": {"exitCode": "1", "signal": null}},
                               "lastState": {"terminated": {"finishedAt": 12}}}],
                              "initContainerStatuses": [{"state": {"waiting": {"reason": 1}}}],
                              "conditions": {"type": "Ready"}, "podIPs": [{"ip": null}],
                              "addresses": "10.0.0.1", "loadBalancer": {"ingress": [{}]},
                              "nodeInfo": []},
                   "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{}]}, null],
                   "involvedObject": 1, "series": {"count": "x"}, "source": []}),
        ];
        for kind in KINDS {
            let columns = column_names(kind).len();
            for shape in &shapes {
                for include in [
                    IncludeObject::None,
                    IncludeObject::Metadata,
                    IncludeObject::Object,
                ] {
                    let table = table_at(
                        kind,
                        std::slice::from_ref(shape),
                        include,
                        TableVersion::V1,
                        json!("not an object"),
                        now(),
                    );
                    assert_eq!(table["rows"][0]["cells"].as_array().unwrap().len(), columns);
                }
            }
        }
    }

    // --- Pod ---------------------------------------------------------------------------

    #[test]
    fn pod_columns_are_kubectls() {
        assert_eq!(
            column_names("Pod"),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1),
            ]
            .map(|(n, p)| (n.to_string(), p))
        );
    }

    #[test]
    fn running_pod_with_a_restarted_container() {
        assert_eq!(
            cells("Pod", web_pod()),
            json!([
                "web",
                "2/2",
                "Running",
                "3 (5m ago)",
                "60m",
                "10.244.1.5",
                "node-1",
                "<none>",
                "<none>"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
    }

    #[test]
    fn pending_pod_waits_for_a_node() {
        let pod = json!({
            "metadata": {"name": "pending", "creationTimestamp": ago(TimeDelta::seconds(45))},
            "spec": {"containers": [{"name": "app", "image": "app"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"},
            ]},
        });
        assert_eq!(
            cells("Pod", pod),
            [
                "pending", "0/1", "Pending", "0", "45s", "<none>", "<none>", "<none>", "<none>"
            ]
            .map(Value::from)
        );
    }

    #[test]
    fn pod_status_shows_container_reasons() {
        let pod = |statuses: Value| {
            json!({
                "metadata": {"name": "p", "creationTimestamp": ago(TimeDelta::days(3))},
                "spec": {"containers": [{"name": "a"}]},
                "status": {"phase": "Running", "containerStatuses": statuses},
            })
        };
        let crash = pod(json!([{
            "name": "a", "ready": false, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                         "finishedAt": ago(TimeDelta::seconds(90))}},
        }]));
        let c = cells("Pod", crash);
        assert_eq!(
            c[1..5],
            ["0/1", "CrashLoopBackOff", "5 (90s ago)", "3d"].map(Value::from)
        );

        let creating =
            pod(json!([{"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}}]));
        assert_eq!(cells("Pod", creating)[2], "ContainerCreating");

        let oom = pod(
            json!([{"name": "a", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]),
        );
        assert_eq!(cells("Pod", oom)[2], "OOMKilled");

        let signal =
            pod(json!([{"name": "a", "state": {"terminated": {"exitCode": 0, "signal": 9}}}]));
        assert_eq!(cells("Pod", signal)[2], "Signal:9");

        let exit = pod(json!([{"name": "a", "state": {"terminated": {"exitCode": 2}}}]));
        assert_eq!(cells("Pod", exit)[2], "ExitCode:2");

        // Restarts without a recorded termination time have no "ago".
        let restarted = pod(json!([{"name": "a", "ready": true, "restartCount": 2,
                                     "state": {"running": {}}}]));
        assert_eq!(
            cells("Pod", restarted)[1..4],
            ["1/1", "Running", "2"].map(Value::from)
        );
    }

    #[test]
    fn terminating_pod() {
        let mut pod = web_pod();
        pod["metadata"]["deletionTimestamp"] = json!(ago(TimeDelta::seconds(-30)));
        assert_eq!(cells("Pod", pod.clone())[2], "Terminating");
        // A pod on a lost node shows Unknown while it is deleted.
        pod["status"]["reason"] = json!("NodeLost");
        assert_eq!(cells("Pod", pod.clone())[2], "Unknown");
        // A finished pod stays finished while deleted.
        pod["status"]["reason"] = Value::Null;
        pod["status"]["phase"] = json!("Succeeded");
        pod["status"]["containerStatuses"] = json!([]);
        assert_eq!(cells("Pod", pod)[2], "Succeeded");
    }

    #[test]
    fn finished_pods_carry_the_completed_row_condition() {
        let pod = json!({
            "metadata": {"name": "job-x"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            ]},
        });
        let table = table_at(
            "Pod",
            &[pod],
            IncludeObject::None,
            TableVersion::V1,
            json!({}),
            now(),
        );
        let row = &table["rows"][0];
        assert_eq!(row["cells"][1], "0/1");
        assert_eq!(row["cells"][2], "Completed");
        assert_eq!(row["cells"][4], "<unknown>", "no creationTimestamp");
        assert_eq!(
            row["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}])
        );
        let failed = json!({"metadata": {"name": "f"}, "status": {"phase": "Failed"}});
        let table = table_at(
            "Pod",
            &[failed],
            IncludeObject::None,
            TableVersion::V1,
            json!({}),
            now(),
        );
        assert_eq!(table["rows"][0]["conditions"][0]["reason"], "Failed");
        assert_eq!(table["rows"][0]["cells"][2], "Failed");
    }

    #[test]
    fn completed_container_beside_a_running_one_is_running_or_not_ready() {
        let pod = |ready: &str| {
            json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"phase": "Running",
                           "conditions": [{"type": "Ready", "status": ready}],
                           "containerStatuses": [
                    {"name": "a", "ready": true, "state": {"running": {}}},
                    {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                ]},
            })
        };
        assert_eq!(
            cells("Pod", pod("True"))[1..3],
            ["1/2", "Running"].map(Value::from)
        );
        assert_eq!(cells("Pod", pod("False"))[2], "NotReady");
    }

    #[test]
    fn init_containers_show_progress_and_failures() {
        let pod = |init_statuses: Value| {
            json!({
                "metadata": {"name": "p"},
                "spec": {
                    "initContainers": [{"name": "migrate"}, {"name": "seed"}],
                    "containers": [{"name": "app"}],
                },
                "status": {"phase": "Pending", "initContainerStatuses": init_statuses},
            })
        };
        let first_running = pod(json!([
            {"name": "migrate", "state": {"running": {}}},
            {"name": "seed", "state": {"waiting": {"reason": "PodInitializing"}}},
        ]));
        assert_eq!(cells("Pod", first_running)[2], "Init:0/2");
        let second_running = pod(json!([
            {"name": "migrate", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "seed", "state": {"running": {}}},
        ]));
        assert_eq!(cells("Pod", second_running)[2], "Init:1/2");
        let crashing = pod(json!([
            {"name": "migrate", "restartCount": 4,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(TimeDelta::minutes(2))}}},
        ]));
        assert_eq!(
            cells("Pod", crashing)[2..4],
            ["Init:CrashLoopBackOff", "4 (2m ago)"].map(Value::from)
        );
        let failed = pod(json!([
            {"name": "migrate", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}},
        ]));
        assert_eq!(cells("Pod", failed)[2], "Init:Error");
        let exit = pod(json!([{"name": "migrate", "state": {"terminated": {"exitCode": 3}}}]));
        assert_eq!(cells("Pod", exit)[2], "Init:ExitCode:3");
    }

    #[test]
    fn sidecar_init_containers_count_as_containers() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                "containers": [{"name": "app"}],
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true,
                                           "restartCount": 1, "state": {"running": {}},
                                           "lastState": {"terminated": {"exitCode": 1,
                                               "finishedAt": ago(TimeDelta::hours(2))}}}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                                       "state": {"running": {}}}],
            },
        });
        assert_eq!(
            cells("Pod", pod)[1..4],
            ["2/2", "Running", "1 (120m ago)"].map(Value::from)
        );
    }

    #[test]
    fn pod_wide_columns() {
        let mut pod = web_pod();
        pod["status"]["podIPs"] = json!([{"ip": "10.244.1.5"}, {"ip": "fd00::5"}]);
        pod["status"]["nominatedNodeName"] = json!("node-2");
        pod["spec"]["readinessGates"] =
            json!([{"conditionType": "lb/ready"}, {"conditionType": "dns/ready"}]);
        pod["status"]["conditions"] = json!([
            {"type": "lb/ready", "status": "True"},
            {"type": "dns/ready", "status": "False"},
        ]);
        assert_eq!(
            cells("Pod", pod)[5..],
            ["10.244.1.5", "node-1", "node-2", "1/2"].map(Value::from)
        );
        // Only the legacy podIP field: still shown.
        let mut legacy = web_pod();
        legacy["status"]["podIPs"] = Value::Null;
        assert_eq!(cells("Pod", legacy)[5], "10.244.1.5");
    }

    // --- Node ------------------------------------------------------------------------

    fn node(ready: &str) -> Value {
        json!({
            "metadata": {
                "name": "node-1",
                "creationTimestamp": ago(TimeDelta::days(2) + TimeDelta::hours(3)),
                "labels": {
                    "kubernetes.io/hostname": "node-1",
                    "node-role.kubernetes.io/control-plane": "",
                    "node-role.kubernetes.io/etcd": "true",
                    "node-role.kubernetes.io/": "",
                },
            },
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": ready, "reason": "NodeStatusUnknown"},
                ],
                "addresses": [
                    {"type": "Hostname", "address": "node-1"},
                    {"type": "InternalIP", "address": "192.168.1.10"},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.32.0-skiff",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0-18-amd64",
                    "containerRuntimeVersion": "docker://27.1.1",
                },
            },
        })
    }

    #[test]
    fn not_ready_cordoned_node() {
        assert_eq!(
            column_names("Node")
                .iter()
                .map(|c| c.0.as_str())
                .collect::<Vec<_>>(),
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ]
        );
        assert_eq!(
            cells("Node", node("Unknown")),
            [
                "node-1",
                "NotReady,SchedulingDisabled",
                "control-plane,etcd",
                "2d3h",
                "v1.32.0-skiff",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-18-amd64",
                "docker://27.1.1"
            ]
            .map(Value::from)
        );
        let mut ready = node("True");
        ready["spec"] = json!({});
        assert_eq!(cells("Node", ready)[1], "Ready");
    }

    #[test]
    fn node_without_status_is_unknown() {
        let node = json!({"metadata": {"name": "n", "labels": {"kubernetes.io/role": "worker"}}});
        assert_eq!(
            cells("Node", node),
            [
                "n",
                "Unknown",
                "worker",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]
            .map(Value::from)
        );
    }

    // --- Namespace, Lease ------------------------------------------------------------

    #[test]
    fn namespace_and_lease() {
        let namespace = json!({"metadata": {"name": "kube-system",
                                            "creationTimestamp": ago(TimeDelta::days(400))},
                               "status": {"phase": "Active"}});
        assert_eq!(
            cells("Namespace", namespace),
            ["kube-system", "Active", "400d"].map(Value::from)
        );
        let lease = json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease",
                                        "creationTimestamp": ago(TimeDelta::minutes(7))},
                           "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}});
        assert_eq!(
            cells("Lease", lease),
            ["node-1", "node-1", "7m"].map(Value::from)
        );
        let free = json!({"metadata": {"name": "skiff-scheduler"}, "spec": {}});
        assert_eq!(cells("Lease", free)[1], "");
    }

    // --- Service, Endpoints ----------------------------------------------------------

    #[test]
    fn node_port_service() {
        let service = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(TimeDelta::seconds(330))},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.96.0.12",
                "clusterIPs": ["10.96.0.12"],
                "selector": {"tier": "front", "app": "web"},
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
                    {"name": "https", "port": 443, "protocol": "TCP", "nodePort": 30443},
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                ],
            },
        });
        assert_eq!(
            cells("Service", service),
            [
                "web",
                "NodePort",
                "10.96.0.12",
                "<none>",
                "80:30080/TCP,443:30443/TCP,53/UDP",
                "5m30s",
                "app=web,tier=front"
            ]
            .map(Value::from)
        );
    }

    #[test]
    fn service_types_and_external_ips() {
        let service = |spec: Value, status: Value| json!({"metadata": {"name": "s"}, "spec": spec, "status": status});
        let headless = service(
            json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}),
            json!({}),
        );
        assert_eq!(
            cells("Service", headless)[1..5],
            ["ClusterIP", "None", "<none>", "<none>"].map(Value::from)
        );
        let external = service(
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.1", "externalIPs": ["1.2.3.4", "5.6.7.8"],
                   "ports": [{"port": 443}]}),
            json!({}),
        );
        assert_eq!(
            cells("Service", external)[3..5],
            ["1.2.3.4,5.6.7.8", "443/TCP"].map(Value::from)
        );
        let pending = service(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.2"]}),
            json!({}),
        );
        assert_eq!(cells("Service", pending)[3], "<pending>");
        let balanced = service(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.2"], "externalIPs": ["9.9.9.9"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}]}}),
        );
        assert_eq!(
            cells("Service", balanced)[3],
            "203.0.113.7,lb.example.com,9.9.9.9"
        );
        let alias = service(
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            json!({}),
        );
        assert_eq!(
            cells("Service", alias)[1..4],
            ["ExternalName", "<none>", "db.example.com"].map(Value::from)
        );
        assert_eq!(
            cells("Service", service(json!({}), json!({})))[3],
            "<unknown>"
        );
    }

    #[test]
    fn endpoints_list_the_first_three_and_count_the_rest() {
        let endpoints = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(TimeDelta::hours(5))},
            "subsets": [
                {"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.7"}],
                 "notReadyAddresses": [{"ip": "10.244.3.9"}],
                 "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]},
                {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]},
            ],
        });
        assert_eq!(
            cells("Endpoints", endpoints),
            [
                "web",
                "10.244.1.5:8080,10.244.2.7:8080,10.244.1.5:9090 + 2 more...",
                "5h"
            ]
            .map(Value::from)
        );
        let few = json!({"metadata": {"name": "db"}, "subsets": [
            {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 5432}]},
            {"addresses": [{"ip": "10.0.0.9"}]},
        ]});
        assert_eq!(cells("Endpoints", few)[1], "[fd00::1]:5432,10.0.0.9");
        let empty = json!({"metadata": {"name": "none"}});
        assert_eq!(cells("Endpoints", empty)[1], "<none>");
    }

    // --- Workloads ---------------------------------------------------------------------

    fn template() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.27"},
                {"name": "sidecar", "image": "busybox"},
            ]},
        })
    }

    #[test]
    fn deployment() {
        let deployment = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(TimeDelta::days(10))},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
            "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2},
        });
        assert_eq!(
            column_names("Deployment")
                .iter()
                .map(|c| c.0.as_str())
                .collect::<Vec<_>>(),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            cells("Deployment", deployment),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("10d"),
                json!("nginx,sidecar"),
                json!("nginx:1.27,busybox"),
                json!("app=web"),
            ]
        );
        // A new deployment: no status yet, replicas defaulted.
        let new = json!({"metadata": {"name": "new"}, "spec": {}});
        assert_eq!(
            cells("Deployment", new)[1..4],
            [json!("0/1"), json!(0), json!(0)]
        );
    }

    #[test]
    fn daemon_set_and_its_controller_revisions() {
        let ds = json!({
            "metadata": {"name": "agent", "creationTimestamp": ago(TimeDelta::days(10))},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
                "spec": {"nodeSelector": {"zone": "b", "disk": "ssd"},
                         "containers": [{"name": "a", "image": "busybox"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                       "numberReady": 2, "updatedNumberScheduled": 1, "numberAvailable": 2},
        });
        assert_eq!(
            column_names("DaemonSet"),
            [
                ("Name", 0),
                ("Desired", 0),
                ("Current", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Node Selector", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ]
            .map(|(n, p)| (n.to_string(), p))
        );
        assert_eq!(
            cells("DaemonSet", ds),
            vec![
                json!("agent"),
                json!(3),
                json!(3),
                json!(2),
                json!(1),
                json!(2),
                json!("disk=ssd,zone=b"),
                json!("10d"),
                json!("a"),
                json!("busybox"),
                json!("app=agent"),
            ]
        );
        let new = json!({"metadata": {"name": "new"}, "spec": {}});
        assert_eq!(
            cells("DaemonSet", new)[1..7],
            [0, 0, 0, 0, 0]
                .map(|n| json!(n))
                .into_iter()
                .chain([json!("<none>")])
                .collect::<Vec<_>>()
        );

        let revision = json!({
            "metadata": {"name": "agent-6d4f8b9c7", "creationTimestamp": ago(TimeDelta::minutes(5)),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                              "name": "agent", "uid": "u", "controller": true}]},
            "revision": 2,
        });
        assert_eq!(
            cells("ControllerRevision", revision),
            vec![
                json!("agent-6d4f8b9c7"),
                json!("daemonset.apps/agent"),
                json!(2),
                json!("5m")
            ]
        );
        let orphan = json!({"metadata": {"name": "x"}, "revision": 1});
        assert_eq!(cells("ControllerRevision", orphan)[1], json!("<none>"));
    }

    #[test]
    fn stateful_set() {
        let sts = json!({
            "metadata": {"name": "db", "creationTimestamp": ago(TimeDelta::minutes(3))},
            "spec": {"replicas": 3, "template": template()},
            "status": {"replicas": 3, "readyReplicas": 2},
        });
        assert_eq!(
            column_names("StatefulSet"),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1)
            ]
            .map(|(n, p)| (n.to_string(), p))
        );
        assert_eq!(
            cells("StatefulSet", sts),
            vec![
                json!("db"),
                json!("2/3"),
                json!("3m"),
                json!("nginx,sidecar"),
                json!("nginx:1.27,busybox"),
            ]
        );
    }

    #[test]
    fn selectors_print_as_kubernetes_label_selectors() {
        let selector = json!({
            "matchLabels": {"tier": "front", "app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "canary"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "gpu", "operator": "Exists"},
            ],
        });
        assert_eq!(
            label_selector(Some(&selector)),
            Ok("app=web,env in (canary,prod),gpu,!legacy,tier=front,zone notin (b)".into())
        );
        assert_eq!(label_selector(None), Ok(String::new()));
        assert_eq!(label_selector(Some(&json!({}))), Ok(String::new()));
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Near"}]});
        assert_eq!(label_selector(Some(&bad)), Err(()));
        let deployment = json!({"metadata": {"name": "d"}, "spec": {"selector": bad}});
        assert_eq!(cells("Deployment", deployment)[7], "<invalid>");
    }

    #[test]
    fn replica_set_and_replication_controller() {
        let rs = json!({
            "metadata": {"name": "web-7d9f8c", "creationTimestamp": ago(TimeDelta::minutes(3))},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d9f8c"}},
                     "template": template()},
            "status": {"replicas": 3, "readyReplicas": 1},
        });
        assert_eq!(
            cells("ReplicaSet", rs),
            vec![
                json!("web-7d9f8c"),
                json!(3),
                json!(3),
                json!(1),
                json!("3m"),
                json!("nginx,sidecar"),
                json!("nginx:1.27,busybox"),
                json!("app=web,pod-template-hash=7d9f8c"),
            ]
        );
        let no_selector = json!({"metadata": {"name": "rs"}, "spec": {"replicas": 0}});
        assert_eq!(
            cells("ReplicaSet", no_selector)[1..],
            [
                json!(0),
                json!(0),
                json!(0),
                json!("<unknown>"),
                json!(""),
                json!(""),
                json!("<none>")
            ]
        );
        let rc = json!({
            "metadata": {"name": "frontend", "creationTimestamp": ago(TimeDelta::hours(30))},
            "spec": {"replicas": 2, "selector": {"app": "frontend"}, "template": template()},
            "status": {"replicas": 2, "readyReplicas": 2},
        });
        assert_eq!(
            column_names("ReplicationController"),
            column_names("ReplicaSet"),
            "same columns"
        );
        assert_eq!(
            cells("ReplicationController", rc),
            vec![
                json!("frontend"),
                json!(2),
                json!(2),
                json!(2),
                json!("30h"),
                json!("nginx,sidecar"),
                json!("nginx:1.27,busybox"),
                json!("app=frontend"),
            ]
        );
        let bare = json!({"metadata": {"name": "rc"}});
        assert_eq!(cells("ReplicationController", bare)[7], "<none>");
    }

    // --- Event -------------------------------------------------------------------------

    #[test]
    fn event_columns_are_kube_apiservers() {
        assert_eq!(
            column_names("Event"),
            [
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1),
            ]
            .map(|(n, p)| (n.to_string(), p))
        );
    }

    #[test]
    fn events() {
        let pulled = json!({
            "metadata": {"name": "web.17c8a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{nginx}"},
            "reason": "Pulled",
            "message": "Container image \"nginx:1.27\" already present on machine\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": ago(TimeDelta::minutes(30)),
            "lastTimestamp": ago(TimeDelta::minutes(2)),
            "count": 4,
            "type": "Normal",
        });
        assert_eq!(
            cells("Event", pulled),
            vec![
                json!("2m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web"),
                json!("spec.containers{nginx}"),
                json!("kubelet, node-1"),
                json!("Container image \"nginx:1.27\" already present on machine"),
                json!("30m"),
                json!(4),
                json!("web.17c8a"),
            ]
        );
        // An events.k8s.io-style event: eventTime, no count, reporting fields.
        let scheduled = json!({
            "metadata": {"name": "web.17c8b"},
            "involvedObject": {"kind": "Pod", "name": "web"},
            "reason": "Scheduled",
            "message": "Successfully assigned default/web to node-1",
            "eventTime": "2024-05-01T11:59:15.123456Z",
            "reportingComponent": "default-scheduler",
            "reportingInstance": "",
            "type": "Normal",
        });
        let c = cells("Event", scheduled);
        // 44.877s ago: seconds are truncated, as Go's int(d.Seconds()).
        assert_eq!(c[0], "44s", "last seen falls back to first seen");
        assert_eq!(c[5], "default-scheduler");
        assert_eq!(c[7], "44s");
        assert_eq!(c[8], 1, "a singleton event counts once");
        // A series: its last observation and count win.
        let series = json!({
            "metadata": {"name": "n.1"},
            "involvedObject": {"kind": "Node"},
            "reason": "NodeNotReady",
            "type": "Warning",
            "firstTimestamp": ago(TimeDelta::hours(1)),
            "lastTimestamp": ago(TimeDelta::minutes(50)),
            "series": {"count": 12, "lastObservedTime": ago(TimeDelta::seconds(10))},
        });
        let c = cells("Event", series);
        assert_eq!(c[0], "10s");
        assert_eq!(c[3], "node");
        assert_eq!(c[8], 12);
        let bare = json!({"metadata": {"name": "e"}});
        assert_eq!(cells("Event", bare)[0], "<unknown>");
    }

    // --- PodTemplate, ResourceQuota -------------------------------------------------------

    #[test]
    fn pod_templates_show_containers_images_and_pod_labels() {
        assert_eq!(
            column_names("PodTemplate"),
            [
                ("Name".to_string(), 0),
                ("Containers".to_string(), 0),
                ("Images".to_string(), 0),
                ("Pod Labels".to_string(), 0)
            ]
        );
        let template = json!({"metadata": {"name": "web"}, "template": {
            "metadata": {"labels": {"tier": "front", "app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"},
                                    {"name": "log", "image": "busybox"}]}}});
        assert_eq!(
            cells("PodTemplate", template),
            json!([
                "web",
                "nginx,log",
                "nginx:1.25,busybox",
                "app=web,tier=front"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        assert_eq!(
            cells("PodTemplate", json!({"metadata": {"name": "bare"}}))[3],
            "<none>"
        );
    }

    #[test]
    fn resource_quotas_show_used_over_hard() {
        assert_eq!(
            column_names("ResourceQuota"),
            [
                ("Name".to_string(), 0),
                ("Age".to_string(), 0),
                ("Request".to_string(), 0),
                ("Limit".to_string(), 0)
            ]
        );
        let quota = json!({"metadata": {"name": "compute", "creationTimestamp": ago(TimeDelta::minutes(5))},
            "status": {
                "hard": {"pods": "10", "requests.cpu": "1000m", "limits.memory": "2Gi",
                         "count/deployments.apps": "2"},
                "used": {"pods": "3", "requests.cpu": "500m", "limits.memory": "1536Mi"}}});
        assert_eq!(
            cells("ResourceQuota", quota),
            json!([
                "compute",
                "5m",
                "count/deployments.apps: 0/2, pods: 3/10, requests.cpu: 500m/1",
                "limits.memory: 1536Mi/2Gi"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        let fresh = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}});
        assert_eq!(cells("ResourceQuota", fresh)[2], "");
    }

    // --- Other kinds -------------------------------------------------------------------

    #[test]
    fn other_kinds_get_the_default_table() {
        assert_eq!(
            column_names("Binding"),
            [("Name".to_string(), 0), ("Created At".to_string(), 0)]
        );
        let table = table_at(
            "Binding",
            &[json!({"metadata": {"name": "settings",
                                  "creationTimestamp": "2024-04-01T08:30:00Z"}})],
            IncludeObject::Metadata,
            TableVersion::V1,
            json!({}),
            now(),
        );
        assert_eq!(table["columnDefinitions"][1]["type"], "date");
        assert_eq!(
            table["rows"][0]["cells"],
            json!(["settings", "2024-04-01T08:30:00Z"])
        );
        assert_eq!(
            cells("Binding", json!({"metadata": {"name": "x"}}))[1],
            "0001-01-01T00:00:00Z"
        );
    }
}

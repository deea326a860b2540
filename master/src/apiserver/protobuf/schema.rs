//! The protobuf messages of the kinds served, with their JSON names (see the parent
//! module for how this table was made and how it is read). One line per field:
//! `field` is written as sent, `omitempty` is left out when zero, `repeated` is a list,
//! `inline` is an embedded struct whose fields belong to the parent object.

use super::{Kind, Message, field, inline, omitempty, repeated};

/// The top-level kinds a protobuf request body may carry: (apiVersion, kind, message).
pub(super) static KINDS: &[(&str, &str, &Message)] = &[
    ("v1", "Namespace", &NAMESPACE),
    ("v1", "Pod", &POD),
    ("v1", "Node", &NODE),
    ("v1", "Service", &SERVICE),
    ("v1", "Endpoints", &ENDPOINTS),
    ("v1", "ReplicationController", &REPLICATION_CONTROLLER),
    ("v1", "Event", &EVENT),
    ("v1", "Binding", &BINDING),
    ("v1", "ConfigMap", &CONFIG_MAP),
    ("v1", "Secret", &SECRET),
    ("v1", "ServiceAccount", &SERVICE_ACCOUNT),
    ("apps/v1", "Deployment", &DEPLOYMENT),
    ("apps/v1", "ReplicaSet", &REPLICA_SET),
    ("coordination.k8s.io/v1", "Lease", &LEASE),
    ("autoscaling/v1", "Scale", &SCALE),
];

static AFFINITY: Message = Message {
    name: "io.k8s.api.core.v1.Affinity",
    fields: &[
        field(1, "nodeAffinity", Kind::Message(&NODE_AFFINITY)),
        field(2, "podAffinity", Kind::Message(&POD_AFFINITY)),
        field(3, "podAntiAffinity", Kind::Message(&POD_ANTI_AFFINITY)),
    ],
};

static APP_ARMOR_PROFILE: Message = Message {
    name: "io.k8s.api.core.v1.AppArmorProfile",
    fields: &[
        field(1, "type", Kind::String),
        field(2, "localhostProfile", Kind::String),
    ],
};

static ATTACHED_VOLUME: Message = Message {
    name: "io.k8s.api.core.v1.AttachedVolume",
    fields: &[
        field(1, "name", Kind::String),
        field(2, "devicePath", Kind::String),
    ],
};

static AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.AWSElasticBlockStoreVolumeSource",
    fields: &[
        field(1, "volumeID", Kind::String),
        omitempty(2, "fsType", Kind::String),
        omitempty(3, "partition", Kind::Int32),
        omitempty(4, "readOnly", Kind::Bool),
    ],
};

static AZURE_DISK_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.AzureDiskVolumeSource",
    fields: &[
        field(1, "diskName", Kind::String),
        field(2, "diskURI", Kind::String),
        field(3, "cachingMode", Kind::String),
        field(4, "fsType", Kind::String),
        field(5, "readOnly", Kind::Bool),
        field(6, "kind", Kind::String),
    ],
};

static AZURE_FILE_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.AzureFileVolumeSource",
    fields: &[
        field(1, "secretName", Kind::String),
        field(2, "shareName", Kind::String),
        omitempty(3, "readOnly", Kind::Bool),
    ],
};

static BINDING: Message = Message {
    name: "io.k8s.api.core.v1.Binding",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "target", Kind::Message(&OBJECT_REFERENCE)),
    ],
};

static CAPABILITIES: Message = Message {
    name: "io.k8s.api.core.v1.Capabilities",
    fields: &[
        repeated(1, "add", Kind::String),
        repeated(2, "drop", Kind::String),
    ],
};

static CEPH_FS_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.CephFSVolumeSource",
    fields: &[
        repeated(1, "monitors", Kind::String),
        omitempty(2, "path", Kind::String),
        omitempty(3, "user", Kind::String),
        omitempty(4, "secretFile", Kind::String),
        field(5, "secretRef", Kind::Message(&LOCAL_OBJECT_REFERENCE)),
        omitempty(6, "readOnly", Kind::Bool),
    ],
};

static CINDER_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.CinderVolumeSource",
    fields: &[
        field(1, "volumeID", Kind::String),
        omitempty(2, "fsType", Kind::String),
        omitempty(3, "readOnly", Kind::Bool),
        field(4, "secretRef", Kind::Message(&LOCAL_OBJECT_REFERENCE)),
    ],
};

static CLIENT_IP_CONFIG: Message = Message {
    name: "io.k8s.api.core.v1.ClientIPConfig",
    fields: &[
        field(1, "timeoutSeconds", Kind::Int32),
    ],
};

static CLUSTER_TRUST_BUNDLE_PROJECTION: Message = Message {
    name: "io.k8s.api.core.v1.ClusterTrustBundleProjection",
    fields: &[
        field(1, "name", Kind::String),
        field(2, "signerName", Kind::String),
        field(3, "labelSelector", Kind::Message(&LABEL_SELECTOR)),
        field(5, "optional", Kind::Bool),
        field(4, "path", Kind::String),
    ],
};

static CONDITION: Message = Message {
    name: "io.k8s.apimachinery.pkg.apis.meta.v1.Condition",
    fields: &[
        field(1, "type", Kind::String),
        field(2, "status", Kind::String),
        omitempty(3, "observedGeneration", Kind::Int64),
        field(4, "lastTransitionTime", Kind::Time),
        field(5, "reason", Kind::String),
        field(6, "message", Kind::String),
    ],
};

static CONFIG_MAP: Message = Message {
    name: "io.k8s.api.core.v1.ConfigMap",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(4, "immutable", Kind::Bool),
        field(2, "data", Kind::Map(&Kind::String)),
        field(3, "binaryData", Kind::Map(&Kind::Bytes)),
    ],
};

static CONFIG_MAP_ENV_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.ConfigMapEnvSource",
    fields: &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        field(2, "optional", Kind::Bool),
    ],
};

static CONFIG_MAP_KEY_SELECTOR: Message = Message {
    name: "io.k8s.api.core.v1.ConfigMapKeySelector",
    fields: &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        field(2, "key", Kind::String),
        field(3, "optional", Kind::Bool),
    ],
};

static CONFIG_MAP_NODE_CONFIG_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.ConfigMapNodeConfigSource",
    fields: &[
        field(1, "namespace", Kind::String),
        field(2, "name", Kind::String),
        omitempty(3, "uid", Kind::String),
        omitempty(4, "resourceVersion", Kind::String),
        field(5, "kubeletConfigKey", Kind::String),
    ],
};

static CONFIG_MAP_PROJECTION: Message = Message {
    name: "io.k8s.api.core.v1.ConfigMapProjection",
    fields: &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        repeated(2, "items", Kind::Message(&KEY_TO_PATH)),
        field(4, "optional", Kind::Bool),
    ],
};

static CONFIG_MAP_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.ConfigMapVolumeSource",
    fields: &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        repeated(2, "items", Kind::Message(&KEY_TO_PATH)),
        field(3, "defaultMode", Kind::Int32),
        field(4, "optional", Kind::Bool),
    ],
};

static CONTAINER: Message = Message {
    name: "io.k8s.api.core.v1.Container",
    fields: &[
        field(1, "name", Kind::String),
        omitempty(2, "image", Kind::String),
        repeated(3, "command", Kind::String),
        repeated(4, "args", Kind::String),
        omitempty(5, "workingDir", Kind::String),
        repeated(6, "ports", Kind::Message(&CONTAINER_PORT)),
        repeated(19, "envFrom", Kind::Message(&ENV_FROM_SOURCE)),
        repeated(7, "env", Kind::Message(&ENV_VAR)),
        field(8, "resources", Kind::Message(&RESOURCE_REQUIREMENTS)),
        repeated(23, "resizePolicy", Kind::Message(&CONTAINER_RESIZE_POLICY)),
        field(24, "restartPolicy", Kind::String),
        repeated(25, "restartPolicyRules", Kind::Message(&CONTAINER_RESTART_RULE)),
        repeated(9, "volumeMounts", Kind::Message(&VOLUME_MOUNT)),
        repeated(21, "volumeDevices", Kind::Message(&VOLUME_DEVICE)),
        field(10, "livenessProbe", Kind::Message(&PROBE)),
        field(11, "readinessProbe", Kind::Message(&PROBE)),
        field(22, "startupProbe", Kind::Message(&PROBE)),
        field(12, "lifecycle", Kind::Message(&LIFECYCLE)),
        omitempty(13, "terminationMessagePath", Kind::String),
        omitempty(20, "terminationMessagePolicy", Kind::String),
        omitempty(14, "imagePullPolicy", Kind::String),
        field(15, "securityContext", Kind::Message(&SECURITY_CONTEXT)),
        omitempty(16, "stdin", Kind::Bool),
        omitempty(17, "stdinOnce", Kind::Bool),
        omitempty(18, "tty", Kind::Bool),
    ],
};

static CONTAINER_EXTENDED_RESOURCE_REQUEST: Message = Message {
    name: "io.k8s.api.core.v1.ContainerExtendedResourceRequest",
    fields: &[
        field(1, "containerName", Kind::String),
        field(2, "resourceName", Kind::String),
        field(3, "requestName", Kind::String),
    ],
};

static CONTAINER_IMAGE: Message = Message {
    name: "io.k8s.api.core.v1.ContainerImage",
    fields: &[
        repeated(1, "names", Kind::String),
        omitempty(2, "sizeBytes", Kind::Int64),
    ],
};

static CONTAINER_PORT: Message = Message {
    name: "io.k8s.api.core.v1.ContainerPort",
    fields: &[
        omitempty(1, "name", Kind::String),
        omitempty(2, "hostPort", Kind::Int32),
        field(3, "containerPort", Kind::Int32),
        omitempty(4, "protocol", Kind::String),
        omitempty(5, "hostIP", Kind::String),
    ],
};

static CONTAINER_RESIZE_POLICY: Message = Message {
    name: "io.k8s.api.core.v1.ContainerResizePolicy",
    fields: &[
        field(1, "resourceName", Kind::String),
        field(2, "restartPolicy", Kind::String),
    ],
};

static CONTAINER_RESTART_RULE: Message = Message {
    name: "io.k8s.api.core.v1.ContainerRestartRule",
    fields: &[
        field(1, "action", Kind::String),
        field(2, "exitCodes", Kind::Message(&CONTAINER_RESTART_RULE_ON_EXIT_CODES)),
    ],
};

static CONTAINER_RESTART_RULE_ON_EXIT_CODES: Message = Message {
    name: "io.k8s.api.core.v1.ContainerRestartRuleOnExitCodes",
    fields: &[
        field(1, "operator", Kind::String),
        repeated(2, "values", Kind::Int32),
    ],
};

static CONTAINER_STATE: Message = Message {
    name: "io.k8s.api.core.v1.ContainerState",
    fields: &[
        field(1, "waiting", Kind::Message(&CONTAINER_STATE_WAITING)),
        field(2, "running", Kind::Message(&CONTAINER_STATE_RUNNING)),
        field(3, "terminated", Kind::Message(&CONTAINER_STATE_TERMINATED)),
    ],
};

static CONTAINER_STATE_RUNNING: Message = Message {
    name: "io.k8s.api.core.v1.ContainerStateRunning",
    fields: &[
        field(1, "startedAt", Kind::Time),
    ],
};

static CONTAINER_STATE_TERMINATED: Message = Message {
    name: "io.k8s.api.core.v1.ContainerStateTerminated",
    fields: &[
        field(1, "exitCode", Kind::Int32),
        omitempty(2, "signal", Kind::Int32),
        omitempty(3, "reason", Kind::String),
        omitempty(4, "message", Kind::String),
        field(5, "startedAt", Kind::Time),
        field(6, "finishedAt", Kind::Time),
        omitempty(7, "containerID", Kind::String),
    ],
};

static CONTAINER_STATE_WAITING: Message = Message {
    name: "io.k8s.api.core.v1.ContainerStateWaiting",
    fields: &[
        omitempty(1, "reason", Kind::String),
        omitempty(2, "message", Kind::String),
    ],
};

static CONTAINER_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.ContainerStatus",
    fields: &[
        field(1, "name", Kind::String),
        field(2, "state", Kind::Message(&CONTAINER_STATE)),
        field(3, "lastState", Kind::Message(&CONTAINER_STATE)),
        field(4, "ready", Kind::Bool),
        field(5, "restartCount", Kind::Int32),
        field(6, "image", Kind::String),
        field(7, "imageID", Kind::String),
        omitempty(8, "containerID", Kind::String),
        field(9, "started", Kind::Bool),
        field(10, "allocatedResources", Kind::Map(&Kind::Quantity)),
        field(11, "resources", Kind::Message(&RESOURCE_REQUIREMENTS)),
        repeated(12, "volumeMounts", Kind::Message(&VOLUME_MOUNT_STATUS)),
        field(13, "user", Kind::Message(&CONTAINER_USER)),
        repeated(14, "allocatedResourcesStatus", Kind::Message(&RESOURCE_STATUS)),
        field(15, "stopSignal", Kind::String),
    ],
};

static CONTAINER_USER: Message = Message {
    name: "io.k8s.api.core.v1.ContainerUser",
    fields: &[
        field(1, "linux", Kind::Message(&LINUX_CONTAINER_USER)),
    ],
};

static CSI_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.CSIVolumeSource",
    fields: &[
        field(1, "driver", Kind::String),
        field(2, "readOnly", Kind::Bool),
        field(3, "fsType", Kind::String),
        field(4, "volumeAttributes", Kind::Map(&Kind::String)),
        field(5, "nodePublishSecretRef", Kind::Message(&LOCAL_OBJECT_REFERENCE)),
    ],
};

static DAEMON_ENDPOINT: Message = Message {
    name: "io.k8s.api.core.v1.DaemonEndpoint",
    fields: &[
        field(1, "Port", Kind::Int32),
    ],
};

pub(super) static DELETE_OPTIONS: Message = Message {
    name: "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    fields: &[
        field(1, "gracePeriodSeconds", Kind::Int64),
        field(2, "preconditions", Kind::Message(&PRECONDITIONS)),
        field(3, "orphanDependents", Kind::Bool),
        field(4, "propagationPolicy", Kind::String),
        repeated(5, "dryRun", Kind::String),
        field(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Kind::Bool),
    ],
};

static DEPLOYMENT: Message = Message {
    name: "io.k8s.api.apps.v1.Deployment",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "spec", Kind::Message(&DEPLOYMENT_SPEC)),
        field(3, "status", Kind::Message(&DEPLOYMENT_STATUS)),
    ],
};

static DEPLOYMENT_CONDITION: Message = Message {
    name: "io.k8s.api.apps.v1.DeploymentCondition",
    fields: &[
        field(1, "type", Kind::String),
        field(2, "status", Kind::String),
        field(6, "lastUpdateTime", Kind::Time),
        field(7, "lastTransitionTime", Kind::Time),
        omitempty(4, "reason", Kind::String),
        omitempty(5, "message", Kind::String),
    ],
};

static DEPLOYMENT_SPEC: Message = Message {
    name: "io.k8s.api.apps.v1.DeploymentSpec",
    fields: &[
        field(1, "replicas", Kind::Int32),
        field(2, "selector", Kind::Message(&LABEL_SELECTOR)),
        field(3, "template", Kind::Message(&POD_TEMPLATE_SPEC)),
        field(4, "strategy", Kind::Message(&DEPLOYMENT_STRATEGY)),
        omitempty(5, "minReadySeconds", Kind::Int32),
        field(6, "revisionHistoryLimit", Kind::Int32),
        omitempty(7, "paused", Kind::Bool),
        field(9, "progressDeadlineSeconds", Kind::Int32),
    ],
};

static DEPLOYMENT_STATUS: Message = Message {
    name: "io.k8s.api.apps.v1.DeploymentStatus",
    fields: &[
        omitempty(1, "observedGeneration", Kind::Int64),
        omitempty(2, "replicas", Kind::Int32),
        omitempty(3, "updatedReplicas", Kind::Int32),
        omitempty(7, "readyReplicas", Kind::Int32),
        omitempty(4, "availableReplicas", Kind::Int32),
        omitempty(5, "unavailableReplicas", Kind::Int32),
        field(9, "terminatingReplicas", Kind::Int32),
        repeated(6, "conditions", Kind::Message(&DEPLOYMENT_CONDITION)),
        field(8, "collisionCount", Kind::Int32),
    ],
};

static DEPLOYMENT_STRATEGY: Message = Message {
    name: "io.k8s.api.apps.v1.DeploymentStrategy",
    fields: &[
        omitempty(1, "type", Kind::String),
        field(2, "rollingUpdate", Kind::Message(&ROLLING_UPDATE_DEPLOYMENT)),
    ],
};

static DOWNWARD_API_PROJECTION: Message = Message {
    name: "io.k8s.api.core.v1.DownwardAPIProjection",
    fields: &[
        repeated(1, "items", Kind::Message(&DOWNWARD_API_VOLUME_FILE)),
    ],
};

static DOWNWARD_API_VOLUME_FILE: Message = Message {
    name: "io.k8s.api.core.v1.DownwardAPIVolumeFile",
    fields: &[
        field(1, "path", Kind::String),
        field(2, "fieldRef", Kind::Message(&OBJECT_FIELD_SELECTOR)),
        field(3, "resourceFieldRef", Kind::Message(&RESOURCE_FIELD_SELECTOR)),
        field(4, "mode", Kind::Int32),
    ],
};

static DOWNWARD_API_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.DownwardAPIVolumeSource",
    fields: &[
        repeated(1, "items", Kind::Message(&DOWNWARD_API_VOLUME_FILE)),
        field(2, "defaultMode", Kind::Int32),
    ],
};

static EMPTY_DIR_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.EmptyDirVolumeSource",
    fields: &[
        omitempty(1, "medium", Kind::String),
        field(2, "sizeLimit", Kind::Quantity),
    ],
};

static ENDPOINTS: Message = Message {
    name: "io.k8s.api.core.v1.Endpoints",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        repeated(2, "subsets", Kind::Message(&ENDPOINT_SUBSET)),
    ],
};

static ENDPOINT_ADDRESS: Message = Message {
    name: "io.k8s.api.core.v1.EndpointAddress",
    fields: &[
        field(1, "ip", Kind::String),
        omitempty(3, "hostname", Kind::String),
        field(4, "nodeName", Kind::String),
        field(2, "targetRef", Kind::Message(&OBJECT_REFERENCE)),
    ],
};

static ENDPOINT_PORT: Message = Message {
    name: "io.k8s.api.core.v1.EndpointPort",
    fields: &[
        omitempty(1, "name", Kind::String),
        field(2, "port", Kind::Int32),
        omitempty(3, "protocol", Kind::String),
        field(4, "appProtocol", Kind::String),
    ],
};

static ENDPOINT_SUBSET: Message = Message {
    name: "io.k8s.api.core.v1.EndpointSubset",
    fields: &[
        repeated(1, "addresses", Kind::Message(&ENDPOINT_ADDRESS)),
        repeated(2, "notReadyAddresses", Kind::Message(&ENDPOINT_ADDRESS)),
        repeated(3, "ports", Kind::Message(&ENDPOINT_PORT)),
    ],
};

static ENV_FROM_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.EnvFromSource",
    fields: &[
        omitempty(1, "prefix", Kind::String),
        field(2, "configMapRef", Kind::Message(&CONFIG_MAP_ENV_SOURCE)),
        field(3, "secretRef", Kind::Message(&SECRET_ENV_SOURCE)),
    ],
};

static ENV_VAR: Message = Message {
    name: "io.k8s.api.core.v1.EnvVar",
    fields: &[
        field(1, "name", Kind::String),
        omitempty(2, "value", Kind::String),
        field(3, "valueFrom", Kind::Message(&ENV_VAR_SOURCE)),
    ],
};

static ENV_VAR_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.EnvVarSource",
    fields: &[
        field(1, "fieldRef", Kind::Message(&OBJECT_FIELD_SELECTOR)),
        field(2, "resourceFieldRef", Kind::Message(&RESOURCE_FIELD_SELECTOR)),
        field(3, "configMapKeyRef", Kind::Message(&CONFIG_MAP_KEY_SELECTOR)),
        field(4, "secretKeyRef", Kind::Message(&SECRET_KEY_SELECTOR)),
        field(5, "fileKeyRef", Kind::Message(&FILE_KEY_SELECTOR)),
    ],
};

static EPHEMERAL_CONTAINER: Message = Message {
    name: "io.k8s.api.core.v1.EphemeralContainer",
    fields: &[
        inline(1, &EPHEMERAL_CONTAINER_COMMON),
        omitempty(2, "targetContainerName", Kind::String),
    ],
};

static EPHEMERAL_CONTAINER_COMMON: Message = Message {
    name: "io.k8s.api.core.v1.EphemeralContainerCommon",
    fields: &[
        field(1, "name", Kind::String),
        omitempty(2, "image", Kind::String),
        repeated(3, "command", Kind::String),
        repeated(4, "args", Kind::String),
        omitempty(5, "workingDir", Kind::String),
        repeated(6, "ports", Kind::Message(&CONTAINER_PORT)),
        repeated(19, "envFrom", Kind::Message(&ENV_FROM_SOURCE)),
        repeated(7, "env", Kind::Message(&ENV_VAR)),
        field(8, "resources", Kind::Message(&RESOURCE_REQUIREMENTS)),
        repeated(23, "resizePolicy", Kind::Message(&CONTAINER_RESIZE_POLICY)),
        field(24, "restartPolicy", Kind::String),
        repeated(25, "restartPolicyRules", Kind::Message(&CONTAINER_RESTART_RULE)),
        repeated(9, "volumeMounts", Kind::Message(&VOLUME_MOUNT)),
        repeated(21, "volumeDevices", Kind::Message(&VOLUME_DEVICE)),
        field(10, "livenessProbe", Kind::Message(&PROBE)),
        field(11, "readinessProbe", Kind::Message(&PROBE)),
        field(22, "startupProbe", Kind::Message(&PROBE)),
        field(12, "lifecycle", Kind::Message(&LIFECYCLE)),
        omitempty(13, "terminationMessagePath", Kind::String),
        omitempty(20, "terminationMessagePolicy", Kind::String),
        omitempty(14, "imagePullPolicy", Kind::String),
        field(15, "securityContext", Kind::Message(&SECURITY_CONTEXT)),
        omitempty(16, "stdin", Kind::Bool),
        omitempty(17, "stdinOnce", Kind::Bool),
        omitempty(18, "tty", Kind::Bool),
    ],
};

static EPHEMERAL_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.EphemeralVolumeSource",
    fields: &[
        field(1, "volumeClaimTemplate", Kind::Message(&PERSISTENT_VOLUME_CLAIM_TEMPLATE)),
    ],
};

static EVENT: Message = Message {
    name: "io.k8s.api.core.v1.Event",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "involvedObject", Kind::Message(&OBJECT_REFERENCE)),
        omitempty(3, "reason", Kind::String),
        omitempty(4, "message", Kind::String),
        field(5, "source", Kind::Message(&EVENT_SOURCE)),
        field(6, "firstTimestamp", Kind::Time),
        field(7, "lastTimestamp", Kind::Time),
        omitempty(8, "count", Kind::Int32),
        omitempty(9, "type", Kind::String),
        field(10, "eventTime", Kind::MicroTime),
        field(11, "series", Kind::Message(&EVENT_SERIES)),
        omitempty(12, "action", Kind::String),
        field(13, "related", Kind::Message(&OBJECT_REFERENCE)),
        omitempty(14, "reportingComponent", Kind::String),
        omitempty(15, "reportingInstance", Kind::String),
    ],
};

static EVENT_SERIES: Message = Message {
    name: "io.k8s.api.core.v1.EventSeries",
    fields: &[
        omitempty(1, "count", Kind::Int32),
        field(2, "lastObservedTime", Kind::MicroTime),
    ],
};

static EVENT_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.EventSource",
    fields: &[
        omitempty(1, "component", Kind::String),
        omitempty(2, "host", Kind::String),
    ],
};

static EXEC_ACTION: Message = Message {
    name: "io.k8s.api.core.v1.ExecAction",
    fields: &[
        repeated(1, "command", Kind::String),
    ],
};

static FC_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.FCVolumeSource",
    fields: &[
        repeated(1, "targetWWNs", Kind::String),
        field(2, "lun", Kind::Int32),
        omitempty(3, "fsType", Kind::String),
        omitempty(4, "readOnly", Kind::Bool),
        repeated(5, "wwids", Kind::String),
    ],
};

static FILE_KEY_SELECTOR: Message = Message {
    name: "io.k8s.api.core.v1.FileKeySelector",
    fields: &[
        field(1, "volumeName", Kind::String),
        field(2, "path", Kind::String),
        field(3, "key", Kind::String),
        field(4, "optional", Kind::Bool),
    ],
};

static FLEX_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.FlexVolumeSource",
    fields: &[
        field(1, "driver", Kind::String),
        omitempty(2, "fsType", Kind::String),
        field(3, "secretRef", Kind::Message(&LOCAL_OBJECT_REFERENCE)),
        omitempty(4, "readOnly", Kind::Bool),
        field(5, "options", Kind::Map(&Kind::String)),
    ],
};

static FLOCKER_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.FlockerVolumeSource",
    fields: &[
        omitempty(1, "datasetName", Kind::String),
        omitempty(2, "datasetUUID", Kind::String),
    ],
};

static GCE_PERSISTENT_DISK_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.GCEPersistentDiskVolumeSource",
    fields: &[
        field(1, "pdName", Kind::String),
        omitempty(2, "fsType", Kind::String),
        omitempty(3, "partition", Kind::Int32),
        omitempty(4, "readOnly", Kind::Bool),
    ],
};

static GIT_REPO_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.GitRepoVolumeSource",
    fields: &[
        field(1, "repository", Kind::String),
        omitempty(2, "revision", Kind::String),
        omitempty(3, "directory", Kind::String),
    ],
};

static GLUSTERFS_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.GlusterfsVolumeSource",
    fields: &[
        field(1, "endpoints", Kind::String),
        field(2, "path", Kind::String),
        omitempty(3, "readOnly", Kind::Bool),
    ],
};

static GRPC_ACTION: Message = Message {
    name: "io.k8s.api.core.v1.GRPCAction",
    fields: &[
        field(1, "port", Kind::Int32),
        field(2, "service", Kind::String),
    ],
};

static HOST_ALIAS: Message = Message {
    name: "io.k8s.api.core.v1.HostAlias",
    fields: &[
        field(1, "ip", Kind::String),
        repeated(2, "hostnames", Kind::String),
    ],
};

static HOST_IP: Message = Message {
    name: "io.k8s.api.core.v1.HostIP",
    fields: &[
        field(1, "ip", Kind::String),
    ],
};

static HOST_PATH_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.HostPathVolumeSource",
    fields: &[
        field(1, "path", Kind::String),
        field(2, "type", Kind::String),
    ],
};

static HTTP_GET_ACTION: Message = Message {
    name: "io.k8s.api.core.v1.HTTPGetAction",
    fields: &[
        omitempty(1, "path", Kind::String),
        field(2, "port", Kind::IntOrString),
        omitempty(3, "host", Kind::String),
        omitempty(4, "scheme", Kind::String),
        repeated(5, "httpHeaders", Kind::Message(&HTTP_HEADER)),
    ],
};

static HTTP_HEADER: Message = Message {
    name: "io.k8s.api.core.v1.HTTPHeader",
    fields: &[
        field(1, "name", Kind::String),
        field(2, "value", Kind::String),
    ],
};

static IMAGE_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.ImageVolumeSource",
    fields: &[
        omitempty(1, "reference", Kind::String),
        omitempty(2, "pullPolicy", Kind::String),
    ],
};

static ISCSI_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.ISCSIVolumeSource",
    fields: &[
        field(1, "targetPortal", Kind::String),
        field(2, "iqn", Kind::String),
        field(3, "lun", Kind::Int32),
        omitempty(4, "iscsiInterface", Kind::String),
        omitempty(5, "fsType", Kind::String),
        omitempty(6, "readOnly", Kind::Bool),
        repeated(7, "portals", Kind::String),
        omitempty(8, "chapAuthDiscovery", Kind::Bool),
        omitempty(11, "chapAuthSession", Kind::Bool),
        field(10, "secretRef", Kind::Message(&LOCAL_OBJECT_REFERENCE)),
        field(12, "initiatorName", Kind::String),
    ],
};

static KEY_TO_PATH: Message = Message {
    name: "io.k8s.api.core.v1.KeyToPath",
    fields: &[
        field(1, "key", Kind::String),
        field(2, "path", Kind::String),
        field(3, "mode", Kind::Int32),
    ],
};

static LABEL_SELECTOR: Message = Message {
    name: "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    fields: &[
        field(1, "matchLabels", Kind::Map(&Kind::String)),
        repeated(2, "matchExpressions", Kind::Message(&LABEL_SELECTOR_REQUIREMENT)),
    ],
};

static LABEL_SELECTOR_REQUIREMENT: Message = Message {
    name: "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
    fields: &[
        field(1, "key", Kind::String),
        field(2, "operator", Kind::String),
        repeated(3, "values", Kind::String),
    ],
};

static LEASE: Message = Message {
    name: "io.k8s.api.coordination.v1.Lease",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "spec", Kind::Message(&LEASE_SPEC)),
    ],
};

static LEASE_SPEC: Message = Message {
    name: "io.k8s.api.coordination.v1.LeaseSpec",
    fields: &[
        field(1, "holderIdentity", Kind::String),
        field(2, "leaseDurationSeconds", Kind::Int32),
        field(3, "acquireTime", Kind::MicroTime),
        field(4, "renewTime", Kind::MicroTime),
        field(5, "leaseTransitions", Kind::Int32),
        field(6, "strategy", Kind::String),
        field(7, "preferredHolder", Kind::String),
    ],
};

static LIFECYCLE: Message = Message {
    name: "io.k8s.api.core.v1.Lifecycle",
    fields: &[
        field(1, "postStart", Kind::Message(&LIFECYCLE_HANDLER)),
        field(2, "preStop", Kind::Message(&LIFECYCLE_HANDLER)),
        field(3, "stopSignal", Kind::String),
    ],
};

static LIFECYCLE_HANDLER: Message = Message {
    name: "io.k8s.api.core.v1.LifecycleHandler",
    fields: &[
        field(1, "exec", Kind::Message(&EXEC_ACTION)),
        field(2, "httpGet", Kind::Message(&HTTP_GET_ACTION)),
        field(3, "tcpSocket", Kind::Message(&TCP_SOCKET_ACTION)),
        field(4, "sleep", Kind::Message(&SLEEP_ACTION)),
    ],
};

static LINUX_CONTAINER_USER: Message = Message {
    name: "io.k8s.api.core.v1.LinuxContainerUser",
    fields: &[
        field(1, "uid", Kind::Int64),
        field(2, "gid", Kind::Int64),
        repeated(3, "supplementalGroups", Kind::Int64),
    ],
};

static LOAD_BALANCER_INGRESS: Message = Message {
    name: "io.k8s.api.core.v1.LoadBalancerIngress",
    fields: &[
        omitempty(1, "ip", Kind::String),
        omitempty(2, "hostname", Kind::String),
        field(3, "ipMode", Kind::String),
        repeated(4, "ports", Kind::Message(&PORT_STATUS)),
    ],
};

static LOAD_BALANCER_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.LoadBalancerStatus",
    fields: &[
        repeated(1, "ingress", Kind::Message(&LOAD_BALANCER_INGRESS)),
    ],
};

static LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "io.k8s.api.core.v1.LocalObjectReference",
    fields: &[
        field(1, "name", Kind::String),
    ],
};

static MANAGED_FIELDS_ENTRY: Message = Message {
    name: "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry",
    fields: &[
        omitempty(1, "manager", Kind::String),
        omitempty(2, "operation", Kind::String),
        omitempty(3, "apiVersion", Kind::String),
        field(4, "time", Kind::Time),
        omitempty(6, "fieldsType", Kind::String),
        field(7, "fieldsV1", Kind::RawJson),
        omitempty(8, "subresource", Kind::String),
    ],
};

static NAMESPACE: Message = Message {
    name: "io.k8s.api.core.v1.Namespace",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "spec", Kind::Message(&NAMESPACE_SPEC)),
        field(3, "status", Kind::Message(&NAMESPACE_STATUS)),
    ],
};

static NAMESPACE_CONDITION: Message = Message {
    name: "io.k8s.api.core.v1.NamespaceCondition",
    fields: &[
        field(1, "type", Kind::String),
        field(2, "status", Kind::String),
        field(4, "lastTransitionTime", Kind::Time),
        omitempty(5, "reason", Kind::String),
        omitempty(6, "message", Kind::String),
    ],
};

static NAMESPACE_SPEC: Message = Message {
    name: "io.k8s.api.core.v1.NamespaceSpec",
    fields: &[
        repeated(1, "finalizers", Kind::String),
    ],
};

static NAMESPACE_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.NamespaceStatus",
    fields: &[
        omitempty(1, "phase", Kind::String),
        repeated(2, "conditions", Kind::Message(&NAMESPACE_CONDITION)),
    ],
};

static NFS_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.NFSVolumeSource",
    fields: &[
        field(1, "server", Kind::String),
        field(2, "path", Kind::String),
        omitempty(3, "readOnly", Kind::Bool),
    ],
};

static NODE: Message = Message {
    name: "io.k8s.api.core.v1.Node",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "spec", Kind::Message(&NODE_SPEC)),
        field(3, "status", Kind::Message(&NODE_STATUS)),
    ],
};

static NODE_ADDRESS: Message = Message {
    name: "io.k8s.api.core.v1.NodeAddress",
    fields: &[
        field(1, "type", Kind::String),
        field(2, "address", Kind::String),
    ],
};

static NODE_AFFINITY: Message = Message {
    name: "io.k8s.api.core.v1.NodeAffinity",
    fields: &[
        field(1, "requiredDuringSchedulingIgnoredDuringExecution", Kind::Message(&NODE_SELECTOR)),
        repeated(2, "preferredDuringSchedulingIgnoredDuringExecution", Kind::Message(&PREFERRED_SCHEDULING_TERM)),
    ],
};

static NODE_CONDITION: Message = Message {
    name: "io.k8s.api.core.v1.NodeCondition",
    fields: &[
        field(1, "type", Kind::String),
        field(2, "status", Kind::String),
        field(3, "lastHeartbeatTime", Kind::Time),
        field(4, "lastTransitionTime", Kind::Time),
        omitempty(5, "reason", Kind::String),
        omitempty(6, "message", Kind::String),
    ],
};

static NODE_CONFIG_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.NodeConfigSource",
    fields: &[
        field(2, "configMap", Kind::Message(&CONFIG_MAP_NODE_CONFIG_SOURCE)),
    ],
};

static NODE_CONFIG_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.NodeConfigStatus",
    fields: &[
        field(1, "assigned", Kind::Message(&NODE_CONFIG_SOURCE)),
        field(2, "active", Kind::Message(&NODE_CONFIG_SOURCE)),
        field(3, "lastKnownGood", Kind::Message(&NODE_CONFIG_SOURCE)),
        omitempty(4, "error", Kind::String),
    ],
};

static NODE_DAEMON_ENDPOINTS: Message = Message {
    name: "io.k8s.api.core.v1.NodeDaemonEndpoints",
    fields: &[
        field(1, "kubeletEndpoint", Kind::Message(&DAEMON_ENDPOINT)),
    ],
};

static NODE_FEATURES: Message = Message {
    name: "io.k8s.api.core.v1.NodeFeatures",
    fields: &[
        field(1, "supplementalGroupsPolicy", Kind::Bool),
    ],
};

static NODE_RUNTIME_HANDLER: Message = Message {
    name: "io.k8s.api.core.v1.NodeRuntimeHandler",
    fields: &[
        omitempty(1, "name", Kind::String),
        field(2, "features", Kind::Message(&NODE_RUNTIME_HANDLER_FEATURES)),
    ],
};

static NODE_RUNTIME_HANDLER_FEATURES: Message = Message {
    name: "io.k8s.api.core.v1.NodeRuntimeHandlerFeatures",
    fields: &[
        field(1, "recursiveReadOnlyMounts", Kind::Bool),
        field(2, "userNamespaces", Kind::Bool),
    ],
};

static NODE_SELECTOR: Message = Message {
    name: "io.k8s.api.core.v1.NodeSelector",
    fields: &[
        repeated(1, "nodeSelectorTerms", Kind::Message(&NODE_SELECTOR_TERM)),
    ],
};

static NODE_SELECTOR_REQUIREMENT: Message = Message {
    name: "io.k8s.api.core.v1.NodeSelectorRequirement",
    fields: &[
        field(1, "key", Kind::String),
        field(2, "operator", Kind::String),
        repeated(3, "values", Kind::String),
    ],
};

static NODE_SELECTOR_TERM: Message = Message {
    name: "io.k8s.api.core.v1.NodeSelectorTerm",
    fields: &[
        repeated(1, "matchExpressions", Kind::Message(&NODE_SELECTOR_REQUIREMENT)),
        repeated(2, "matchFields", Kind::Message(&NODE_SELECTOR_REQUIREMENT)),
    ],
};

static NODE_SPEC: Message = Message {
    name: "io.k8s.api.core.v1.NodeSpec",
    fields: &[
        omitempty(1, "podCIDR", Kind::String),
        repeated(7, "podCIDRs", Kind::String),
        omitempty(3, "providerID", Kind::String),
        omitempty(4, "unschedulable", Kind::Bool),
        repeated(5, "taints", Kind::Message(&TAINT)),
        field(6, "configSource", Kind::Message(&NODE_CONFIG_SOURCE)),
        omitempty(2, "externalID", Kind::String),
    ],
};

static NODE_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.NodeStatus",
    fields: &[
        field(1, "capacity", Kind::Map(&Kind::Quantity)),
        field(2, "allocatable", Kind::Map(&Kind::Quantity)),
        omitempty(3, "phase", Kind::String),
        repeated(4, "conditions", Kind::Message(&NODE_CONDITION)),
        repeated(5, "addresses", Kind::Message(&NODE_ADDRESS)),
        field(6, "daemonEndpoints", Kind::Message(&NODE_DAEMON_ENDPOINTS)),
        field(7, "nodeInfo", Kind::Message(&NODE_SYSTEM_INFO)),
        repeated(8, "images", Kind::Message(&CONTAINER_IMAGE)),
        repeated(9, "volumesInUse", Kind::String),
        repeated(10, "volumesAttached", Kind::Message(&ATTACHED_VOLUME)),
        field(11, "config", Kind::Message(&NODE_CONFIG_STATUS)),
        repeated(12, "runtimeHandlers", Kind::Message(&NODE_RUNTIME_HANDLER)),
        field(13, "features", Kind::Message(&NODE_FEATURES)),
        repeated(14, "declaredFeatures", Kind::String),
    ],
};

static NODE_SWAP_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.NodeSwapStatus",
    fields: &[
        field(1, "capacity", Kind::Int64),
    ],
};

static NODE_SYSTEM_INFO: Message = Message {
    name: "io.k8s.api.core.v1.NodeSystemInfo",
    fields: &[
        field(1, "machineID", Kind::String),
        field(2, "systemUUID", Kind::String),
        field(3, "bootID", Kind::String),
        field(4, "kernelVersion", Kind::String),
        field(5, "osImage", Kind::String),
        field(6, "containerRuntimeVersion", Kind::String),
        field(7, "kubeletVersion", Kind::String),
        field(8, "kubeProxyVersion", Kind::String),
        field(9, "operatingSystem", Kind::String),
        field(10, "architecture", Kind::String),
        field(11, "swap", Kind::Message(&NODE_SWAP_STATUS)),
    ],
};

static OBJECT_FIELD_SELECTOR: Message = Message {
    name: "io.k8s.api.core.v1.ObjectFieldSelector",
    fields: &[
        omitempty(1, "apiVersion", Kind::String),
        field(2, "fieldPath", Kind::String),
    ],
};

static OBJECT_META: Message = Message {
    name: "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    fields: &[
        omitempty(1, "name", Kind::String),
        omitempty(2, "generateName", Kind::String),
        omitempty(3, "namespace", Kind::String),
        omitempty(4, "selfLink", Kind::String),
        omitempty(5, "uid", Kind::String),
        omitempty(6, "resourceVersion", Kind::String),
        omitempty(7, "generation", Kind::Int64),
        field(8, "creationTimestamp", Kind::Time),
        field(9, "deletionTimestamp", Kind::Time),
        field(10, "deletionGracePeriodSeconds", Kind::Int64),
        field(11, "labels", Kind::Map(&Kind::String)),
        field(12, "annotations", Kind::Map(&Kind::String)),
        repeated(13, "ownerReferences", Kind::Message(&OWNER_REFERENCE)),
        repeated(14, "finalizers", Kind::String),
        repeated(17, "managedFields", Kind::Message(&MANAGED_FIELDS_ENTRY)),
    ],
};

static OBJECT_REFERENCE: Message = Message {
    name: "io.k8s.api.core.v1.ObjectReference",
    fields: &[
        omitempty(1, "kind", Kind::String),
        omitempty(2, "namespace", Kind::String),
        omitempty(3, "name", Kind::String),
        omitempty(4, "uid", Kind::String),
        omitempty(5, "apiVersion", Kind::String),
        omitempty(6, "resourceVersion", Kind::String),
        omitempty(7, "fieldPath", Kind::String),
    ],
};

static OWNER_REFERENCE: Message = Message {
    name: "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
    fields: &[
        field(5, "apiVersion", Kind::String),
        field(1, "kind", Kind::String),
        field(3, "name", Kind::String),
        field(4, "uid", Kind::String),
        field(6, "controller", Kind::Bool),
        field(7, "blockOwnerDeletion", Kind::Bool),
    ],
};

static PERSISTENT_VOLUME_CLAIM_SPEC: Message = Message {
    name: "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
    fields: &[
        repeated(1, "accessModes", Kind::String),
        field(4, "selector", Kind::Message(&LABEL_SELECTOR)),
        field(2, "resources", Kind::Message(&VOLUME_RESOURCE_REQUIREMENTS)),
        omitempty(3, "volumeName", Kind::String),
        field(5, "storageClassName", Kind::String),
        field(6, "volumeMode", Kind::String),
        field(7, "dataSource", Kind::Message(&TYPED_LOCAL_OBJECT_REFERENCE)),
        field(8, "dataSourceRef", Kind::Message(&TYPED_OBJECT_REFERENCE)),
        field(9, "volumeAttributesClassName", Kind::String),
    ],
};

static PERSISTENT_VOLUME_CLAIM_TEMPLATE: Message = Message {
    name: "io.k8s.api.core.v1.PersistentVolumeClaimTemplate",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "spec", Kind::Message(&PERSISTENT_VOLUME_CLAIM_SPEC)),
    ],
};

static PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.PersistentVolumeClaimVolumeSource",
    fields: &[
        field(1, "claimName", Kind::String),
        omitempty(2, "readOnly", Kind::Bool),
    ],
};

static PHOTON_PERSISTENT_DISK_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.PhotonPersistentDiskVolumeSource",
    fields: &[
        field(1, "pdID", Kind::String),
        omitempty(2, "fsType", Kind::String),
    ],
};

static POD: Message = Message {
    name: "io.k8s.api.core.v1.Pod",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "spec", Kind::Message(&POD_SPEC)),
        field(3, "status", Kind::Message(&POD_STATUS)),
    ],
};

static POD_AFFINITY: Message = Message {
    name: "io.k8s.api.core.v1.PodAffinity",
    fields: &[
        repeated(1, "requiredDuringSchedulingIgnoredDuringExecution", Kind::Message(&POD_AFFINITY_TERM)),
        repeated(2, "preferredDuringSchedulingIgnoredDuringExecution", Kind::Message(&WEIGHTED_POD_AFFINITY_TERM)),
    ],
};

static POD_AFFINITY_TERM: Message = Message {
    name: "io.k8s.api.core.v1.PodAffinityTerm",
    fields: &[
        field(1, "labelSelector", Kind::Message(&LABEL_SELECTOR)),
        repeated(2, "namespaces", Kind::String),
        field(3, "topologyKey", Kind::String),
        field(4, "namespaceSelector", Kind::Message(&LABEL_SELECTOR)),
        repeated(5, "matchLabelKeys", Kind::String),
        repeated(6, "mismatchLabelKeys", Kind::String),
    ],
};

static POD_ANTI_AFFINITY: Message = Message {
    name: "io.k8s.api.core.v1.PodAntiAffinity",
    fields: &[
        repeated(1, "requiredDuringSchedulingIgnoredDuringExecution", Kind::Message(&POD_AFFINITY_TERM)),
        repeated(2, "preferredDuringSchedulingIgnoredDuringExecution", Kind::Message(&WEIGHTED_POD_AFFINITY_TERM)),
    ],
};

static POD_CERTIFICATE_PROJECTION: Message = Message {
    name: "io.k8s.api.core.v1.PodCertificateProjection",
    fields: &[
        field(1, "signerName", Kind::String),
        field(2, "keyType", Kind::String),
        field(3, "maxExpirationSeconds", Kind::Int32),
        omitempty(4, "credentialBundlePath", Kind::String),
        omitempty(5, "keyPath", Kind::String),
        omitempty(6, "certificateChainPath", Kind::String),
        field(7, "userAnnotations", Kind::Map(&Kind::String)),
    ],
};

static POD_CONDITION: Message = Message {
    name: "io.k8s.api.core.v1.PodCondition",
    fields: &[
        field(1, "type", Kind::String),
        omitempty(7, "observedGeneration", Kind::Int64),
        field(2, "status", Kind::String),
        field(3, "lastProbeTime", Kind::Time),
        field(4, "lastTransitionTime", Kind::Time),
        omitempty(5, "reason", Kind::String),
        omitempty(6, "message", Kind::String),
    ],
};

static POD_DNS_CONFIG: Message = Message {
    name: "io.k8s.api.core.v1.PodDNSConfig",
    fields: &[
        repeated(1, "nameservers", Kind::String),
        repeated(2, "searches", Kind::String),
        repeated(3, "options", Kind::Message(&POD_DNS_CONFIG_OPTION)),
    ],
};

static POD_DNS_CONFIG_OPTION: Message = Message {
    name: "io.k8s.api.core.v1.PodDNSConfigOption",
    fields: &[
        omitempty(1, "name", Kind::String),
        field(2, "value", Kind::String),
    ],
};

static POD_EXTENDED_RESOURCE_CLAIM_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.PodExtendedResourceClaimStatus",
    fields: &[
        repeated(1, "requestMappings", Kind::Message(&CONTAINER_EXTENDED_RESOURCE_REQUEST)),
        field(2, "resourceClaimName", Kind::String),
    ],
};

static POD_IP: Message = Message {
    name: "io.k8s.api.core.v1.PodIP",
    fields: &[
        field(1, "ip", Kind::String),
    ],
};

static POD_OS: Message = Message {
    name: "io.k8s.api.core.v1.PodOS",
    fields: &[
        field(1, "name", Kind::String),
    ],
};

static POD_READINESS_GATE: Message = Message {
    name: "io.k8s.api.core.v1.PodReadinessGate",
    fields: &[
        field(1, "conditionType", Kind::String),
    ],
};

static POD_RESOURCE_CLAIM: Message = Message {
    name: "io.k8s.api.core.v1.PodResourceClaim",
    fields: &[
        field(1, "name", Kind::String),
        field(3, "resourceClaimName", Kind::String),
        field(4, "resourceClaimTemplateName", Kind::String),
    ],
};

static POD_RESOURCE_CLAIM_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.PodResourceClaimStatus",
    fields: &[
        field(1, "name", Kind::String),
        field(2, "resourceClaimName", Kind::String),
    ],
};

static POD_SCHEDULING_GATE: Message = Message {
    name: "io.k8s.api.core.v1.PodSchedulingGate",
    fields: &[
        field(1, "name", Kind::String),
    ],
};

static POD_SECURITY_CONTEXT: Message = Message {
    name: "io.k8s.api.core.v1.PodSecurityContext",
    fields: &[
        field(1, "seLinuxOptions", Kind::Message(&SE_LINUX_OPTIONS)),
        field(8, "windowsOptions", Kind::Message(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        field(2, "runAsUser", Kind::Int64),
        field(6, "runAsGroup", Kind::Int64),
        field(3, "runAsNonRoot", Kind::Bool),
        repeated(4, "supplementalGroups", Kind::Int64),
        field(12, "supplementalGroupsPolicy", Kind::String),
        field(5, "fsGroup", Kind::Int64),
        repeated(7, "sysctls", Kind::Message(&SYSCTL)),
        field(9, "fsGroupChangePolicy", Kind::String),
        field(10, "seccompProfile", Kind::Message(&SECCOMP_PROFILE)),
        field(11, "appArmorProfile", Kind::Message(&APP_ARMOR_PROFILE)),
        field(13, "seLinuxChangePolicy", Kind::String),
    ],
};

static POD_SPEC: Message = Message {
    name: "io.k8s.api.core.v1.PodSpec",
    fields: &[
        repeated(1, "volumes", Kind::Message(&VOLUME)),
        repeated(20, "initContainers", Kind::Message(&CONTAINER)),
        repeated(2, "containers", Kind::Message(&CONTAINER)),
        repeated(34, "ephemeralContainers", Kind::Message(&EPHEMERAL_CONTAINER)),
        omitempty(3, "restartPolicy", Kind::String),
        field(4, "terminationGracePeriodSeconds", Kind::Int64),
        field(5, "activeDeadlineSeconds", Kind::Int64),
        omitempty(6, "dnsPolicy", Kind::String),
        field(7, "nodeSelector", Kind::Map(&Kind::String)),
        omitempty(8, "serviceAccountName", Kind::String),
        omitempty(9, "serviceAccount", Kind::String),
        field(21, "automountServiceAccountToken", Kind::Bool),
        omitempty(10, "nodeName", Kind::String),
        omitempty(11, "hostNetwork", Kind::Bool),
        omitempty(12, "hostPID", Kind::Bool),
        omitempty(13, "hostIPC", Kind::Bool),
        field(27, "shareProcessNamespace", Kind::Bool),
        field(14, "securityContext", Kind::Message(&POD_SECURITY_CONTEXT)),
        repeated(15, "imagePullSecrets", Kind::Message(&LOCAL_OBJECT_REFERENCE)),
        omitempty(16, "hostname", Kind::String),
        omitempty(17, "subdomain", Kind::String),
        field(18, "affinity", Kind::Message(&AFFINITY)),
        omitempty(19, "schedulerName", Kind::String),
        repeated(22, "tolerations", Kind::Message(&TOLERATION)),
        repeated(23, "hostAliases", Kind::Message(&HOST_ALIAS)),
        omitempty(24, "priorityClassName", Kind::String),
        field(25, "priority", Kind::Int32),
        field(26, "dnsConfig", Kind::Message(&POD_DNS_CONFIG)),
        repeated(28, "readinessGates", Kind::Message(&POD_READINESS_GATE)),
        field(29, "runtimeClassName", Kind::String),
        field(30, "enableServiceLinks", Kind::Bool),
        field(31, "preemptionPolicy", Kind::String),
        field(32, "overhead", Kind::Map(&Kind::Quantity)),
        repeated(33, "topologySpreadConstraints", Kind::Message(&TOPOLOGY_SPREAD_CONSTRAINT)),
        field(35, "setHostnameAsFQDN", Kind::Bool),
        field(36, "os", Kind::Message(&POD_OS)),
        field(37, "hostUsers", Kind::Bool),
        repeated(38, "schedulingGates", Kind::Message(&POD_SCHEDULING_GATE)),
        repeated(39, "resourceClaims", Kind::Message(&POD_RESOURCE_CLAIM)),
        field(40, "resources", Kind::Message(&RESOURCE_REQUIREMENTS)),
        field(41, "hostnameOverride", Kind::String),
        field(42, "workloadRef", Kind::Message(&WORKLOAD_REFERENCE)),
    ],
};

static POD_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.PodStatus",
    fields: &[
        omitempty(17, "observedGeneration", Kind::Int64),
        omitempty(1, "phase", Kind::String),
        repeated(2, "conditions", Kind::Message(&POD_CONDITION)),
        omitempty(3, "message", Kind::String),
        omitempty(4, "reason", Kind::String),
        omitempty(11, "nominatedNodeName", Kind::String),
        omitempty(5, "hostIP", Kind::String),
        repeated(16, "hostIPs", Kind::Message(&HOST_IP)),
        omitempty(6, "podIP", Kind::String),
        repeated(12, "podIPs", Kind::Message(&POD_IP)),
        field(7, "startTime", Kind::Time),
        repeated(10, "initContainerStatuses", Kind::Message(&CONTAINER_STATUS)),
        repeated(8, "containerStatuses", Kind::Message(&CONTAINER_STATUS)),
        omitempty(9, "qosClass", Kind::String),
        repeated(13, "ephemeralContainerStatuses", Kind::Message(&CONTAINER_STATUS)),
        omitempty(14, "resize", Kind::String),
        repeated(15, "resourceClaimStatuses", Kind::Message(&POD_RESOURCE_CLAIM_STATUS)),
        field(18, "extendedResourceClaimStatus", Kind::Message(&POD_EXTENDED_RESOURCE_CLAIM_STATUS)),
        field(19, "allocatedResources", Kind::Map(&Kind::Quantity)),
        field(20, "resources", Kind::Message(&RESOURCE_REQUIREMENTS)),
    ],
};

static POD_TEMPLATE_SPEC: Message = Message {
    name: "io.k8s.api.core.v1.PodTemplateSpec",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "spec", Kind::Message(&POD_SPEC)),
    ],
};

static PORTWORX_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.PortworxVolumeSource",
    fields: &[
        field(1, "volumeID", Kind::String),
        omitempty(2, "fsType", Kind::String),
        omitempty(3, "readOnly", Kind::Bool),
    ],
};

static PORT_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.PortStatus",
    fields: &[
        field(1, "port", Kind::Int32),
        field(2, "protocol", Kind::String),
        field(3, "error", Kind::String),
    ],
};

static PRECONDITIONS: Message = Message {
    name: "io.k8s.apimachinery.pkg.apis.meta.v1.Preconditions",
    fields: &[
        field(1, "uid", Kind::String),
        field(2, "resourceVersion", Kind::String),
    ],
};

static PREFERRED_SCHEDULING_TERM: Message = Message {
    name: "io.k8s.api.core.v1.PreferredSchedulingTerm",
    fields: &[
        field(1, "weight", Kind::Int32),
        field(2, "preference", Kind::Message(&NODE_SELECTOR_TERM)),
    ],
};

static PROBE: Message = Message {
    name: "io.k8s.api.core.v1.Probe",
    fields: &[
        inline(1, &PROBE_HANDLER),
        omitempty(2, "initialDelaySeconds", Kind::Int32),
        omitempty(3, "timeoutSeconds", Kind::Int32),
        omitempty(4, "periodSeconds", Kind::Int32),
        omitempty(5, "successThreshold", Kind::Int32),
        omitempty(6, "failureThreshold", Kind::Int32),
        field(7, "terminationGracePeriodSeconds", Kind::Int64),
    ],
};

static PROBE_HANDLER: Message = Message {
    name: "io.k8s.api.core.v1.ProbeHandler",
    fields: &[
        field(1, "exec", Kind::Message(&EXEC_ACTION)),
        field(2, "httpGet", Kind::Message(&HTTP_GET_ACTION)),
        field(3, "tcpSocket", Kind::Message(&TCP_SOCKET_ACTION)),
        field(4, "grpc", Kind::Message(&GRPC_ACTION)),
    ],
};

static PROJECTED_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.ProjectedVolumeSource",
    fields: &[
        repeated(1, "sources", Kind::Message(&VOLUME_PROJECTION)),
        field(2, "defaultMode", Kind::Int32),
    ],
};

static QUOBYTE_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.QuobyteVolumeSource",
    fields: &[
        field(1, "registry", Kind::String),
        field(2, "volume", Kind::String),
        omitempty(3, "readOnly", Kind::Bool),
        omitempty(4, "user", Kind::String),
        omitempty(5, "group", Kind::String),
        omitempty(6, "tenant", Kind::String),
    ],
};

static RBD_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.RBDVolumeSource",
    fields: &[
        repeated(1, "monitors", Kind::String),
        field(2, "image", Kind::String),
        omitempty(3, "fsType", Kind::String),
        omitempty(4, "pool", Kind::String),
        omitempty(5, "user", Kind::String),
        omitempty(6, "keyring", Kind::String),
        field(7, "secretRef", Kind::Message(&LOCAL_OBJECT_REFERENCE)),
        omitempty(8, "readOnly", Kind::Bool),
    ],
};

static REPLICATION_CONTROLLER: Message = Message {
    name: "io.k8s.api.core.v1.ReplicationController",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "spec", Kind::Message(&REPLICATION_CONTROLLER_SPEC)),
        field(3, "status", Kind::Message(&REPLICATION_CONTROLLER_STATUS)),
    ],
};

static REPLICATION_CONTROLLER_CONDITION: Message = Message {
    name: "io.k8s.api.core.v1.ReplicationControllerCondition",
    fields: &[
        field(1, "type", Kind::String),
        field(2, "status", Kind::String),
        field(3, "lastTransitionTime", Kind::Time),
        omitempty(4, "reason", Kind::String),
        omitempty(5, "message", Kind::String),
    ],
};

static REPLICATION_CONTROLLER_SPEC: Message = Message {
    name: "io.k8s.api.core.v1.ReplicationControllerSpec",
    fields: &[
        field(1, "replicas", Kind::Int32),
        omitempty(4, "minReadySeconds", Kind::Int32),
        field(2, "selector", Kind::Map(&Kind::String)),
        field(3, "template", Kind::Message(&POD_TEMPLATE_SPEC)),
    ],
};

static REPLICATION_CONTROLLER_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.ReplicationControllerStatus",
    fields: &[
        field(1, "replicas", Kind::Int32),
        omitempty(2, "fullyLabeledReplicas", Kind::Int32),
        omitempty(4, "readyReplicas", Kind::Int32),
        omitempty(5, "availableReplicas", Kind::Int32),
        omitempty(3, "observedGeneration", Kind::Int64),
        repeated(6, "conditions", Kind::Message(&REPLICATION_CONTROLLER_CONDITION)),
    ],
};

static REPLICA_SET: Message = Message {
    name: "io.k8s.api.apps.v1.ReplicaSet",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "spec", Kind::Message(&REPLICA_SET_SPEC)),
        field(3, "status", Kind::Message(&REPLICA_SET_STATUS)),
    ],
};

static REPLICA_SET_CONDITION: Message = Message {
    name: "io.k8s.api.apps.v1.ReplicaSetCondition",
    fields: &[
        field(1, "type", Kind::String),
        field(2, "status", Kind::String),
        field(3, "lastTransitionTime", Kind::Time),
        omitempty(4, "reason", Kind::String),
        omitempty(5, "message", Kind::String),
    ],
};

static REPLICA_SET_SPEC: Message = Message {
    name: "io.k8s.api.apps.v1.ReplicaSetSpec",
    fields: &[
        field(1, "replicas", Kind::Int32),
        omitempty(4, "minReadySeconds", Kind::Int32),
        field(2, "selector", Kind::Message(&LABEL_SELECTOR)),
        field(3, "template", Kind::Message(&POD_TEMPLATE_SPEC)),
    ],
};

static REPLICA_SET_STATUS: Message = Message {
    name: "io.k8s.api.apps.v1.ReplicaSetStatus",
    fields: &[
        field(1, "replicas", Kind::Int32),
        omitempty(2, "fullyLabeledReplicas", Kind::Int32),
        omitempty(4, "readyReplicas", Kind::Int32),
        omitempty(5, "availableReplicas", Kind::Int32),
        field(7, "terminatingReplicas", Kind::Int32),
        omitempty(3, "observedGeneration", Kind::Int64),
        repeated(6, "conditions", Kind::Message(&REPLICA_SET_CONDITION)),
    ],
};

static RESOURCE_CLAIM: Message = Message {
    name: "io.k8s.api.core.v1.ResourceClaim",
    fields: &[
        field(1, "name", Kind::String),
        omitempty(2, "request", Kind::String),
    ],
};

static RESOURCE_FIELD_SELECTOR: Message = Message {
    name: "io.k8s.api.core.v1.ResourceFieldSelector",
    fields: &[
        omitempty(1, "containerName", Kind::String),
        field(2, "resource", Kind::String),
        field(3, "divisor", Kind::Quantity),
    ],
};

static RESOURCE_HEALTH: Message = Message {
    name: "io.k8s.api.core.v1.ResourceHealth",
    fields: &[
        field(1, "resourceID", Kind::String),
        omitempty(2, "health", Kind::String),
    ],
};

static RESOURCE_REQUIREMENTS: Message = Message {
    name: "io.k8s.api.core.v1.ResourceRequirements",
    fields: &[
        field(1, "limits", Kind::Map(&Kind::Quantity)),
        field(2, "requests", Kind::Map(&Kind::Quantity)),
        repeated(3, "claims", Kind::Message(&RESOURCE_CLAIM)),
    ],
};

static RESOURCE_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.ResourceStatus",
    fields: &[
        field(1, "name", Kind::String),
        repeated(2, "resources", Kind::Message(&RESOURCE_HEALTH)),
    ],
};

static ROLLING_UPDATE_DEPLOYMENT: Message = Message {
    name: "io.k8s.api.apps.v1.RollingUpdateDeployment",
    fields: &[
        omitempty(1, "maxUnavailable", Kind::IntOrString),
        omitempty(2, "maxSurge", Kind::IntOrString),
    ],
};

static SCALE: Message = Message {
    name: "io.k8s.api.autoscaling.v1.Scale",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "spec", Kind::Message(&SCALE_SPEC)),
        field(3, "status", Kind::Message(&SCALE_STATUS)),
    ],
};

static SCALE_IO_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.ScaleIOVolumeSource",
    fields: &[
        field(1, "gateway", Kind::String),
        field(2, "system", Kind::String),
        field(3, "secretRef", Kind::Message(&LOCAL_OBJECT_REFERENCE)),
        omitempty(4, "sslEnabled", Kind::Bool),
        omitempty(5, "protectionDomain", Kind::String),
        omitempty(6, "storagePool", Kind::String),
        omitempty(7, "storageMode", Kind::String),
        omitempty(8, "volumeName", Kind::String),
        omitempty(9, "fsType", Kind::String),
        omitempty(10, "readOnly", Kind::Bool),
    ],
};

static SCALE_SPEC: Message = Message {
    name: "io.k8s.api.autoscaling.v1.ScaleSpec",
    fields: &[
        omitempty(1, "replicas", Kind::Int32),
    ],
};

static SCALE_STATUS: Message = Message {
    name: "io.k8s.api.autoscaling.v1.ScaleStatus",
    fields: &[
        field(1, "replicas", Kind::Int32),
        omitempty(2, "selector", Kind::String),
    ],
};

static SECCOMP_PROFILE: Message = Message {
    name: "io.k8s.api.core.v1.SeccompProfile",
    fields: &[
        field(1, "type", Kind::String),
        field(2, "localhostProfile", Kind::String),
    ],
};

static SECRET: Message = Message {
    name: "io.k8s.api.core.v1.Secret",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(5, "immutable", Kind::Bool),
        field(2, "data", Kind::Map(&Kind::Bytes)),
        field(4, "stringData", Kind::Map(&Kind::String)),
        omitempty(3, "type", Kind::String),
    ],
};

static SECRET_ENV_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.SecretEnvSource",
    fields: &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        field(2, "optional", Kind::Bool),
    ],
};

static SECRET_KEY_SELECTOR: Message = Message {
    name: "io.k8s.api.core.v1.SecretKeySelector",
    fields: &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        field(2, "key", Kind::String),
        field(3, "optional", Kind::Bool),
    ],
};

static SECRET_PROJECTION: Message = Message {
    name: "io.k8s.api.core.v1.SecretProjection",
    fields: &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        repeated(2, "items", Kind::Message(&KEY_TO_PATH)),
        field(4, "optional", Kind::Bool),
    ],
};

static SECRET_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.SecretVolumeSource",
    fields: &[
        omitempty(1, "secretName", Kind::String),
        repeated(2, "items", Kind::Message(&KEY_TO_PATH)),
        field(3, "defaultMode", Kind::Int32),
        field(4, "optional", Kind::Bool),
    ],
};

static SECURITY_CONTEXT: Message = Message {
    name: "io.k8s.api.core.v1.SecurityContext",
    fields: &[
        field(1, "capabilities", Kind::Message(&CAPABILITIES)),
        field(2, "privileged", Kind::Bool),
        field(3, "seLinuxOptions", Kind::Message(&SE_LINUX_OPTIONS)),
        field(10, "windowsOptions", Kind::Message(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        field(4, "runAsUser", Kind::Int64),
        field(8, "runAsGroup", Kind::Int64),
        field(5, "runAsNonRoot", Kind::Bool),
        field(6, "readOnlyRootFilesystem", Kind::Bool),
        field(7, "allowPrivilegeEscalation", Kind::Bool),
        field(9, "procMount", Kind::String),
        field(11, "seccompProfile", Kind::Message(&SECCOMP_PROFILE)),
        field(12, "appArmorProfile", Kind::Message(&APP_ARMOR_PROFILE)),
    ],
};

static SERVICE: Message = Message {
    name: "io.k8s.api.core.v1.Service",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        field(2, "spec", Kind::Message(&SERVICE_SPEC)),
        field(3, "status", Kind::Message(&SERVICE_STATUS)),
    ],
};

static SERVICE_ACCOUNT: Message = Message {
    name: "io.k8s.api.core.v1.ServiceAccount",
    fields: &[
        field(1, "metadata", Kind::Message(&OBJECT_META)),
        repeated(2, "secrets", Kind::Message(&OBJECT_REFERENCE)),
        repeated(3, "imagePullSecrets", Kind::Message(&LOCAL_OBJECT_REFERENCE)),
        field(4, "automountServiceAccountToken", Kind::Bool),
    ],
};

static SERVICE_ACCOUNT_TOKEN_PROJECTION: Message = Message {
    name: "io.k8s.api.core.v1.ServiceAccountTokenProjection",
    fields: &[
        omitempty(1, "audience", Kind::String),
        field(2, "expirationSeconds", Kind::Int64),
        field(3, "path", Kind::String),
    ],
};

static SERVICE_PORT: Message = Message {
    name: "io.k8s.api.core.v1.ServicePort",
    fields: &[
        omitempty(1, "name", Kind::String),
        omitempty(2, "protocol", Kind::String),
        field(6, "appProtocol", Kind::String),
        field(3, "port", Kind::Int32),
        omitempty(4, "targetPort", Kind::IntOrString),
        omitempty(5, "nodePort", Kind::Int32),
    ],
};

static SERVICE_SPEC: Message = Message {
    name: "io.k8s.api.core.v1.ServiceSpec",
    fields: &[
        repeated(1, "ports", Kind::Message(&SERVICE_PORT)),
        field(2, "selector", Kind::Map(&Kind::String)),
        omitempty(3, "clusterIP", Kind::String),
        repeated(18, "clusterIPs", Kind::String),
        omitempty(4, "type", Kind::String),
        repeated(5, "externalIPs", Kind::String),
        omitempty(7, "sessionAffinity", Kind::String),
        omitempty(8, "loadBalancerIP", Kind::String),
        repeated(9, "loadBalancerSourceRanges", Kind::String),
        omitempty(10, "externalName", Kind::String),
        omitempty(11, "externalTrafficPolicy", Kind::String),
        omitempty(12, "healthCheckNodePort", Kind::Int32),
        omitempty(13, "publishNotReadyAddresses", Kind::Bool),
        field(14, "sessionAffinityConfig", Kind::Message(&SESSION_AFFINITY_CONFIG)),
        repeated(19, "ipFamilies", Kind::String),
        field(17, "ipFamilyPolicy", Kind::String),
        field(20, "allocateLoadBalancerNodePorts", Kind::Bool),
        field(21, "loadBalancerClass", Kind::String),
        field(22, "internalTrafficPolicy", Kind::String),
        field(23, "trafficDistribution", Kind::String),
    ],
};

static SERVICE_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.ServiceStatus",
    fields: &[
        field(1, "loadBalancer", Kind::Message(&LOAD_BALANCER_STATUS)),
        repeated(2, "conditions", Kind::Message(&CONDITION)),
    ],
};

static SESSION_AFFINITY_CONFIG: Message = Message {
    name: "io.k8s.api.core.v1.SessionAffinityConfig",
    fields: &[
        field(1, "clientIP", Kind::Message(&CLIENT_IP_CONFIG)),
    ],
};

static SE_LINUX_OPTIONS: Message = Message {
    name: "io.k8s.api.core.v1.SELinuxOptions",
    fields: &[
        omitempty(1, "user", Kind::String),
        omitempty(2, "role", Kind::String),
        omitempty(3, "type", Kind::String),
        omitempty(4, "level", Kind::String),
    ],
};

static SLEEP_ACTION: Message = Message {
    name: "io.k8s.api.core.v1.SleepAction",
    fields: &[
        field(1, "seconds", Kind::Int64),
    ],
};

static STORAGE_OS_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.StorageOSVolumeSource",
    fields: &[
        omitempty(1, "volumeName", Kind::String),
        omitempty(2, "volumeNamespace", Kind::String),
        omitempty(3, "fsType", Kind::String),
        omitempty(4, "readOnly", Kind::Bool),
        field(5, "secretRef", Kind::Message(&LOCAL_OBJECT_REFERENCE)),
    ],
};

static SYSCTL: Message = Message {
    name: "io.k8s.api.core.v1.Sysctl",
    fields: &[
        field(1, "name", Kind::String),
        field(2, "value", Kind::String),
    ],
};

static TAINT: Message = Message {
    name: "io.k8s.api.core.v1.Taint",
    fields: &[
        field(1, "key", Kind::String),
        omitempty(2, "value", Kind::String),
        field(3, "effect", Kind::String),
        field(4, "timeAdded", Kind::Time),
    ],
};

static TCP_SOCKET_ACTION: Message = Message {
    name: "io.k8s.api.core.v1.TCPSocketAction",
    fields: &[
        field(1, "port", Kind::IntOrString),
        omitempty(2, "host", Kind::String),
    ],
};

static TOLERATION: Message = Message {
    name: "io.k8s.api.core.v1.Toleration",
    fields: &[
        omitempty(1, "key", Kind::String),
        omitempty(2, "operator", Kind::String),
        omitempty(3, "value", Kind::String),
        omitempty(4, "effect", Kind::String),
        field(5, "tolerationSeconds", Kind::Int64),
    ],
};

static TOPOLOGY_SPREAD_CONSTRAINT: Message = Message {
    name: "io.k8s.api.core.v1.TopologySpreadConstraint",
    fields: &[
        field(1, "maxSkew", Kind::Int32),
        field(2, "topologyKey", Kind::String),
        field(3, "whenUnsatisfiable", Kind::String),
        field(4, "labelSelector", Kind::Message(&LABEL_SELECTOR)),
        field(5, "minDomains", Kind::Int32),
        field(6, "nodeAffinityPolicy", Kind::String),
        field(7, "nodeTaintsPolicy", Kind::String),
        repeated(8, "matchLabelKeys", Kind::String),
    ],
};

static TYPED_LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "io.k8s.api.core.v1.TypedLocalObjectReference",
    fields: &[
        field(1, "apiGroup", Kind::String),
        field(2, "kind", Kind::String),
        field(3, "name", Kind::String),
    ],
};

static TYPED_OBJECT_REFERENCE: Message = Message {
    name: "io.k8s.api.core.v1.TypedObjectReference",
    fields: &[
        field(1, "apiGroup", Kind::String),
        field(2, "kind", Kind::String),
        field(3, "name", Kind::String),
        field(4, "namespace", Kind::String),
    ],
};

static VOLUME: Message = Message {
    name: "io.k8s.api.core.v1.Volume",
    fields: &[
        field(1, "name", Kind::String),
        inline(2, &VOLUME_SOURCE),
    ],
};

static VOLUME_DEVICE: Message = Message {
    name: "io.k8s.api.core.v1.VolumeDevice",
    fields: &[
        field(1, "name", Kind::String),
        field(2, "devicePath", Kind::String),
    ],
};

static VOLUME_MOUNT: Message = Message {
    name: "io.k8s.api.core.v1.VolumeMount",
    fields: &[
        field(1, "name", Kind::String),
        omitempty(2, "readOnly", Kind::Bool),
        field(7, "recursiveReadOnly", Kind::String),
        field(3, "mountPath", Kind::String),
        omitempty(4, "subPath", Kind::String),
        field(5, "mountPropagation", Kind::String),
        omitempty(6, "subPathExpr", Kind::String),
    ],
};

static VOLUME_MOUNT_STATUS: Message = Message {
    name: "io.k8s.api.core.v1.VolumeMountStatus",
    fields: &[
        field(1, "name", Kind::String),
        field(2, "mountPath", Kind::String),
        omitempty(3, "readOnly", Kind::Bool),
        field(4, "recursiveReadOnly", Kind::String),
    ],
};

static VOLUME_PROJECTION: Message = Message {
    name: "io.k8s.api.core.v1.VolumeProjection",
    fields: &[
        field(1, "secret", Kind::Message(&SECRET_PROJECTION)),
        field(2, "downwardAPI", Kind::Message(&DOWNWARD_API_PROJECTION)),
        field(3, "configMap", Kind::Message(&CONFIG_MAP_PROJECTION)),
        field(4, "serviceAccountToken", Kind::Message(&SERVICE_ACCOUNT_TOKEN_PROJECTION)),
        field(5, "clusterTrustBundle", Kind::Message(&CLUSTER_TRUST_BUNDLE_PROJECTION)),
        field(6, "podCertificate", Kind::Message(&POD_CERTIFICATE_PROJECTION)),
    ],
};

static VOLUME_RESOURCE_REQUIREMENTS: Message = Message {
    name: "io.k8s.api.core.v1.VolumeResourceRequirements",
    fields: &[
        field(1, "limits", Kind::Map(&Kind::Quantity)),
        field(2, "requests", Kind::Map(&Kind::Quantity)),
    ],
};

static VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.VolumeSource",
    fields: &[
        field(1, "hostPath", Kind::Message(&HOST_PATH_VOLUME_SOURCE)),
        field(2, "emptyDir", Kind::Message(&EMPTY_DIR_VOLUME_SOURCE)),
        field(3, "gcePersistentDisk", Kind::Message(&GCE_PERSISTENT_DISK_VOLUME_SOURCE)),
        field(4, "awsElasticBlockStore", Kind::Message(&AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE)),
        field(5, "gitRepo", Kind::Message(&GIT_REPO_VOLUME_SOURCE)),
        field(6, "secret", Kind::Message(&SECRET_VOLUME_SOURCE)),
        field(7, "nfs", Kind::Message(&NFS_VOLUME_SOURCE)),
        field(8, "iscsi", Kind::Message(&ISCSI_VOLUME_SOURCE)),
        field(9, "glusterfs", Kind::Message(&GLUSTERFS_VOLUME_SOURCE)),
        field(10, "persistentVolumeClaim", Kind::Message(&PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE)),
        field(11, "rbd", Kind::Message(&RBD_VOLUME_SOURCE)),
        field(12, "flexVolume", Kind::Message(&FLEX_VOLUME_SOURCE)),
        field(13, "cinder", Kind::Message(&CINDER_VOLUME_SOURCE)),
        field(14, "cephfs", Kind::Message(&CEPH_FS_VOLUME_SOURCE)),
        field(15, "flocker", Kind::Message(&FLOCKER_VOLUME_SOURCE)),
        field(16, "downwardAPI", Kind::Message(&DOWNWARD_API_VOLUME_SOURCE)),
        field(17, "fc", Kind::Message(&FC_VOLUME_SOURCE)),
        field(18, "azureFile", Kind::Message(&AZURE_FILE_VOLUME_SOURCE)),
        field(19, "configMap", Kind::Message(&CONFIG_MAP_VOLUME_SOURCE)),
        field(20, "vsphereVolume", Kind::Message(&VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE)),
        field(21, "quobyte", Kind::Message(&QUOBYTE_VOLUME_SOURCE)),
        field(22, "azureDisk", Kind::Message(&AZURE_DISK_VOLUME_SOURCE)),
        field(23, "photonPersistentDisk", Kind::Message(&PHOTON_PERSISTENT_DISK_VOLUME_SOURCE)),
        field(26, "projected", Kind::Message(&PROJECTED_VOLUME_SOURCE)),
        field(24, "portworxVolume", Kind::Message(&PORTWORX_VOLUME_SOURCE)),
        field(25, "scaleIO", Kind::Message(&SCALE_IO_VOLUME_SOURCE)),
        field(27, "storageos", Kind::Message(&STORAGE_OS_VOLUME_SOURCE)),
        field(28, "csi", Kind::Message(&CSI_VOLUME_SOURCE)),
        field(29, "ephemeral", Kind::Message(&EPHEMERAL_VOLUME_SOURCE)),
        field(30, "image", Kind::Message(&IMAGE_VOLUME_SOURCE)),
    ],
};

static VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.VsphereVirtualDiskVolumeSource",
    fields: &[
        field(1, "volumePath", Kind::String),
        omitempty(2, "fsType", Kind::String),
        omitempty(3, "storagePolicyName", Kind::String),
        omitempty(4, "storagePolicyID", Kind::String),
    ],
};

static WEIGHTED_POD_AFFINITY_TERM: Message = Message {
    name: "io.k8s.api.core.v1.WeightedPodAffinityTerm",
    fields: &[
        field(1, "weight", Kind::Int32),
        field(2, "podAffinityTerm", Kind::Message(&POD_AFFINITY_TERM)),
    ],
};

static WINDOWS_SECURITY_CONTEXT_OPTIONS: Message = Message {
    name: "io.k8s.api.core.v1.WindowsSecurityContextOptions",
    fields: &[
        field(1, "gmsaCredentialSpecName", Kind::String),
        field(2, "gmsaCredentialSpec", Kind::String),
        field(3, "runAsUserName", Kind::String),
        field(4, "hostProcess", Kind::Bool),
    ],
};

static WORKLOAD_REFERENCE: Message = Message {
    name: "io.k8s.api.core.v1.WorkloadReference",
    fields: &[
        field(1, "name", Kind::String),
        field(2, "podGroup", Kind::String),
        omitempty(3, "podGroupReplicaKey", Kind::String),
    ],
};

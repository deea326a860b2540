use super::*;

/// Bodies kubectl v1.32 sent for its typed commands, beside the JSON it prints for the same
/// command with `--dry-run=client -o json` (Go's JSON of the very object it sends).
const KUBECTL_BODIES: &[(&str, &[u8], &str)] = &[
    (
        "create namespace x",
        include_bytes!("testdata/namespace.bin"),
        include_str!("testdata/namespace.json"),
    ),
    (
        "create deployment nginx --image=nginx",
        include_bytes!("testdata/deployment.bin"),
        include_str!("testdata/deployment.json"),
    ),
    (
        "create deployment zero --image=nginx --replicas=0 --port=8080",
        include_bytes!("testdata/deployment_zero.bin"),
        include_str!("testdata/deployment_zero.json"),
    ),
    (
        "create deployment multi --image=nginx --image=busybox --port=80 -n x",
        include_bytes!("testdata/deployment_multi.bin"),
        include_str!("testdata/deployment_multi.json"),
    ),
    (
        "create service clusterip my-svc --tcp=5678:8080",
        include_bytes!("testdata/service_clusterip.bin"),
        include_str!("testdata/service_clusterip.json"),
    ),
    (
        "create service nodeport np --tcp=80:http --node-port=30080",
        include_bytes!("testdata/service_nodeport.bin"),
        include_str!("testdata/service_nodeport.json"),
    ),
    (
        "create service externalname ext --external-name=example.com",
        include_bytes!("testdata/service_externalname.bin"),
        include_str!("testdata/service_externalname.json"),
    ),
    (
        "create service loadbalancer lb --tcp=443:8443",
        include_bytes!("testdata/service_loadbalancer.bin"),
        include_str!("testdata/service_loadbalancer.json"),
    ),
    (
        "create configmap cm --from-literal=a=b",
        include_bytes!("testdata/configmap.bin"),
        include_str!("testdata/configmap.json"),
    ),
    (
        "create secret generic s --from-literal=k=v",
        include_bytes!("testdata/secret.bin"),
        include_str!("testdata/secret.json"),
    ),
    (
        "create serviceaccount sa",
        include_bytes!("testdata/serviceaccount.bin"),
        include_str!("testdata/serviceaccount.json"),
    ),
];

#[test]
fn kubectl_bodies_decode_to_the_json_kubectl_prints() {
    for (command, body, json) in KUBECTL_BODIES {
        let expected: Value = serde_json::from_str(json).unwrap();
        let decoded = decode(body).unwrap_or_else(|e| panic!("kubectl {command}: {e}"));
        assert_eq!(decoded, expected, "kubectl {command}");
    }
}

/// The writer gives back what the reader read: `decoded` encoded (as a response body) reads
/// back as itself, and Go's reader (prost's, from the same generated.proto) takes the bytes as
/// a `T` that, written by prost and read by the reader, is `decoded` again.
fn assert_encodes_back<T: prost::Message + Default>(decoded: &Value) {
    let encoded = encode::body(decoded).unwrap();
    assert_eq!(&decode(&encoded).unwrap(), decoded);
    let unknown = Unknown::decode(encoded.strip_prefix(MAGIC).unwrap()).unwrap();
    let type_meta = unknown.type_meta.unwrap();
    assert_eq!(type_meta.api_version.as_deref(), decoded["apiVersion"].as_str());
    assert_eq!(type_meta.kind.as_deref(), decoded["kind"].as_str());
    let typed = T::decode(unknown.raw.unwrap().as_slice()).unwrap();
    let api_version = decoded["apiVersion"].as_str().unwrap();
    let kind = decoded["kind"].as_str().unwrap();
    assert_eq!(&decode(&body(api_version, kind, &typed)).unwrap(), decoded);
}

#[test]
fn kubectl_objects_encode_back() {
    for (command, _, json) in KUBECTL_BODIES {
        let object: Value = serde_json::from_str(json).unwrap();
        let encoded = encode::body(&object).unwrap_or_else(|e| panic!("kubectl {command}: {e}"));
        assert_eq!(decode(&encoded).unwrap(), object, "kubectl {command}");
    }
}

// ---- objects encoded with k8s-pb (prost types generated from generated.proto) ------------

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::autoscaling::v1 as autoscaling;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::json;
use std::collections::BTreeMap;

fn s(value: &str) -> Option<String> {
    Some(value.to_owned())
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity { string: s(v) }))
        .collect()
}

fn int(value: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(value),
        str_val: None,
    })
}

fn named(value: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: None,
        str_val: s(value),
    })
}

fn time(seconds: i64) -> Option<meta::Time> {
    Some(meta::Time {
        seconds: Some(seconds),
        nanos: None,
    })
}

fn metadata(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        ..Default::default()
    })
}

/// A protobuf request body as kubectl sends it: magic, then `runtime.Unknown`.
fn body(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
    envelope(api_version, kind, object.encode_to_vec())
}

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(raw),
        content_encoding: s(""),
        content_type: s(""),
    };
    [MAGIC, &unknown.encode_to_vec()].concat()
}

/// 2026-01-02T03:04:05Z
const JAN_2: i64 = 1_767_323_045;

#[test]
fn a_pod_decodes_with_every_part_of_its_spec_and_status() {
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            namespace: s("default"),
            labels: string_map(&[("app", "web")]),
            annotations: string_map(&[("note", "x")]),
            owner_references: vec![meta::OwnerReference {
                api_version: s("apps/v1"),
                kind: s("ReplicaSet"),
                name: s("web-abc"),
                uid: s("1234"),
                controller: Some(true),
                block_owner_deletion: Some(false),
            }],
            creation_timestamp: time(JAN_2),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: s("app"),
                image: s("nginx:1.27"),
                command: strings(&["nginx"]),
                args: strings(&["-g", "daemon off;"]),
                ports: vec![core::ContainerPort {
                    name: s("http"),
                    container_port: Some(80),
                    protocol: s("TCP"),
                    ..Default::default()
                }],
                env: vec![
                    core::EnvVar {
                        name: s("MODE"),
                        value: s("prod"),
                        value_from: None,
                    },
                    core::EnvVar {
                        name: s("POD_IP"),
                        value: None,
                        value_from: Some(core::EnvVarSource {
                            field_ref: Some(core::ObjectFieldSelector {
                                api_version: s("v1"),
                                field_path: s("status.podIP"),
                            }),
                            ..Default::default()
                        }),
                    },
                ],
                env_from: vec![core::EnvFromSource {
                    prefix: s("CFG_"),
                    config_map_ref: Some(core::ConfigMapEnvSource {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: s("settings"),
                        }),
                        optional: Some(true),
                    }),
                    secret_ref: None,
                }],
                resources: Some(core::ResourceRequirements {
                    limits: quantities(&[("cpu", "500m"), ("memory", "128Mi")]),
                    requests: quantities(&[("cpu", "250m")]),
                    claims: vec![],
                }),
                volume_mounts: vec![core::VolumeMount {
                    name: s("data"),
                    mount_path: s("/data"),
                    read_only: Some(true),
                    ..Default::default()
                }],
                liveness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: s("/healthz"),
                            port: named("http"),
                            scheme: s("HTTP"),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    initial_delay_seconds: Some(5),
                    period_seconds: Some(10),
                    ..Default::default()
                }),
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        tcp_socket: Some(core::TcpSocketAction {
                            port: int(80),
                            host: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                lifecycle: Some(core::Lifecycle {
                    pre_stop: Some(core::LifecycleHandler {
                        exec: Some(core::ExecAction {
                            command: strings(&["sleep", "5"]),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                security_context: Some(core::SecurityContext {
                    run_as_user: Some(0),
                    privileged: Some(false),
                    capabilities: Some(core::Capabilities {
                        add: strings(&["NET_ADMIN"]),
                        drop: vec![],
                    }),
                    ..Default::default()
                }),
                image_pull_policy: s("IfNotPresent"),
                ..Default::default()
            }],
            init_containers: vec![core::Container {
                name: s("init"),
                image: s("busybox"),
                command: strings(&["true"]),
                ..Default::default()
            }],
            volumes: vec![
                core::Volume {
                    name: s("data"),
                    volume_source: Some(core::VolumeSource {
                        empty_dir: Some(core::EmptyDirVolumeSource {
                            medium: s("Memory"),
                            size_limit: Some(Quantity { string: s("1Gi") }),
                        }),
                        ..Default::default()
                    }),
                },
                core::Volume {
                    name: s("config"),
                    volume_source: Some(core::VolumeSource {
                        config_map: Some(core::ConfigMapVolumeSource {
                            local_object_reference: Some(core::LocalObjectReference {
                                name: s("settings"),
                            }),
                            items: vec![core::KeyToPath {
                                key: s("a"),
                                path: s("a.conf"),
                                mode: Some(0o644),
                            }],
                            default_mode: Some(0o600),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                },
                core::Volume {
                    name: s("host"),
                    volume_source: Some(core::VolumeSource {
                        host_path: Some(core::HostPathVolumeSource {
                            path: s("/var/log"),
                            r#type: s("Directory"),
                        }),
                        ..Default::default()
                    }),
                },
            ],
            restart_policy: s("Always"),
            termination_grace_period_seconds: Some(0),
            node_selector: string_map(&[("disk", "ssd")]),
            automount_service_account_token: Some(false),
            node_name: s("node-1"),
            security_context: Some(core::PodSecurityContext {
                run_as_non_root: Some(true),
                fs_group: Some(2000),
                supplemental_groups: vec![1, 2],
                ..Default::default()
            }),
            affinity: Some(core::Affinity {
                node_affinity: Some(core::NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(core::NodeSelector {
                        node_selector_terms: vec![core::NodeSelectorTerm {
                            match_expressions: vec![core::NodeSelectorRequirement {
                                key: s("zone"),
                                operator: s("In"),
                                values: strings(&["a", "b"]),
                            }],
                            match_fields: vec![],
                        }],
                    }),
                    preferred_during_scheduling_ignored_during_execution: vec![],
                }),
                pod_anti_affinity: Some(core::PodAntiAffinity {
                    preferred_during_scheduling_ignored_during_execution: vec![
                        core::WeightedPodAffinityTerm {
                            weight: Some(100),
                            pod_affinity_term: Some(core::PodAffinityTerm {
                                label_selector: Some(meta::LabelSelector {
                                    match_labels: string_map(&[("app", "web")]),
                                    match_expressions: vec![],
                                }),
                                topology_key: s("kubernetes.io/hostname"),
                                ..Default::default()
                            }),
                        },
                    ],
                    required_during_scheduling_ignored_during_execution: vec![],
                }),
                pod_affinity: None,
            }),
            tolerations: vec![
                core::Toleration {
                    key: s("node.kubernetes.io/not-ready"),
                    operator: s("Exists"),
                    effect: s("NoExecute"),
                    toleration_seconds: Some(300),
                    value: None,
                },
                core::Toleration {
                    operator: s("Exists"),
                    ..Default::default()
                },
            ],
            topology_spread_constraints: vec![core::TopologySpreadConstraint {
                max_skew: Some(1),
                topology_key: s("zone"),
                when_unsatisfiable: s("DoNotSchedule"),
                label_selector: Some(meta::LabelSelector {
                    match_labels: string_map(&[("app", "web")]),
                    match_expressions: vec![],
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(core::PodStatus {
            phase: s("Running"),
            conditions: vec![core::PodCondition {
                r#type: s("Ready"),
                status: s("True"),
                last_transition_time: time(JAN_2),
                ..Default::default()
            }],
            host_ip: s("10.0.0.1"),
            pod_ip: s("10.244.0.5"),
            pod_ips: vec![core::PodIp {
                ip: s("10.244.0.5"),
            }],
            start_time: time(JAN_2),
            container_statuses: vec![core::ContainerStatus {
                name: s("app"),
                ready: Some(true),
                restart_count: Some(0),
                image: s("nginx:1.27"),
                image_id: s("docker://sha256:abc"),
                container_id: s("docker://123"),
                started: Some(true),
                state: Some(core::ContainerState {
                    running: Some(core::ContainerStateRunning {
                        started_at: time(JAN_2),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            qos_class: s("Burstable"),
            ..Default::default()
        }),
    };

    let decoded = decode(&body("v1", "Pod", &pod)).unwrap();
    assert_encodes_back::<core::Pod>(&decoded);
    let expected = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web"},
            "annotations": {"note": "x"},
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-abc",
                "uid": "1234",
                "controller": true,
                "blockOwnerDeletion": false
            }]
        },
        "spec": {
            "volumes": [
                {"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                {"name": "config", "configMap": {
                    "name": "settings",
                    "items": [{"key": "a", "path": "a.conf", "mode": 420}],
                    "defaultMode": 384
                }},
                {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}}
            ],
            "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
            "containers": [{
                "name": "app",
                "image": "nginx:1.27",
                "command": ["nginx"],
                "args": ["-g", "daemon off;"],
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "envFrom": [{
                    "prefix": "CFG_",
                    "configMapRef": {"name": "settings", "optional": true}
                }],
                "env": [
                    {"name": "MODE", "value": "prod"},
                    {"name": "POD_IP", "valueFrom": {
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}
                    }}
                ],
                "resources": {
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                    "requests": {"cpu": "250m"}
                },
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}],
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                    "initialDelaySeconds": 5,
                    "periodSeconds": 10
                },
                "readinessProbe": {"tcpSocket": {"port": 80}},
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
                "securityContext": {
                    "capabilities": {"add": ["NET_ADMIN"]},
                    "privileged": false,
                    "runAsUser": 0
                },
                "imagePullPolicy": "IfNotPresent"
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 0,
            "nodeSelector": {"disk": "ssd"},
            "automountServiceAccountToken": false,
            "nodeName": "node-1",
            "securityContext": {
                "runAsNonRoot": true,
                "supplementalGroups": [1, 2],
                "fsGroup": 2000
            },
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["a", "b"]}
                    ]}]
                }},
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app": "web"}},
                        "topologyKey": "kubernetes.io/hostname"
                    }
                }]}
            },
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300
                },
                {"operator": "Exists"}
            ],
            "topologySpreadConstraints": [{
                "maxSkew": 1,
                "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}
            }]
        },
        "status": {
            "phase": "Running",
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "lastTransitionTime": "2026-01-02T03:04:05Z"
            }],
            "hostIP": "10.0.0.1",
            "podIP": "10.244.0.5",
            "podIPs": [{"ip": "10.244.0.5"}],
            "startTime": "2026-01-02T03:04:05Z",
            "containerStatuses": [{
                "name": "app",
                "state": {"running": {"startedAt": "2026-01-02T03:04:05Z"}},
                "ready": true,
                "restartCount": 0,
                "image": "nginx:1.27",
                "imageID": "docker://sha256:abc",
                "containerID": "docker://123",
                "started": true
            }],
            "qosClass": "Burstable"
        }
    });
    assert_eq!(decoded, expected);

    // And it is a valid Pod to the typed API.
    let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(decoded).unwrap();
    let spec = typed.spec.unwrap();
    assert_eq!(
        spec.containers[0].ports.as_ref().unwrap()[0].container_port,
        80
    );
    assert_eq!(spec.termination_grace_period_seconds, Some(0));
    assert_eq!(spec.tolerations.unwrap()[0].toleration_seconds, Some(300));
}

#[test]
fn go_zero_values_are_left_out_unless_the_field_is_a_pointer() {
    // Go writes every non-pointer field; these zeros must not become explicit values.
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: s("d"),
            generate_name: s(""),
            namespace: s(""),
            resource_version: s(""),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            min_ready_seconds: Some(0),
            paused: Some(false),
            revision_history_limit: Some(0),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta::default()),
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        name: s("c"),
                        image: s("nginx"),
                        ports: vec![core::ContainerPort {
                            host_port: Some(0),
                            container_port: Some(0),
                            host_ip: s(""),
                            ..Default::default()
                        }],
                        stdin: Some(false),
                        resources: Some(core::ResourceRequirements::default()),
                        ..Default::default()
                    }],
                    host_network: Some(false),
                    enable_service_links: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy::default()),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            replicas: Some(0),
            ..Default::default()
        }),
    };
    let decoded = decode(&body("apps/v1", "Deployment", &deployment)).unwrap();
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "creationTimestamp": null},
            "spec": {
                "replicas": 0,
                "revisionHistoryLimit": 0,
                "template": {
                    "metadata": {},
                    "spec": {
                        "containers": [{
                            "name": "c",
                            "image": "nginx",
                            "ports": [{"containerPort": 0}],
                            "resources": {}
                        }],
                        "enableServiceLinks": false
                    }
                },
                "strategy": {}
            },
            "status": {}
        })
    );
}

#[test]
fn a_zero_max_unavailable_is_kept_as_go_keeps_a_set_pointer() {
    // `maxUnavailable` is a `*IntOrString`: 0 means no pod may be down, not "unset" (25%).
    let deployment = apps::Deployment {
        metadata: metadata("d"),
        spec: Some(apps::DeploymentSpec {
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: int(0),
                    max_surge: int(1),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let decoded = decode(&body("apps/v1", "Deployment", &deployment)).unwrap();
    assert_eq!(
        decoded["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    );
}

#[test]
fn a_service_port_is_a_number_or_a_name_and_an_unset_target_port_is_left_out() {
    let service = core::Service {
        metadata: metadata("web"),
        spec: Some(core::ServiceSpec {
            ports: vec![
                core::ServicePort {
                    name: s("http"),
                    protocol: s("TCP"),
                    port: Some(80),
                    target_port: int(8080),
                    node_port: Some(0),
                    ..Default::default()
                },
                core::ServicePort {
                    name: s("metrics"),
                    port: Some(9090),
                    target_port: named("metrics"),
                    ..Default::default()
                },
                core::ServicePort {
                    name: s("plain"),
                    port: Some(53),
                    protocol: s("UDP"),
                    // Go's zero IntOrString: the API server defaults it to `port`.
                    target_port: int(0),
                    ..Default::default()
                },
            ],
            selector: string_map(&[("app", "web")]),
            cluster_ip: s(""),
            r#type: s("ClusterIP"),
            cluster_ips: strings(&["10.96.0.10"]),
            ip_families: strings(&["IPv4"]),
            ip_family_policy: s("SingleStack"),
            session_affinity_config: Some(core::SessionAffinityConfig {
                client_ip: Some(core::ClientIpConfig {
                    timeout_seconds: Some(0),
                }),
            }),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus::default()),
    };
    let decoded = decode(&body("v1", "Service", &service)).unwrap();
    assert_encodes_back::<core::Service>(&decoded);
    assert_eq!(
        decoded["spec"],
        json!({
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "metrics", "port": 9090, "targetPort": "metrics"},
                {"name": "plain", "protocol": "UDP", "port": 53}
            ],
            "selector": {"app": "web"},
            "type": "ClusterIP",
            "clusterIPs": ["10.96.0.10"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}
        })
    );
    assert_eq!(decoded["status"], json!({}));
}

#[test]
fn a_node_decodes_with_its_status() {
    let node = core::Node {
        metadata: Some(meta::ObjectMeta {
            name: s("node-1"),
            labels: string_map(&[("kubernetes.io/hostname", "node-1")]),
            ..Default::default()
        }),
        spec: Some(core::NodeSpec {
            pod_cidr: s("10.244.1.0/24"),
            pod_cid_rs: strings(&["10.244.1.0/24"]),
            unschedulable: Some(false),
            taints: vec![core::Taint {
                key: s("node.kubernetes.io/unreachable"),
                effect: s("NoExecute"),
                time_added: time(JAN_2),
                value: None,
            }],
            ..Default::default()
        }),
        status: Some(core::NodeStatus {
            capacity: quantities(&[("cpu", "2"), ("memory", "4Gi"), ("pods", "110")]),
            allocatable: quantities(&[("cpu", "1900m")]),
            conditions: vec![core::NodeCondition {
                r#type: s("Ready"),
                status: s("True"),
                last_heartbeat_time: time(JAN_2),
                last_transition_time: Some(meta::Time::default()),
                reason: s("KubeletReady"),
                message: s(""),
            }],
            addresses: vec![core::NodeAddress {
                r#type: s("InternalIP"),
                address: s("192.168.1.10"),
            }],
            daemon_endpoints: Some(core::NodeDaemonEndpoints {
                kubelet_endpoint: Some(core::DaemonEndpoint { port: Some(10250) }),
            }),
            node_info: Some(core::NodeSystemInfo {
                kubelet_version: s("v1.32.0-skiff"),
                operating_system: s("linux"),
                architecture: s("amd64"),
                machine_id: s(""),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let decoded = decode(&body("v1", "Node", &node)).unwrap();
    assert_encodes_back::<core::Node>(&decoded);
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
            "spec": {
                "podCIDR": "10.244.1.0/24",
                "podCIDRs": ["10.244.1.0/24"],
                "taints": [{
                    "key": "node.kubernetes.io/unreachable",
                    "effect": "NoExecute",
                    "timeAdded": "2026-01-02T03:04:05Z"
                }]
            },
            "status": {
                "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "allocatable": {"cpu": "1900m"},
                "conditions": [{
                    "type": "Ready",
                    "status": "True",
                    "lastHeartbeatTime": "2026-01-02T03:04:05Z",
                    "lastTransitionTime": null,
                    "reason": "KubeletReady"
                }],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "kubeletVersion": "v1.32.0-skiff",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "machineID": ""
                }
            }
        })
    );
    let typed: k8s_openapi::api::core::v1::Node = serde_json::from_value(decoded).unwrap();
    let status = typed.status.unwrap();
    assert_eq!(status.capacity.unwrap()["memory"].0, "4Gi");
}

#[test]
fn a_lease_keeps_microseconds_and_zero_transitions() {
    let lease = coordination::Lease {
        metadata: Some(meta::ObjectMeta {
            name: s("node-1"),
            namespace: s("kube-node-lease"),
            ..Default::default()
        }),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(40),
            acquire_time: Some(meta::MicroTime {
                seconds: Some(JAN_2),
                nanos: Some(123_456_789),
            }),
            renew_time: Some(meta::MicroTime {
                seconds: Some(JAN_2),
                nanos: None,
            }),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    let decoded = decode(&body("coordination.k8s.io/v1", "Lease", &lease)).unwrap();
    assert_encodes_back::<coordination::Lease>(&decoded);
    assert_eq!(
        decoded["spec"],
        json!({
            "holderIdentity": "node-1",
            "leaseDurationSeconds": 40,
            "acquireTime": "2026-01-02T03:04:05.123456Z",
            "renewTime": "2026-01-02T03:04:05.000000Z",
            "leaseTransitions": 0
        })
    );
    let typed: k8s_openapi::api::coordination::v1::Lease = serde_json::from_value(decoded).unwrap();
    assert_eq!(typed.spec.unwrap().lease_duration_seconds, Some(40));
}

#[test]
fn an_event_has_times_and_a_series() {
    let event = core::Event {
        metadata: Some(meta::ObjectMeta {
            name: s("web.1"),
            namespace: s("default"),
            ..Default::default()
        }),
        involved_object: Some(core::ObjectReference {
            kind: s("Pod"),
            name: s("web"),
            namespace: s("default"),
            ..Default::default()
        }),
        reason: s("Scheduled"),
        message: s("assigned"),
        source: Some(core::EventSource {
            component: s("skiff-scheduler"),
            host: s(""),
        }),
        first_timestamp: time(JAN_2),
        last_timestamp: Some(meta::Time::default()),
        count: Some(1),
        r#type: s("Normal"),
        event_time: Some(meta::MicroTime {
            seconds: Some(JAN_2),
            nanos: Some(5_000),
        }),
        series: Some(core::EventSeries {
            count: Some(2),
            last_observed_time: Some(meta::MicroTime::default()),
        }),
        ..Default::default()
    };
    let decoded = decode(&body("v1", "Event", &event)).unwrap();
    assert_encodes_back::<core::Event>(&decoded);
    assert_eq!(decoded["firstTimestamp"], json!("2026-01-02T03:04:05Z"));
    assert_eq!(decoded["lastTimestamp"], Value::Null);
    assert_eq!(decoded["eventTime"], json!("2026-01-02T03:04:05.000005Z"));
    assert_eq!(
        decoded["series"],
        json!({"count": 2, "lastObservedTime": null})
    );
    assert_eq!(decoded["source"], json!({"component": "skiff-scheduler"}));
    assert_eq!(decoded["involvedObject"]["kind"], json!("Pod"));
}

#[test]
fn managed_fields_carry_their_json_and_binding_its_target() {
    let binding = core::Binding {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            namespace: s("default"),
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: s("kubectl-create"),
                operation: s("Update"),
                api_version: s("v1"),
                time: time(JAN_2),
                fields_type: s("FieldsV1"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:metadata":{"f:labels":{".":{}}}}"#.to_vec()),
                }),
                subresource: None,
            }],
            ..Default::default()
        }),
        target: Some(core::ObjectReference {
            kind: s("Node"),
            name: s("node-1"),
            api_version: s("v1"),
            ..Default::default()
        }),
    };
    let decoded = decode(&body("v1", "Binding", &binding)).unwrap();
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "managedFields": [{
                    "manager": "kubectl-create",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-01-02T03:04:05Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}
                }]
            },
            "target": {"kind": "Node", "name": "node-1", "apiVersion": "v1"}
        })
    );
}

#[test]
fn delete_options_decode_under_any_group_version() {
    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: s("1234"),
            resource_version: s(""),
        }),
        orphan_dependents: Some(false),
        propagation_policy: s("Foreground"),
        dry_run: strings(&["All"]),
        ..Default::default()
    };
    for api_version in ["v1", "apps/v1", "meta.k8s.io/v1"] {
        let decoded = decode(&body(api_version, "DeleteOptions", &options)).unwrap();
        assert_eq!(
            decoded,
            json!({
                "apiVersion": api_version,
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "1234", "resourceVersion": ""},
                "orphanDependents": false,
                "propagationPolicy": "Foreground",
                "dryRun": ["All"]
            })
        );
    }
}

#[test]
fn scale_replicas_and_replica_sets_decode() {
    let scale = autoscaling::Scale {
        metadata: metadata("web"),
        spec: Some(autoscaling::ScaleSpec { replicas: Some(3) }),
        status: Some(autoscaling::ScaleStatus {
            replicas: Some(0),
            selector: s("app=web"),
        }),
    };
    let decoded = decode(&body("autoscaling/v1", "Scale", &scale)).unwrap();
    assert_encodes_back::<autoscaling::Scale>(&decoded);
    assert_eq!(decoded["spec"], json!({"replicas": 3}));
    assert_eq!(
        decoded["status"],
        json!({"replicas": 0, "selector": "app=web"})
    );

    let replica_set = apps::ReplicaSet {
        metadata: metadata("web-abc"),
        spec: Some(apps::ReplicaSetSpec {
            replicas: Some(2),
            selector: Some(meta::LabelSelector {
                match_labels: BTreeMap::new(),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: s("app"),
                    operator: s("Exists"),
                    values: vec![],
                }],
            }),
            ..Default::default()
        }),
        status: Some(apps::ReplicaSetStatus {
            replicas: Some(0),
            ..Default::default()
        }),
    };
    let decoded = decode(&body("apps/v1", "ReplicaSet", &replica_set)).unwrap();
    assert_eq!(
        decoded["spec"],
        json!({
            "replicas": 2,
            "selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}
        })
    );
    // `replicas` of a ReplicaSetStatus is required: Go writes it even when zero.
    assert_eq!(decoded["status"], json!({"replicas": 0}));
}

#[test]
fn secrets_hold_base64_and_config_maps_strings() {
    let secret = core::Secret {
        metadata: metadata("s"),
        data: [("key".to_owned(), vec![0u8, 1, 2, 255])].into(),
        string_data: string_map(&[("plain", "text")]),
        r#type: s("Opaque"),
        immutable: Some(false),
    };
    let decoded = decode(&body("v1", "Secret", &secret)).unwrap();
    assert_encodes_back::<core::Secret>(&decoded);
    assert_eq!(decoded["data"], json!({"key": "AAEC/w=="}));
    assert_eq!(decoded["stringData"], json!({"plain": "text"}));
    assert_eq!(decoded["immutable"], json!(false));
}

#[test]
fn unknown_fields_are_skipped() {
    let namespace = core::Namespace {
        metadata: metadata("x"),
        ..Default::default()
    };
    let mut raw = namespace.encode_to_vec();
    // Fields a newer Kubernetes might add: varint 90, bytes 91, fixed64 92, fixed32 93.
    raw.extend_from_slice(&[0xd0, 0x05, 0x2a]);
    raw.extend_from_slice(&[0xda, 0x05, 0x03, b'a', b'b', b'c']);
    raw.extend_from_slice(&[0xe1, 0x05, 1, 2, 3, 4, 5, 6, 7, 8]);
    raw.extend_from_slice(&[0xed, 0x05, 1, 2, 3, 4]);
    let decoded = decode(&envelope("v1", "Namespace", raw)).unwrap();
    assert_eq!(
        decoded,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    );
}

#[test]
fn packed_and_unpacked_number_lists_read_the_same() {
    let context = |groups: Vec<i64>| core::PodSecurityContext {
        supplemental_groups: groups,
        ..Default::default()
    };
    let unpacked = context(vec![1, 300, 70000]).encode_to_vec();
    // PodSecurityContext.supplementalGroups is field 4: one length-delimited run of varints.
    let packed = vec![0x22, 0x06, 0x01, 0xac, 0x02, 0xf0, 0xa2, 0x04];
    for security_context in [unpacked, packed] {
        let mut spec = vec![0x72, security_context.len() as u8];
        spec.extend_from_slice(&security_context);
        let mut pod = vec![0x12, spec.len() as u8];
        pod.extend_from_slice(&spec);
        let decoded = decode(&envelope("v1", "Pod", pod)).unwrap();
        assert_eq!(
            decoded["spec"]["securityContext"]["supplementalGroups"],
            json!([1, 300, 70000])
        );
    }
}

#[test]
fn repeated_occurrences_of_a_message_merge() {
    // Two `metadata` fields: protobuf merges them into one message.
    let first = meta::ObjectMeta {
        name: s("x"),
        labels: string_map(&[("a", "1")]),
        ..Default::default()
    };
    let second = meta::ObjectMeta {
        labels: string_map(&[("b", "2")]),
        ..Default::default()
    };
    let mut raw = core::Namespace {
        metadata: Some(first),
        ..Default::default()
    }
    .encode_to_vec();
    raw.extend(
        core::Namespace {
            metadata: Some(second),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let decoded = decode(&envelope("v1", "Namespace", raw)).unwrap();
    assert_eq!(
        decoded["metadata"],
        json!({"name": "x", "labels": {"a": "1", "b": "2"}})
    );
}

// ---- malformed input -------------------------------------------------------------------

fn error_of(body: &[u8]) -> String {
    match decode(body) {
        Ok(value) => panic!("decoded {value}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn malformed_bodies_are_errors_that_say_what_is_wrong() {
    let namespace = body("v1", "Namespace", &core::Namespace::default());

    assert!(matches!(
        decode(br#"{"kind":"Namespace"}"#),
        Err(ProtobufError::MissingMagic)
    ));
    assert!(matches!(
        decode(&body("v1", "Widget", &core::Namespace::default())),
        Err(ProtobufError::UnsupportedKind { kind, .. }) if kind == "Widget"
    ));
    assert!(matches!(
        decode(&body("apps/v1", "Pod", &core::Pod::default())),
        Err(ProtobufError::UnsupportedKind { .. })
    ));
    assert!(matches!(
        decode(MAGIC),
        Err(ProtobufError::UnsupportedKind { .. })
    ));

    let mut gzip = Unknown::decode(&namespace[4..]).unwrap();
    gzip.content_encoding = s("gzip");
    assert!(matches!(
        decode(&[MAGIC, &gzip.encode_to_vec()].concat()),
        Err(ProtobufError::UnsupportedEncoding(encoding)) if encoding == "gzip"
    ));

    // A truncated varint.
    let message = error_of(&envelope("v1", "Namespace", vec![0x0a, 0x02, 0x08, 0x80]));
    assert!(message.contains("ObjectMeta"), "{message}");
    // A length past the end of the message.
    let message = error_of(&envelope("v1", "Namespace", vec![0x0a, 0x05, 0x0a, 0x01]));
    assert!(message.contains("runs past the end"), "{message}");
    // A string field sent as a varint.
    let message = error_of(&envelope("v1", "Namespace", vec![0x0a, 0x02, 0x08, 0x01]));
    assert!(message.contains("ObjectMeta.name"), "{message}");
    assert!(message.contains("wire type"), "{message}");
    // A zero field number.
    let message = error_of(&envelope("v1", "Namespace", vec![0x00, 0x01]));
    assert!(
        message.contains("io.k8s.api.core.v1.Namespace"),
        "{message}"
    );
    // An IntOrString of neither type.
    let service = core::Service {
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                target_port: Some(IntOrString {
                    r#type: Some(7),
                    int_val: None,
                    str_val: None,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let message = error_of(&body("v1", "Service", &service));
    assert!(message.contains("targetPort"), "{message}");
    // FieldsV1 that is not JSON.
    let namespace = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            managed_fields: vec![meta::ManagedFieldsEntry {
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(b"{not json".to_vec()),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let message = error_of(&body("v1", "Namespace", &namespace));
    assert!(message.contains("fieldsV1"), "{message}");
    // A time past year 9999.
    let namespace = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            creation_timestamp: time(i64::MAX),
            ..Default::default()
        }),
        ..Default::default()
    };
    let message = error_of(&body("v1", "Namespace", &namespace));
    assert!(message.contains("out of range"), "{message}");
}

#[test]
fn every_truncation_of_a_real_body_is_an_error_not_a_panic() {
    for (command, body, _) in KUBECTL_BODIES {
        for len in 0..body.len() {
            // A cut between two fields can still be valid protobuf: only a panic fails here.
            let _ = decode(&body[..len]);
        }
        // kubectl's bodies end with the object then two empty strings (`1a 00 22 00`).
        let cut_inside_raw = &body[..body.len() - 5];
        assert!(decode(cut_inside_raw).is_err(), "kubectl {command}");
    }
}

#[test]
fn random_and_mutated_bodies_never_panic() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    let mut rng = StdRng::seed_from_u64(0x6b38_7300);
    let mut bodies: Vec<Vec<u8>> = KUBECTL_BODIES.iter().map(|(_, b, _)| b.to_vec()).collect();
    bodies.push(body(
        "v1",
        "Pod",
        &core::Pod {
            spec: Some(core::PodSpec {
                containers: vec![core::Container {
                    name: s("c"),
                    liveness_probe: Some(core::Probe::default()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        },
    ));
    for round in 0..20_000 {
        let mut input = bodies[round % bodies.len()].clone();
        match round % 4 {
            // Flip a few bits.
            0 => {
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(4..input.len());
                    input[at] ^= 1 << rng.random_range(0..8);
                }
            }
            // Overwrite bytes with anything.
            1 => {
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(4..input.len());
                    input[at] = rng.random();
                }
            }
            // Insert bytes.
            2 => {
                let at = rng.random_range(4..=input.len());
                let extra: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
                input.splice(at..at, extra);
            }
            // Pure noise after the magic.
            _ => {
                let len = rng.random_range(0..64);
                input.truncate(4);
                input.extend((0..len).map(|_| rng.random::<u8>()));
            }
        }
        let _ = decode(&input);
    }
}

// ---- the schema itself -----------------------------------------------------------------

/// Every message reachable from the kinds, once.
fn reachable_messages() -> Vec<&'static Message> {
    let mut seen: Vec<&'static Message> = Vec::new();
    let mut stack: Vec<&'static Message> = schema::KINDS.iter().map(|(_, _, m)| *m).collect();
    stack.push(&schema::DELETE_OPTIONS);
    while let Some(message) = stack.pop() {
        if seen.iter().any(|m| std::ptr::eq(*m, message)) {
            continue;
        }
        seen.push(message);
        for field in message.fields {
            if let Kind::Message(inner) = &field.kind {
                stack.push(inner);
            }
            if let Kind::Map(value) = &field.kind
                && let Kind::Message(inner) = value
            {
                stack.push(inner);
            }
        }
    }
    seen
}

#[test]
fn the_schema_has_unique_field_numbers_and_json_names() {
    let messages = reachable_messages();
    assert!(messages.len() > 150, "{} messages", messages.len());
    for message in messages {
        let mut numbers: Vec<u32> = message.fields.iter().map(|f| f.number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), message.fields.len(), "{}", message.name);

        // Inlined messages share their parent's JSON object.
        let mut names: Vec<&str> = Vec::new();
        let mut pending = vec![message];
        while let Some(current) = pending.pop() {
            for field in current.fields {
                match (&field.shape, &field.kind) {
                    (Shape::Inline, Kind::Message(inner)) => pending.push(inner),
                    (Shape::Inline, _) => panic!("{}: inline non-message", current.name),
                    _ => {
                        assert!(!field.json.is_empty(), "{}", current.name);
                        names.push(field.json);
                    }
                }
            }
        }
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "{}: duplicate JSON names", message.name);
    }
}

// ---- the writer's lists, watch events and Statuses, read as Go reads them -----------------

fn unwrap_envelope(body: &[u8]) -> Unknown {
    Unknown::decode(body.strip_prefix(MAGIC).expect("magic")).expect("runtime.Unknown")
}

fn a_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": "5"},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}
    })
}

#[test]
fn a_list_is_the_kinds_list_message_with_list_meta() {
    let items = [
        encode::message(&a_pod("a")).unwrap(),
        encode::message(&a_pod("b")).unwrap(),
    ];
    let metadata = json!({"resourceVersion": "7", "continue": "abc", "remainingItemCount": 3});
    let body = encode::list("v1", "Pod", &metadata, items.iter().map(Vec::as_slice)).unwrap();
    let unknown = unwrap_envelope(&body);
    let type_meta = unknown.type_meta.unwrap();
    assert_eq!(
        (type_meta.api_version.as_deref(), type_meta.kind.as_deref()),
        (Some("v1"), Some("PodList"))
    );
    let list = core::PodList::decode(unknown.raw.unwrap().as_slice()).unwrap();
    let meta = list.metadata.unwrap();
    assert_eq!(meta.resource_version.as_deref(), Some("7"));
    assert_eq!(meta.r#continue.as_deref(), Some("abc"));
    assert_eq!(meta.remaining_item_count, Some(3));
    let names: Vec<_> = list
        .items
        .iter()
        .map(|pod| pod.metadata.as_ref().unwrap().name.clone().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(list.items[0].spec.as_ref().unwrap().containers[0].image.as_deref(), Some("nginx"));
}

#[test]
fn watch_events_are_length_prefixed_with_the_object_in_its_envelope() {
    let mut stream = Vec::new();
    for (event, name) in [("ADDED", "a"), ("DELETED", "b")] {
        let raw = encode::message(&a_pod(name)).unwrap();
        encode::watch_event(event, "v1", "Pod", &raw, &mut stream);
    }
    let mut rest = stream.as_slice();
    let mut seen = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        let event = meta::WatchEvent::decode(frame).unwrap();
        let object = unwrap_envelope(&event.object.unwrap().raw.unwrap());
        assert_eq!(object.type_meta.unwrap().kind.as_deref(), Some("Pod"));
        let pod = core::Pod::decode(object.raw.unwrap().as_slice()).unwrap();
        seen.push((event.r#type.unwrap(), pod.metadata.unwrap().name.unwrap()));
    }
    assert_eq!(
        seen,
        [("ADDED".to_owned(), "a".to_owned()), ("DELETED".to_owned(), "b".to_owned())]
    );
}

#[test]
fn a_status_encodes_in_any_group_version() {
    let status = json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": "pods \"x\" not found",
        "reason": "NotFound",
        "details": {"name": "x", "kind": "pods", "causes": [{"reason": "FieldValueInvalid", "field": "spec"}]},
        "code": 404
    });
    let unknown = unwrap_envelope(&encode::body(&status).unwrap());
    let decoded = meta::Status::decode(unknown.raw.unwrap().as_slice()).unwrap();
    assert_eq!(decoded.code, Some(404));
    assert_eq!(decoded.reason.as_deref(), Some("NotFound"));
    let details = decoded.details.unwrap();
    assert_eq!(details.name.as_deref(), Some("x"));
    assert_eq!(details.causes[0].field.as_deref(), Some("spec"));
}

#[test]
fn objects_that_do_not_fit_their_message_are_errors_not_panics() {
    for (object, says) in [
        (json!({"apiVersion": "v1", "kind": "Pod", "metadata": "x"}), "is not an object"),
        (
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": {}}}),
            "expected a list",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"priority": 1e12}}),
            "out of int32 range",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "not base64!"}}),
            "not base64",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"creationTimestamp": "yesterday"}}),
            "time",
        ),
        (json!({"apiVersion": "v9", "kind": "Gadget"}), "not supported"),
    ] {
        let err = encode::body(&object).unwrap_err().to_string();
        assert!(err.contains(says), "{object}: {err}");
    }
}

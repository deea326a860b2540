"""The official Kubernetes Python client, used as its users use it: objects built from the
model classes without `kind` or `apiVersion` (the client leaves them unset and expects the
API server to fill them in from the URL, as kube-apiserver does).

Usage: objects_without_kind.py <kubeconfig>. Exits non-zero, with the reason, on the first
thing that does not behave as against Kubernetes.
"""

import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def check(condition, what):
    if not condition:
        sys.exit(f"FAILED: {what}")


def main():
    config.load_kube_config(config_file=sys.argv[1])
    core = client.CoreV1Api()
    apps = client.AppsV1Api()
    coordination = client.CoordinationV1Api()
    ns = "default"

    # Pods: create, read, replace, patch, status, list with a selector, watch, delete.
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-pod", labels={"app": "py"}),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="c", image="busybox:1.36")]
        ),
    )
    created = core.create_namespaced_pod(ns, pod)
    check(created.kind == "Pod" and created.api_version == "v1", f"pod kind {created.kind}")
    check(created.metadata.uid, "pod has a uid")
    read = core.read_namespaced_pod("py-pod", ns)
    read.metadata.labels["tier"] = "web"
    read.kind = None
    read.api_version = None
    replaced = core.replace_namespaced_pod("py-pod", ns, read)
    check(replaced.metadata.labels.get("tier") == "web", "replace kept the label")
    patched = core.patch_namespaced_pod("py-pod", ns, {"metadata": {"annotations": {"a": "b"}}})
    check(patched.metadata.annotations.get("a") == "b", "patch set the annotation")
    status = core.read_namespaced_pod_status("py-pod", ns)
    status.kind = None
    status.api_version = None
    status.status.message = "from python"
    with_status = core.replace_namespaced_pod_status("py-pod", ns, status)
    check(with_status.status.message == "from python", "status replaced")
    pods = core.list_namespaced_pod(ns, label_selector="app=py")
    check([p.metadata.name for p in pods.items] == ["py-pod"], f"list {pods.items}")
    # A watch from the list's resourceVersion sees the delete that happens after the list.
    core.delete_namespaced_pod("py-pod", ns, grace_period_seconds=0)
    events = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_pod,
        ns,
        resource_version=pods.metadata.resource_version,
        timeout_seconds=5,
    ):
        events.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED":
            w.stop()
    check(("DELETED", "py-pod") in events, f"watch saw the delete: {events}")

    # A name that is already taken: 409 AlreadyExists, as a Status.
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm"), data={"k": "v"})
    )
    try:
        core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm"))
        )
        check(False, "second create of py-cm succeeded")
    except ApiException as err:
        check(err.status == 409, f"duplicate create gave {err.status}")

    # Nodes (cluster-scoped), with status.
    node = client.V1Node(
        metadata=client.V1ObjectMeta(name="py-node", labels={"py": "yes"}),
        spec=client.V1NodeSpec(unschedulable=True),
    )
    created = core.create_node(node)
    check(created.kind == "Node", f"node kind {created.kind}")
    # Read-modify-write, as node agents do: the node IPAM controller may have given the node
    # a pod CIDR meanwhile (a new resourceVersion).
    for attempt in range(5):
        current = core.read_node_status("py-node")
        node_status = client.V1Node(
            metadata=client.V1ObjectMeta(
                name="py-node", resource_version=current.metadata.resource_version
            ),
            spec=current.spec,
            status=client.V1NodeStatus(capacity={"cpu": "2", "memory": "1Gi", "pods": "10"}),
        )
        try:
            updated = core.replace_node_status("py-node", node_status)
            break
        except ApiException as err:
            check(err.status == 409 and attempt < 4, f"node status replace gave {err.status}")
    check(updated.status.capacity.get("cpu") == "2", f"node capacity {updated.status.capacity}")

    # Services: a ClusterIP is allocated.
    service = client.V1Service(
        metadata=client.V1ObjectMeta(name="py-svc"),
        spec=client.V1ServiceSpec(
            selector={"app": "py"}, ports=[client.V1ServicePort(port=80, target_port=8080)]
        ),
    )
    created = core.create_namespaced_service(ns, service)
    check(created.spec.cluster_ip.startswith("10."), f"cluster IP {created.spec.cluster_ip}")

    # Deployments (apps/v1), their scale subresource.
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="py-deploy"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "py-deploy"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "py-deploy"}),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="c", image="busybox:1.36")]
                ),
            ),
        ),
    )
    created = apps.create_namespaced_deployment(ns, deployment)
    check(created.kind == "Deployment" and created.api_version == "apps/v1", "deployment kind")
    scale = apps.replace_namespaced_deployment_scale(
        "py-deploy",
        ns,
        client.V1Scale(metadata=client.V1ObjectMeta(name="py-deploy"), spec=client.V1ScaleSpec(replicas=5)),
    )
    check(scale.spec.replicas == 5, f"scale {scale.spec.replicas}")
    check(apps.read_namespaced_deployment("py-deploy", ns).spec.replicas == 5, "replicas after scale")

    # Leases (coordination.k8s.io/v1), renewed by replace as node agents do.
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="py-lease"),
        spec=client.V1LeaseSpec(holder_identity="py", lease_duration_seconds=40),
    )
    created = coordination.create_namespaced_lease(ns, lease)
    check(created.kind == "Lease", f"lease kind {created.kind}")
    created.kind = None
    created.api_version = None
    created.spec.lease_duration_seconds = 20
    renewed = coordination.replace_namespaced_lease("py-lease", ns, created)
    check(renewed.spec.lease_duration_seconds == 20, "lease renewed")

    # A body that names another kind is refused with 400.
    try:
        core.create_namespaced_service(
            ns,
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "wrong"}},
        )
        check(False, "a Pod body posted to services was accepted")
    except ApiException as err:
        check(err.status == 400, f"mismatched kind gave {err.status}")

    print("OK")


if __name__ == "__main__":
    main()

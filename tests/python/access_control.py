"""The official Kubernetes Python client on skiff's access control, as its users call it
(objects without `kind`): Roles and RoleBindings, a SubjectAccessReview and a
SelfSubjectRulesReview, a ServiceAccount token (TokenRequest) and its TokenReview, and
`whoami` (SelfSubjectReview).

Usage: access_control.py <kubeconfig>. Exits non-zero, with the reason, on the first thing
that does not behave as against Kubernetes.
"""

import sys

from kubernetes import client, config
from kubernetes.client.rest import ApiException


def check(condition, what):
    if not condition:
        sys.exit(f"FAILED: {what}")


def main():
    config.load_kube_config(sys.argv[1])
    rbac = client.RbacAuthorizationV1Api()
    names = {r.metadata.name for r in rbac.list_cluster_role().items}
    check({"cluster-admin", "admin", "edit", "view"} <= names, f"default ClusterRoles: {names}")
    role = client.V1Role(
        metadata=client.V1ObjectMeta(name="py-reader"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])],
    )
    rbac.create_namespaced_role("default", role)
    binding = client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="py-reader"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="py-reader"),
        subjects=[client.RbacV1Subject(kind="User", name="jane", api_group="rbac.authorization.k8s.io")],
    )
    rbac.create_namespaced_role_binding("default", binding)

    authz = client.AuthorizationV1Api()

    def allowed(verb):
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user="jane",
                resource_attributes=client.V1ResourceAttributes(namespace="default", verb=verb, resource="pods"),
            )
        )
        return authz.create_subject_access_review(review).status.allowed

    check(allowed("list") is True, "jane may list pods")
    check(allowed("delete") is False, "jane may not delete pods")
    rules = authz.create_self_subject_rules_review(
        client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(namespace="default"))
    )
    check(any("*" in r.verbs for r in rules.status.resource_rules), "the admin holds every verb")

    core = client.CoreV1Api()
    core.create_namespaced_service_account("default", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="py-bot")))
    issued = core.create_namespaced_service_account_token(
        "py-bot", "default", client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    )
    token = issued.status.token
    check(token.count(".") == 2, "a JWT is issued")
    authn = client.AuthenticationV1Api()
    review = authn.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
    check(review.status.authenticated, f"the token authenticates: {review.status}")
    check(review.status.user.username == "system:serviceaccount:default:py-bot", f"{review.status.user}")
    check("system:serviceaccounts:default" in review.status.user.groups, f"{review.status.user}")
    forged = authn.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token[:-4] + "AAAA")))
    check(not forged.status.authenticated, "a token with a bad signature does not authenticate")
    try:
        core.create_namespaced_service_account_token(
            "py-bot", "default",
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=60)),
        )
        check(False, "a 60 s token is refused")
    except ApiException as e:
        check(e.status == 422, f"422 for a short token: {e.status} {e.body}")
    me = authn.create_self_subject_review(client.V1SelfSubjectReview())
    check(me.status.user_info.username == "kubernetes-admin", f"whoami: {me.status.user_info}")
    print("OK")


if __name__ == "__main__":
    main()

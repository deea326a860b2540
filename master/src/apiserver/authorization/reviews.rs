//! The review APIs, answered from the request and the authorizers, never stored:
//! `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`) and
//! `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`),
//! SubjectAccessReview, LocalSubjectAccessReview and SelfSubjectRulesReview
//! (`kubectl auth can-i --list`), and TokenReview (whose a bearer token is), as
//! kube-apiserver's `registry/authorization/*` and `registry/authentication/*` do.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, NonResourceRule, ResourceAttributes, ResourceRule,
    SubjectAccessReviewSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResource, APIResourceList};
use serde_json::{Value, json};

use super::{Attributes, Authorizer, Decision};
use crate::apiserver::ApiServer;
use crate::apiserver::authentication::{Authenticator, UserInfo};
use crate::apiserver::field_error::FieldError;
use crate::apiserver::request;
use crate::apiserver::service_account_tokens::ISSUER;
use crate::apiserver::status::ApiError;

/// The authorization reviews' group.
pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";
/// The authentication reviews' group.
pub const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";
/// Their version.
pub const VERSION: &str = "v1";

/// The review resources: (group, plural, kind, namespaced).
const REVIEWS: &[(&str, &str, &str, bool)] = &[
    (
        AUTHENTICATION_GROUP,
        "selfsubjectreviews",
        "SelfSubjectReview",
        false,
    ),
    (AUTHENTICATION_GROUP, "tokenreviews", "TokenReview", false),
    (
        AUTHORIZATION_GROUP,
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        true,
    ),
    (
        AUTHORIZATION_GROUP,
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
    ),
    (
        AUTHORIZATION_GROUP,
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        false,
    ),
    (
        AUTHORIZATION_GROUP,
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
    ),
];

/// Discovery of a review group, if `group` is one.
pub fn resource_list(group: &str, version: &str) -> Option<APIResourceList> {
    if version != VERSION || !REVIEWS.iter().any(|(g, ..)| *g == group) {
        return None;
    }
    Some(APIResourceList {
        group_version: format!("{group}/{VERSION}"),
        resources: REVIEWS
            .iter()
            .filter(|(g, ..)| *g == group)
            .map(|(_, plural, kind, namespaced)| APIResource {
                name: (*plural).into(),
                singular_name: plural.trim_end_matches('s').into(),
                namespaced: *namespaced,
                kind: (*kind).into(),
                verbs: vec!["create".into()],
                ..Default::default()
            })
            .collect(),
    })
}

/// The review groups, for `/apis`.
pub fn groups() -> [(&'static str, &'static str); 2] {
    [
        (AUTHENTICATION_GROUP, VERSION),
        (AUTHORIZATION_GROUP, VERSION),
    ]
}

/// Answer a POST of a review: `rest` is the path after `/apis/<group>/v1`.
pub fn create(
    api: &ApiServer,
    user: &UserInfo,
    group: &str,
    rest: &[&str],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let (namespace, plural) = match rest {
        [plural] => (None, *plural),
        ["namespaces", namespace, plural] => (Some(*namespace), *plural),
        _ => return Err(not_found(group, rest)),
    };
    let Some(&(_, _, kind, namespaced)) = REVIEWS
        .iter()
        .find(|(g, p, ..)| *g == group && *p == plural)
    else {
        return Err(not_found(group, rest));
    };
    if namespaced != namespace.is_some() {
        return Err(not_found(group, rest));
    }
    let mut review = request::decode_object(body, &request::content_type(headers))?;
    review["apiVersion"] = json!(format!("{group}/{VERSION}"));
    review["kind"] = json!(kind);
    let authorizer = &api.authorizer;
    let status = match kind {
        "SelfSubjectReview" => json!({"userInfo": user}),
        "TokenReview" => token_review(&api.authenticator, &review)?,
        "SelfSubjectAccessReview" => {
            let spec = spec(&review)?;
            access(authorizer, user, kind, &spec)?
        }
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            let spec = spec(&review)?;
            if spec.user.as_deref().unwrap_or("").is_empty()
                && spec.groups.as_deref().unwrap_or_default().is_empty()
            {
                return Err(invalid(
                    kind,
                    FieldError::invalid(
                        "spec.user",
                        "",
                        "at least one of user or group must be specified",
                    ),
                ));
            }
            if let Some(namespace) = namespace {
                local_namespace(kind, namespace, &spec)?;
            }
            let subject = UserInfo {
                username: spec.user.clone().unwrap_or_default(),
                uid: spec.uid.clone().unwrap_or_default(),
                groups: spec.groups.clone().unwrap_or_default(),
                extra: spec.extra.clone().unwrap_or_default(),
            };
            access(authorizer, &subject, kind, &spec)?
        }
        _ => {
            let namespace = review["spec"]["namespace"].as_str().unwrap_or("");
            rules(authorizer, user, namespace)
        }
    };
    review["status"] = status;
    if review.get("metadata").is_none_or(|m| !m.is_object()) {
        review["metadata"] = json!({});
    }
    Ok(crate::apiserver::json_value(StatusCode::CREATED, &review))
}

/// A TokenReview's status: whose the token is, for the audiences asked (the API server's
/// when none are).
fn token_review(authenticator: &Authenticator, review: &Value) -> Result<Value, ApiError> {
    let token = review["spec"]["token"].as_str().unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::Invalid {
            kind: "TokenReview".into(),
            group: AUTHENTICATION_GROUP.into(),
            name: String::new(),
            causes: vec![FieldError::required("spec.token", "")],
        });
    }
    let asked: Vec<&str> = review["spec"]["audiences"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let audiences = if asked.is_empty() {
        vec![ISSUER]
    } else {
        asked
    };
    Ok(match authenticator.token_user(token, &audiences) {
        Ok(user) => json!({"authenticated": true, "user": user, "audiences": audiences}),
        Err(error) => json!({"authenticated": false, "error": error}),
    })
}

fn not_found(group: &str, rest: &[&str]) -> ApiError {
    ApiError::NotFoundPath(format!(
        "the server could not find the requested resource (post /apis/{group}/{VERSION}/{})",
        rest.join("/")
    ))
}

fn invalid(kind: &str, cause: FieldError) -> ApiError {
    ApiError::Invalid {
        kind: kind.to_owned(),
        group: AUTHORIZATION_GROUP.to_owned(),
        name: String::new(),
        causes: vec![cause],
    }
}

fn spec(review: &Value) -> Result<SubjectAccessReviewSpec, ApiError> {
    serde_json::from_value(review.get("spec").cloned().unwrap_or_else(|| json!({})))
        .map_err(|e| ApiError::BadRequest(format!("spec: {e}")))
}

/// A LocalSubjectAccessReview is about its own namespace, and resources only.
fn local_namespace(
    kind: &str,
    namespace: &str,
    spec: &SubjectAccessReviewSpec,
) -> Result<(), ApiError> {
    if spec.non_resource_attributes.is_some() {
        return Err(invalid(
            kind,
            FieldError::invalid_unquoted(
                "spec.nonResourceAttributes",
                "&authorization.NonResourceAttributes{...}",
                "disallowed on this kind of request",
            ),
        ));
    }
    let asked = spec
        .resource_attributes
        .as_ref()
        .and_then(|r| r.namespace.as_deref())
        .unwrap_or("");
    if asked != namespace {
        return Err(ApiError::BadRequest(format!(
            "spec.resourceAttributes.namespace must match namespace: {namespace}"
        )));
    }
    Ok(())
}

/// The status of an access review of `spec` for `user`.
fn access(
    authorizer: &Authorizer,
    user: &UserInfo,
    kind: &str,
    spec: &SubjectAccessReviewSpec,
) -> Result<Value, ApiError> {
    let attributes = match (&spec.resource_attributes, &spec.non_resource_attributes) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                kind,
                FieldError::invalid_unquoted(
                    "spec.nonResourceAttributes",
                    "&authorization.NonResourceAttributes{...}",
                    "cannot be specified in combination with resourceAttributes",
                ),
            ));
        }
        (None, None) => {
            return Err(invalid(
                kind,
                FieldError::invalid_unquoted(
                    "spec.resourceAttributes",
                    "(*authorization.NonResourceAttributes)(nil)",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ),
            ));
        }
        (Some(r), None) => resource_attributes(r),
        (None, Some(n)) => non_resource_attributes(n),
    };
    Ok(match authorizer.authorize(user, &attributes) {
        Decision::Allow(reason) => json!({"allowed": true, "reason": reason}),
        Decision::Deny => json!({"allowed": false}),
    })
}

fn resource_attributes(r: &ResourceAttributes) -> Attributes {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    Attributes {
        verb: text(&r.verb),
        resource_request: true,
        api_group: text(&r.group),
        api_version: text(&r.version),
        resource: text(&r.resource),
        subresource: text(&r.subresource),
        namespace: text(&r.namespace),
        name: text(&r.name),
        path: String::new(),
    }
}

fn non_resource_attributes(n: &NonResourceAttributes) -> Attributes {
    Attributes::non_resource(
        n.verb.as_deref().unwrap_or(""),
        n.path.as_deref().unwrap_or(""),
    )
}

/// What `user` may do in `namespace` (and cluster-wide), as a SelfSubjectRulesReview's status.
fn rules(authorizer: &Authorizer, user: &UserInfo, namespace: &str) -> Value {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in authorizer.rbac.policy().rules_for(user, namespace) {
        if let Some(urls) = rule.non_resource_urls.filter(|u| !u.is_empty()) {
            non_resource_rules.push(NonResourceRule {
                verbs: rule.verbs,
                non_resource_urls: Some(urls),
            });
        } else {
            resource_rules.push(ResourceRule {
                verbs: rule.verbs,
                api_groups: rule.api_groups,
                resources: rule.resources,
                resource_names: rule.resource_names,
            });
        }
    }
    json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    })
}

//! Impersonation: a user allowed the `impersonate` verb acts as another user with the
//! `Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-<key>`
//! headers (`kubectl --as`, `--as-group`), as Kubernetes' impersonation filter
//! (`apiserver/pkg/endpoints/filters/impersonation.go`): each part asked for is authorized
//! on its own (`users`, `groups`, `serviceaccounts`, `uids`, `userextras/<key>`), and the
//! request then goes on as the impersonated user alone.

use std::collections::BTreeMap;

use axum::http::HeaderMap;

use super::{Attributes, Authorizer};
use crate::apiserver::authentication::{AUTHENTICATED_GROUP, UserInfo};
use crate::apiserver::status::ApiError;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// The user `requester` acts as: `None` when the request impersonates nobody, 403 when a
/// part it asks for is not allowed, 400 when it asks for groups or extras but no user.
pub fn impersonated(
    authorizer: &Authorizer,
    requester: &UserInfo,
    headers: &HeaderMap,
) -> Result<Option<UserInfo>, ApiError> {
    let text = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    };
    let user = text(USER).into_iter().next();
    let groups = text(GROUP);
    let uid = text(UID).into_iter().next();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX)
            && let Ok(value) = value.to_str()
        {
            let key = percent_encoding::percent_decode_str(key)
                .decode_utf8_lossy()
                .to_lowercase();
            extra.entry(key).or_default().push(value.to_owned());
        }
    }
    let Some(username) = user else {
        if groups.is_empty() && uid.is_none() && extra.is_empty() {
            return Ok(None);
        }
        return Err(ApiError::BadRequest(format!(
            "requested {} without impersonating a user",
            [
                (!groups.is_empty()).then(|| format!("groups {groups:?}")),
                uid.as_ref().map(|u| format!("uid {u:?}")),
                (!extra.is_empty()).then(|| "user extras".to_owned()),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and ")
        )));
    };
    let mut impersonated = UserInfo {
        username: username.clone(),
        uid: uid.clone().unwrap_or_default(),
        groups: groups.clone(),
        extra: extra.clone(),
    };
    let mut checks = Vec::new();
    match impersonated.service_account() {
        Some((namespace, name)) => {
            checks.push(Attributes::resource(
                "impersonate",
                "",
                "serviceaccounts",
                "",
                namespace,
                name,
            ));
            if groups.is_empty() {
                impersonated.groups = vec![
                    "system:serviceaccounts".to_owned(),
                    format!("system:serviceaccounts:{namespace}"),
                ];
            }
        }
        None => checks.push(Attributes::resource(
            "impersonate",
            "",
            "users",
            "",
            "",
            &username,
        )),
    }
    for group in &groups {
        checks.push(Attributes::resource(
            "impersonate",
            "",
            "groups",
            "",
            "",
            group,
        ));
    }
    if let Some(uid) = &uid {
        checks.push(Attributes::resource(
            "impersonate",
            "authentication.k8s.io",
            "uids",
            "",
            "",
            uid,
        ));
    }
    for (key, values) in &extra {
        for value in values {
            checks.push(Attributes::resource(
                "impersonate",
                "authentication.k8s.io",
                "userextras",
                key,
                "",
                value,
            ));
        }
    }
    for check in &checks {
        authorizer.check(requester, check)?;
    }
    if username == "system:anonymous" {
        impersonated
            .groups
            .push("system:unauthenticated".to_owned());
    } else if !impersonated.in_group(AUTHENTICATED_GROUP) {
        impersonated.groups.push(AUTHENTICATED_GROUP.to_owned());
    }
    Ok(Some(impersonated))
}

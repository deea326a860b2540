//! Reading a resource request: the path (`/api/v1/namespaces/ns/pods/name/status`), the query
//! parameters and the body.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use serde_json::Value;

use super::resources::{self, Resource};
use super::status::ApiError;
use skiff_api::selectors::{FieldSelector, LabelSelector};

/// Largest accepted request body, as Kubernetes' 3 MiB limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What a resource path names.
#[derive(Clone, Debug)]
pub struct Target {
    /// The resource type.
    pub resource: &'static Resource,
    /// Namespace from the path (None for cluster-scoped, or all namespaces).
    pub namespace: Option<String>,
    /// Object name, if the path names one.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `binding`), if any.
    pub subresource: Option<String>,
}

impl Target {
    /// Parse a resource path; 404 for paths that name nothing served.
    pub fn parse(path: &str) -> Result<Self, ApiError> {
        let not_found = || {
            ApiError::NotFoundPath(format!(
                "the server could not find the requested resource ({path})"
            ))
        };
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return Err(not_found()),
        };
        if !resources::serves_group_version(group, version) {
            return Err(not_found());
        }
        let find = |plural: &str| resources::find(group, version, plural).ok_or_else(not_found);
        let target = |resource: &'static Resource,
                      namespace: Option<&str>,
                      name: Option<&str>,
                      sub: Option<&str>| {
            if let Some(sub) = sub
                && !resource.has_subresource(sub)
            {
                return Err(not_found());
            }
            Ok(Target {
                resource,
                namespace: namespace.map(str::to_string),
                name: name.map(str::to_string),
                subresource: sub.map(str::to_string),
            })
        };
        match rest {
            // Namespace objects and their subresources.
            ["namespaces", name] if group.is_empty() => {
                target(find("namespaces")?, None, Some(name), None)
            }
            ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
                target(find("namespaces")?, None, Some(name), Some(sub))
            }
            ["namespaces", ns, plural, tail @ ..] => {
                let resource = find(plural)?;
                if !resource.namespaced {
                    return Err(not_found());
                }
                match tail {
                    [] => target(resource, Some(ns), None, None),
                    [name] => target(resource, Some(ns), Some(name), None),
                    [name, sub] => target(resource, Some(ns), Some(name), Some(sub)),
                    _ => Err(not_found()),
                }
            }
            [plural] => target(find(plural)?, None, None, None),
            [plural, name] => {
                let resource = find(plural)?;
                if resource.namespaced {
                    return Err(not_found());
                }
                target(resource, None, Some(name), None)
            }
            [plural, name, sub] => {
                let resource = find(plural)?;
                if resource.namespaced {
                    return Err(not_found());
                }
                target(resource, None, Some(name), Some(sub))
            }
            _ => Err(not_found()),
        }
    }

    /// The object name, or 405 when the path names a collection.
    pub fn name(&self) -> Result<&str, ApiError> {
        self.name.as_deref().ok_or(ApiError::MethodNotAllowed)
    }
}

/// The query parameters a resource request may carry.
#[derive(Debug, Default)]
pub struct Query {
    params: HashMap<String, String>,
}

impl Query {
    /// Parse a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
        Ok(Self {
            params: pairs.into_iter().collect(),
        })
    }

    /// One parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A boolean parameter (`1`/`true`).
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("1" | "true" | "True"))
    }

    /// An integer parameter; 400 when it does not parse.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::BadRequest(format!("invalid value for {name}: {v:?}"))),
        }
    }

    /// The label selector (`labelSelector=`).
    pub fn label_selector(&self) -> Result<LabelSelector, ApiError> {
        LabelSelector::parse(self.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}")))
    }

    /// The field selector (`fieldSelector=`), checked against the fields `resource` supports.
    pub fn field_selector(&self, resource: &Resource) -> Result<FieldSelector, ApiError> {
        let selector = FieldSelector::parse(self.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(format!("invalid field selector: {e}")))?;
        if let Some(field) = selector.fields().find(|f| !resource.supports_field(f)) {
            return Err(ApiError::BadRequest(format!(
                "field label not supported: {field}"
            )));
        }
        Ok(selector)
    }

    /// `fieldValidation`: Strict, Warn (the default) or Ignore.
    pub fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        match self.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }

    /// Whether the request is a dry run (`dryRun=All`).
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "unsupported dryRun value {other:?}; supported: All"
            ))),
        }
    }
}

/// What to do with fields the type does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject the request (400).
    Strict,
    /// Accept and return a `Warning` header per field.
    Warn,
    /// Accept silently.
    Ignore,
}

/// Read the body, at most [`MAX_BODY_BYTES`] (413 beyond).
pub async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_large {
                ApiError::TooLarge(format!("limit is {MAX_BODY_BYTES}"))
            } else {
                ApiError::BadRequest(format!("reading the request body: {e}"))
            }
        })
}

/// The request's media type, lower-cased, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decode a JSON or YAML body into an object (400 when it is neither, or not an object).
pub fn decode_object(body: &[u8], media_type: &str) -> Result<Value, ApiError> {
    if media_type == super::protobuf::MEDIA_TYPE {
        return super::protobuf::decode(body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding protobuf: {e}")));
    }
    let value: Value = if media_type.contains("yaml") {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::BadRequest(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_resources_namespaces_and_subresources() {
        let t = Target::parse("/api/v1/namespaces/default/pods/web/status").unwrap();
        assert_eq!(
            (
                t.resource.plural,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("pods", Some("default"), Some("web"), Some("status"))
        );
        let t = Target::parse("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(
            (t.resource.plural, t.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let t = Target::parse("/apis/apps/v1/deployments").unwrap();
        assert_eq!(
            (t.resource.plural, t.namespace, t.name),
            ("deployments", None, None)
        );
        let t = Target::parse("/api/v1/nodes/n1/status").unwrap();
        assert_eq!(
            (t.resource.plural, t.subresource.as_deref()),
            ("nodes", Some("status"))
        );
        assert!(Target::parse("/api/v1/namespaces/default/widgets").is_err());
        assert!(Target::parse("/api/v1/namespaces/default/nodes/x").is_err());
        assert!(Target::parse("/api/v1/namespaces/default/pods/web/scale").is_err());
        assert!(Target::parse("/apis/apps/v2/deployments").is_err());
    }
}

//! API errors and the Kubernetes `Status` objects they are reported as.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

use super::field_error::FieldError;
use crate::store::StoreError;

/// An error answered to an API client as a `Status` object with the matching HTTP code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be understood (bad JSON, kind mismatch, bad selector).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or wrong bearer token.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403: the request is understood but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource type or path.
    #[error("{0}")]
    NotFoundPath(String),
    /// 404: no such object.
    #[error("{kind} \"{name}\" not found")]
    NotFound {
        /// Resource (plural, with group if any) as Kubernetes names it, e.g. `pods`, `deployments.apps`.
        kind: String,
        /// Object name.
        name: String,
    },
    /// 405: the verb is not supported on this path.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406: no representation the Accept header allows.
    #[error("{0}")]
    NotAcceptable(String),
    /// 409: the name is taken.
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists {
        /// Resource (plural[.group]).
        kind: String,
        /// Object name.
        name: String,
    },
    /// 409: optimistic concurrency failed or a state conflict.
    #[error("{message}")]
    Conflict {
        /// Resource (plural[.group]).
        kind: String,
        /// Object name.
        name: String,
        /// Full message.
        message: String,
    },
    /// 410: the requested resourceVersion is compacted.
    #[error("{0}")]
    Gone(String),
    /// 413: a request body, or what a patch makes, larger than a limit (the detail after
    /// Kubernetes' `Request entity too large: `).
    #[error("Request entity too large: {0}")]
    TooLarge(String),
    /// 415: a Content-Type the verb does not accept.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: field validation failed.
    #[error("{kind} \"{name}\" is invalid")]
    Invalid {
        /// Kind, e.g. `Pod`.
        kind: String,
        /// Group, e.g. `apps` or empty for core.
        group: String,
        /// Object name.
        name: String,
        /// The invalid fields.
        causes: Vec<FieldError>,
    },
    /// 408/504: the request took too long.
    #[error("{0}")]
    Timeout(String),
    /// 500: something broke inside the server.
    /// 429: the request would break a limit, e.g. a pod's disruption budget (an eviction).
    #[error("{message}")]
    TooManyRequests {
        /// Kubernetes' message.
        message: String,
        /// Seconds before a retry may succeed (`details.retryAfterSeconds`).
        retry_after: i32,
        /// The cause: its type and message (`DisruptionBudget`, ...).
        cause: Option<(String, String)>,
    },
    #[error("{0}")]
    Internal(String),
    /// 503: the store or another dependency is unavailable.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// The HTTP status code.
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFoundPath(_) | ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Kubernetes' `StatusReason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFoundPath(_) | ApiError::NotFound { .. } => "NotFound",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Gone(_) => "Expired",
            ApiError::TooLarge(_) => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Timeout(_) => "Timeout",
            ApiError::TooManyRequests { .. } => "TooManyRequests",
            ApiError::Internal(_) => "InternalError",
            ApiError::Unavailable(_) => "ServiceUnavailable",
        }
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> serde_json::Value {
        let details = match self {
            ApiError::NotFound { kind, name }
            | ApiError::AlreadyExists { kind, name }
            | ApiError::Conflict { kind, name, .. } => {
                let (resource, group) = kind.split_once('.').unwrap_or((kind.as_str(), ""));
                Some(StatusDetails {
                    name: Some(name.clone()),
                    kind: Some(resource.to_owned()),
                    group: Some(group.to_owned()).filter(|g| !g.is_empty()),
                    ..Default::default()
                })
            }
            ApiError::Invalid {
                kind,
                group,
                name,
                causes,
            } => Some(StatusDetails {
                name: Some(name.clone()),
                kind: Some(kind.clone()),
                group: Some(group.clone()).filter(|g| !g.is_empty()),
                causes: Some(
                    causes
                        .iter()
                        .map(|c| StatusCause {
                            reason: Some(c.reason().to_owned()),
                            message: Some(c.message()),
                            field: Some(c.field.clone()),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ApiError::TooManyRequests {
                retry_after, cause, ..
            } => Some(StatusDetails {
                retry_after_seconds: Some(*retry_after),
                causes: cause.as_ref().map(|(reason, message)| {
                    vec![StatusCause {
                        reason: Some(reason.clone()),
                        message: Some(message.clone()),
                        field: None,
                    }]
                }),
                ..Default::default()
            }),
            _ => None,
        };
        let status = Status {
            status: Some(String::from("Failure")),
            message: Some(self.message()),
            reason: Some(self.reason().to_owned()),
            code: Some(i32::from(self.code().as_u16())),
            details,
            ..Default::default()
        };
        serde_json::to_value(&status).unwrap_or_default()
    }

    /// The human message, in Kubernetes' wording.
    pub fn message(&self) -> String {
        match self {
            ApiError::Invalid {
                kind, name, causes, ..
            } => {
                let list: Vec<String> = causes.iter().map(|c| c.to_string()).collect();
                if list.len() == 1 {
                    format!("{kind} \"{name}\" is invalid: {}", list[0])
                } else {
                    format!("{kind} \"{name}\" is invalid: [{}]", list.join(", "))
                }
            }
            other => other.to_string(),
        }
    }

    /// Map a store error on the object `name` of resource `kind` (plural[.group]).
    pub fn from_store(err: StoreError, kind: &str, name: &str) -> Self {
        match err {
            StoreError::NotFound(_) => ApiError::NotFound {
                kind: kind.to_string(),
                name: name.to_string(),
            },
            StoreError::AlreadyExists(_) => ApiError::AlreadyExists {
                kind: kind.to_string(),
                name: name.to_string(),
            },
            StoreError::Conflict { .. } => ApiError::conflict(kind, name),
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::Gone(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StoreError::FutureRevision { requested, current } => ApiError::Timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            )),
            StoreError::Backend(m) => ApiError::Unavailable(format!("storage is unavailable: {m}")),
            StoreError::Timeout(m) => ApiError::Timeout(format!("storage did not answer: {m}")),
        }
    }

    /// The optimistic-concurrency conflict, worded as Kubernetes words it.
    pub fn conflict(kind: &str, name: &str) -> Self {
        ApiError::Conflict {
            kind: kind.to_string(),
            name: name.to_string(),
            message: format!(
                "Operation cannot be fulfilled on {kind} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ApiError::from_store(err, "", "")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut resp = (self.code(), body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // As Kubernetes' response writer: a retry delay is a header too.
        if let ApiError::TooManyRequests { retry_after, .. } = &self
            && *retry_after > 0
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        resp
    }
}

/// A successful `Status` (e.g. for deletecollection).
pub fn success() -> serde_json::Value {
    let status = Status {
        status: Some(String::from("Success")),
        ..Default::default()
    };
    serde_json::to_value(&status).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn errors_are_kubernetes_status_objects() {
        let status = ApiError::NotFound {
            kind: "deployments.apps".into(),
            name: "web".into(),
        }
        .to_status();
        assert_eq!(
            status,
            json!({
                "apiVersion": "v1", "kind": "Status", "metadata": {},
                "status": "Failure", "reason": "NotFound", "code": 404,
                "message": "deployments.apps \"web\" not found",
                "details": {"name": "web", "kind": "deployments", "group": "apps"},
            })
        );
        let invalid = ApiError::Invalid {
            kind: "Pod".into(),
            group: String::new(),
            name: "p".into(),
            causes: vec![FieldError::invalid("metadata.name", "P", "bad")],
        }
        .to_status();
        assert_eq!(invalid["code"], 422);
        assert_eq!(invalid["reason"], "Invalid");
        assert_eq!(invalid["details"]["kind"], "Pod");
        assert!(
            invalid["details"].get("group").is_none(),
            "core group: no group"
        );
        assert_eq!(invalid["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(
            invalid["details"]["causes"][0]["reason"],
            "FieldValueInvalid"
        );
        assert_eq!(
            success(),
            json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success"})
        );
    }
}

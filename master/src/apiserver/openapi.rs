//! `/openapi/v3`: the OpenAPI index and one document per group/version. kubectl reads it to
//! learn that the server validates fields itself (`fieldValidation` on PATCH), so it sends
//! `fieldValidation=Strict` instead of validating on the client.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{Value, json};

use super::discovery::KUBERNETES_MINOR;
use super::resources::{RESOURCES, Resource};

/// The OpenAPI v3 documents, built once.
pub struct OpenApi {
    index: Value,
    documents: Vec<(String, Value)>,
}

impl Default for OpenApi {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenApi {
    /// Build the index and the per group/version documents.
    pub fn new() -> Self {
        let mut gvs: Vec<(&str, &str)> = Vec::new();
        for r in RESOURCES {
            if !gvs.contains(&(r.group, r.version)) {
                gvs.push((r.group, r.version));
            }
        }
        let mut documents = Vec::new();
        let mut paths = serde_json::Map::new();
        for (group, version) in gvs {
            let gv_path = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
            let doc = document(group, version);
            let mut hasher = DefaultHasher::new();
            doc.to_string().hash(&mut hasher);
            let hash = format!("{:016X}", hasher.finish());
            paths.insert(
                gv_path.clone(),
                json!({ "serverRelativeURL": format!("/openapi/v3/{gv_path}?hash={hash}") }),
            );
            documents.push((gv_path, doc));
        }
        Self {
            index: json!({ "paths": paths }),
            documents,
        }
    }

    /// `/openapi/v3`.
    pub fn index(&self) -> &Value {
        &self.index
    }

    /// `/openapi/v3/<gv path>` (`api/v1`, `apis/apps/v1`).
    pub fn document(&self, gv_path: &str) -> Option<&Value> {
        self.documents
            .iter()
            .find(|(p, _)| p == gv_path.trim_matches('/'))
            .map(|(_, d)| d)
    }
}

fn query_param(name: &str) -> Value {
    json!({ "name": name, "in": "query", "schema": { "type": "string", "uniqueItems": true } })
}

fn operation(r: &Resource, action: &str, params: &[&str]) -> Value {
    json!({
        "operationId": format!("{action}{}", r.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": { "group": r.group, "version": r.version, "kind": r.kind },
        "parameters": params.iter().map(|p| query_param(p)).collect::<Vec<_>>(),
        "responses": { "200": { "description": "OK" }, "401": { "description": "Unauthorized" } },
    })
}

fn document(group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let write_params: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "pretty"];
    let list_params: &[&str] = &[
        "allowWatchBookmarks",
        "continue",
        "fieldSelector",
        "labelSelector",
        "limit",
        "resourceVersion",
        "resourceVersionMatch",
        "sendInitialEvents",
        "timeoutSeconds",
        "watch",
        "pretty",
    ];
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let base = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        paths.insert(
            collection.clone(),
            json!({
                "get": operation(r, "list", list_params),
                "post": operation(r, "post", write_params),
                "delete": operation(r, "deletecollection", list_params),
            }),
        );
        let mut patch = operation(
            r,
            "patch",
            &[
                "dryRun",
                "fieldManager",
                "fieldValidation",
                "force",
                "pretty",
            ],
        );
        patch["requestBody"] = json!({ "content": {
            "application/json-patch+json": {}, "application/merge-patch+json": {}, "application/apply-patch+yaml": {}
        }});
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": operation(r, "get", &["pretty"]),
                "put": operation(r, "put", write_params),
                "patch": patch,
                "delete": operation(r, "delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy", "pretty"]),
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": format!("v1.{KUBERNETES_MINOR}.0") },
        "paths": paths,
        "components": { "schemas": {} },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_document_advertises_field_validation_on_patch() {
        let api = OpenApi::new();
        let index = api.index()["paths"].as_object().unwrap();
        assert!(index.contains_key("api/v1") && index.contains_key("apis/apps/v1"));
        let doc = api.document("apis/apps/v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
    }
}

//! get, list and watch.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::objects;
use super::request::{Query, Target};
use super::resources::Resource;
use super::status::ApiError;
use super::table::{self, IncludeObject, TableVersion};
use super::{ApiServer, json_response};
use crate::store::{EventKind, KeyValue, Revision, StoreError};
use skiff_api::selectors::{FieldSelector, LabelSelector};

/// Longest watch before the server ends it (clients re-watch), as kube-apiserver's 30 min.
const MAX_WATCH: Duration = Duration::from_secs(1800);
/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// Largest chunk a watch writes at once.
const MAX_CHUNK: usize = 256 * 1024;

/// Which objects a list or watch wants.
struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
    name: Option<String>,
}

impl Filter {
    fn new(target: &Target, query: &Query) -> Result<Self, ApiError> {
        Ok(Self {
            labels: query.label_selector()?,
            fields: query.field_selector(target.resource)?,
            name: target.name.clone(),
        })
    }

    fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty() && self.name.is_none()
    }

    fn matches(&self, object: &Value) -> bool {
        if let Some(name) = &self.name
            && objects::meta_str(object, "name") != Some(name)
        {
            return false;
        }
        self.labels.matches(&objects::labels(object))
            && self.fields.matches(|f| objects::field_value(object, f))
    }

    /// Whether a stored value matches; parses only when a selector needs it.
    fn matches_stored(&self, value: &[u8]) -> bool {
        if self.is_everything() {
            return true;
        }
        match serde_json::from_slice::<Value>(value) {
            Ok(object) => self.matches(&object),
            Err(_) => false,
        }
    }
}

/// How objects are written: as stored, or as rows of a `meta.k8s.io` Table (what kubectl
/// asks for to print its columns).
#[derive(Clone, Copy)]
enum Render {
    Objects,
    Table(TableVersion, IncludeObject),
}

impl Render {
    fn new(headers: &HeaderMap, query: &Query) -> Result<Self, ApiError> {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
        Ok(match table::requested(accept) {
            Some(version) => Render::Table(
                version,
                IncludeObject::parse(query.get("includeObject")).map_err(ApiError::BadRequest)?,
            ),
            None => Render::Objects,
        })
    }
}

/// Stored objects, decoded with their resourceVersions.
fn decode_all<'a>(kvs: impl Iterator<Item = &'a KeyValue>) -> Result<Vec<Value>, ApiError> {
    kvs.map(objects::decode).collect()
}

/// A continue token: where the next page starts.
#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: Revision,
    start: String,
}

impl ApiServer {
    /// GET one object (also `/status`, which returns the whole object as Kubernetes does).
    pub(super) async fn get(
        &self,
        target: &Target,
        query: &Query,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let kv = self.current(target).await?;
        if let Render::Table(version, include) = Render::new(headers, query)? {
            let object = objects::decode(&kv)?;
            let meta = json!({ "resourceVersion": kv.mod_revision.to_string() });
            let t = table::table(target.resource.kind, &[object], include, version, meta);
            return Ok(json_response(
                StatusCode::OK,
                serde_json::to_vec(&t).unwrap_or_default(),
            ));
        }
        Ok(json_response(
            StatusCode::OK,
            objects::splice_resource_version(&kv.value, kv.mod_revision),
        ))
    }

    /// The stored object a target names, or 404.
    pub(super) async fn current(&self, target: &Target) -> Result<KeyValue, ApiError> {
        let name = target.name()?;
        let key = objects::key(target.resource, target.namespace.as_deref(), name);
        self.store
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::NotFound {
                kind: target.resource.qualified(),
                name: name.to_string(),
            })
    }

    /// GET a collection.
    pub(super) async fn list(
        &self,
        target: &Target,
        query: &Query,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let r = target.resource;
        let filter = Filter::new(target, query)?;
        let render = Render::new(headers, query)?;
        let limit = query.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
        let start = match query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let listed = self
            .store
            .list(&objects::prefix(r, target.namespace.as_deref()))
            .await?;
        let mut page: Vec<&KeyValue> = Vec::new();
        let mut remaining = 0usize;
        for kv in &listed.items {
            let before_start = start
                .as_ref()
                .is_some_and(|s| kv.key.as_str() <= s.start.as_str());
            if before_start || !filter.matches_stored(&kv.value) {
                continue;
            }
            if limit.is_some_and(|l| page.len() >= l) {
                remaining += 1;
            } else {
                page.push(kv);
            }
        }
        let mut metadata = json!({ "resourceVersion": listed.revision.to_string() });
        if remaining > 0
            && let Some(last) = page.last()
        {
            let token = serde_json::to_vec(&Continue {
                rv: listed.revision,
                start: last.key.clone(),
            })
            .unwrap_or_default();
            metadata["continue"] =
                json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token));
            metadata["remainingItemCount"] = json!(remaining);
        }
        if let Render::Table(version, include) = render {
            let t = table::table(
                r.kind,
                &decode_all(page.into_iter())?,
                include,
                version,
                metadata,
            );
            return Ok(json_response(
                StatusCode::OK,
                serde_json::to_vec(&t).unwrap_or_default(),
            ));
        }
        // The list is written around the stored bytes, without parsing the objects.
        let head = format!(
            "{{\"apiVersion\":\"{}\",\"kind\":\"{}List\",\"metadata\":{},\"items\":[",
            r.api_version(),
            r.kind,
            metadata
        );
        let mut out = Vec::with_capacity(
            head.len() + page.iter().map(|kv| kv.value.len() + 32).sum::<usize>() + 2,
        );
        out.extend_from_slice(head.as_bytes());
        for (i, kv) in page.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            objects::splice_resource_version_into(&mut out, &kv.value, kv.mod_revision);
        }
        out.extend_from_slice(b"]}");
        Ok(json_response(StatusCode::OK, out))
    }

    /// GET with `watch=1`: a stream of `{"type":..., "object":...}` lines.
    pub(super) async fn watch(
        self: &Arc<Self>,
        target: &Target,
        query: &Query,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let r = target.resource;
        let filter = Filter::new(target, query)?;
        let mut framer = Framer {
            render: Render::new(headers, query)?,
            kind: r.kind,
            columns_sent: false,
        };
        let timeout = match query.int("timeoutSeconds")? {
            Some(s) if s > 0 => Duration::from_secs(s as u64).min(MAX_WATCH),
            _ => MAX_WATCH,
        };
        let bookmarks = query.flag("allowWatchBookmarks");
        let send_initial = query.flag("sendInitialEvents");
        let prefix = objects::prefix(r, target.namespace.as_deref());
        let rv = query
            .get("resourceVersion")
            .filter(|v| !v.is_empty() && *v != "0");
        let (initial, from) = match rv {
            Some(v) if !send_initial => {
                let rev: Revision = v.parse().map_err(|_| {
                    ApiError::BadRequest(format!("invalid resource version: {v:?}"))
                })?;
                (Vec::new(), rev)
            }
            _ => {
                let listed = self.store.list(&prefix).await?;
                (listed.items, listed.revision)
            }
        };
        let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
        let events = self.store.watch(&prefix, from).await;
        let api = self.clone();
        tokio::spawn(async move {
            let _api = api;
            let mut events = match events {
                Ok(events) => events,
                Err(e) => {
                    let _ = tx.send(Ok(error_frame(e))).await;
                    return;
                }
            };
            let mut members: HashSet<String> = HashSet::new();
            for kv in initial {
                if filter.matches_stored(&kv.value) {
                    if !filter.is_everything() {
                        members.insert(kv.key.clone());
                    }
                    if tx
                        .send(Ok(framer.frame("ADDED", &kv.value, kv.mod_revision)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            let mut last = from;
            if send_initial && bookmarks && tx.send(Ok(bookmark(r, last, true))).await.is_err() {
                return;
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + BOOKMARK_EVERY,
                BOOKMARK_EVERY,
            );
            loop {
                let out = tokio::select! {
                    event = events.next() => {
                        // Events of one commit arrive together: write every ready one in a
                        // single chunk (one TLS record and syscall instead of one per event).
                        let mut out = Vec::new();
                        let mut next = event;
                        loop {
                            match next {
                                Some(Ok(event)) => {
                                    last = event.kv.mod_revision;
                                    if let Some(kind) = classify(&filter, &mut members, event.kind, &event.kv) {
                                        framer.frame_into(&mut out, kind, &event.kv.value, event.kv.mod_revision);
                                    }
                                }
                                Some(Err(e)) => {
                                    out.extend_from_slice(&error_frame(e));
                                    let _ = tx.send(Ok(Bytes::from(out))).await;
                                    return;
                                }
                                None => {
                                    let _ = tx.send(Ok(Bytes::from(out))).await;
                                    return;
                                }
                            }
                            if out.len() >= MAX_CHUNK {
                                break;
                            }
                            match events.next().now_or_never() {
                                Some(ready) => next = ready,
                                None => break,
                            }
                        }
                        if out.is_empty() {
                            continue;
                        }
                        Bytes::from(out)
                    },
                    _ = ticker.tick(), if bookmarks => bookmark(r, last, false),
                    () = &mut deadline => return,
                    () = tx.closed() => return,
                };
                if tx.send(Ok(out)).await.is_err() {
                    return;
                }
            }
        });
        let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut resp = (StatusCode::OK, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        Ok(resp)
    }
}

/// The event type a watcher sees for a store event, or None to skip it. `members` holds
/// the keys the watcher has seen matching, so an object that stops matching a selector
/// is reported DELETED and one that starts matching ADDED, as Kubernetes does.
fn classify(
    filter: &Filter,
    members: &mut HashSet<String>,
    kind: EventKind,
    kv: &KeyValue,
) -> Option<&'static str> {
    if filter.is_everything() {
        return Some(match kind {
            EventKind::Delete => "DELETED",
            EventKind::Put if kv.create_revision == kv.mod_revision => "ADDED",
            EventKind::Put => "MODIFIED",
        });
    }
    let matches = filter.matches_stored(&kv.value);
    let was = members.contains(&kv.key);
    match kind {
        EventKind::Delete => {
            members.remove(&kv.key);
            (was || matches).then_some("DELETED")
        }
        EventKind::Put if matches => {
            members.insert(kv.key.clone());
            Some(if was { "MODIFIED" } else { "ADDED" })
        }
        EventKind::Put => {
            members.remove(&kv.key);
            was.then_some("DELETED")
        }
    }
}

/// Writes watch events, as stored objects or as one-row Tables.
struct Framer {
    render: Render,
    kind: &'static str,
    columns_sent: bool,
}

impl Framer {
    fn frame(&mut self, event: &str, stored: &[u8], revision: Revision) -> Bytes {
        let mut out = Vec::with_capacity(stored.len() + 64);
        self.frame_into(&mut out, event, stored, revision);
        Bytes::from(out)
    }

    fn frame_into(&mut self, out: &mut Vec<u8>, event: &str, stored: &[u8], revision: Revision) {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(event.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        match self.render {
            Render::Objects => objects::splice_resource_version_into(out, stored, revision),
            Render::Table(version, include) => {
                let mut object: Value = serde_json::from_slice(stored).unwrap_or(Value::Null);
                objects::set_resource_version(&mut object, revision);
                let meta = json!({ "resourceVersion": revision.to_string() });
                let mut t = table::table(self.kind, &[object], include, version, meta);
                // Kubernetes sends the column definitions with the first event only.
                if self.columns_sent {
                    table::drop_column_definitions(&mut t);
                }
                self.columns_sent = true;
                out.extend_from_slice(&serde_json::to_vec(&t).unwrap_or_default());
            }
        }
        out.extend_from_slice(b"}\n");
    }
}

fn bookmark(r: &Resource, revision: Revision, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({ "resourceVersion": revision.to_string() });
    if initial_events_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    let object = json!({ "apiVersion": r.api_version(), "kind": r.kind, "metadata": metadata });
    let mut out =
        serde_json::to_vec(&json!({ "type": "BOOKMARK", "object": object })).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn error_frame(err: StoreError) -> Bytes {
    let status = ApiError::from(err).to_status();
    let mut out =
        serde_json::to_vec(&json!({ "type": "ERROR", "object": status })).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn decode_continue(token: &str) -> Result<Continue, ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid continue token {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

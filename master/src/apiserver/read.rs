//! get, list and watch.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::negotiation::Representation;
use super::objects;
use super::protobuf::{self, encode};
use super::request::{Query, Target};
use super::resources::Resource;
use super::status::ApiError;
use super::table::{self, IncludeObject, TableVersion};
use super::watch_cache::{CacheError, CachedEvent, CachedObject};
use super::{ApiServer, json_response, protobuf_response};
use crate::store::{EventKind, KeyValue, Revision};
use skiff_api::selectors::{FieldSelector, LabelSelector};

/// Longest watch before the server ends it (clients re-watch), as kube-apiserver's 30 min.
const MAX_WATCH: Duration = Duration::from_secs(1800);
/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// Largest chunk a watch writes at once.
const MAX_CHUNK: usize = 256 * 1024;
/// Most events a watcher takes from the cache at once.
const MAX_BATCH: usize = 512;
/// The most items one page of a list holds.
const MAX_LIST_LIMIT: usize = 10_000;
/// How long a watcher's buffer may stay full before the watch is ended (the client watches
/// again from its last resourceVersion), as kube-apiserver's cacher closes unresponsive
/// watchers.
const SLOW_WATCHER_LIMIT: Duration = Duration::from_secs(5);

/// Where a watch writes its frames: a bounded buffer the response body drains, and the
/// user's watch seat, held while the watch lasts.
struct WatchSink {
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    _seat: super::overload::WatchSeat,
}

impl WatchSink {
    /// Queues `frame`; false when the client is gone or has not read for
    /// [`SLOW_WATCHER_LIMIT`] with the buffer full (the watch then ends).
    async fn send(&self, frame: Bytes) -> bool {
        match tokio::time::timeout(SLOW_WATCHER_LIMIT, self.tx.send(Ok(frame))).await {
            Ok(sent) => sent.is_ok(),
            Err(_) => {
                tracing::info!("ending a watch whose client does not read");
                false
            }
        }
    }
}
/// How long a read waits for the watch cache to reach the revision it needs (Kubernetes'
/// cacher waits 3 s before "Too large resource version").
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// Which objects a list or watch wants.
struct Filter {
    resource: &'static Resource,
    labels: LabelSelector,
    fields: FieldSelector,
    name: Option<String>,
}

impl Filter {
    fn new(target: &Target, query: &Query) -> Result<Self, ApiError> {
        Ok(Self {
            resource: target.resource,
            labels: query.label_selector()?,
            fields: query.field_selector(target.resource)?,
            name: target.name.clone(),
        })
    }

    fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty() && self.name.is_none()
    }

    /// Whether a cached object matches; its labels and fields are read once and shared.
    fn matches_cached(&self, object: &CachedObject) -> bool {
        if self.is_everything() {
            return true;
        }
        let Some(attrs) = object.attrs(self.resource) else {
            return false;
        };
        if let Some(name) = &self.name
            && attrs.field("metadata.name").as_ref() != Some(name)
        {
            return false;
        }
        self.labels.matches(&attrs.labels) && self.fields.matches(|f| attrs.field(f))
    }
}

/// How objects are written: as stored (JSON), in Kubernetes' protobuf encoding (what Go
/// clients ask for), or as rows of a `meta.k8s.io` Table (what kubectl asks for to print its
/// columns).
#[derive(Clone, Copy)]
enum Render {
    Json,
    Protobuf,
    Table(TableVersion, IncludeObject),
    /// `PartialObjectMetadata` of this `meta.k8s.io` apiVersion.
    PartialMetadata(&'static str),
}

impl Render {
    fn new(headers: &HeaderMap, query: &Query, resource: &Resource) -> Result<Self, ApiError> {
        Ok(match Representation::for_resource(headers, resource)? {
            Representation::Json => Render::Json,
            Representation::Protobuf { .. } => Render::Protobuf,
            Representation::Table(version) => Render::Table(
                version,
                IncludeObject::parse(query.get("includeObject")).map_err(ApiError::BadRequest)?,
            ),
            Representation::PartialMetadata(api_version) => Render::PartialMetadata(api_version),
        })
    }
}

/// An object's `PartialObjectMetadata`: its metadata alone, as `api_version`
/// (`meta.k8s.io/v1`).
fn partial_metadata(api_version: &str, object: &Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": "PartialObjectMetadata",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A cached object's protobuf message (500 when the object has no protobuf form).
fn protobuf_of(object: &CachedObject) -> Result<&Bytes, ApiError> {
    object
        .protobuf()
        .map_err(|e| ApiError::Internal(e.to_owned()))
}

/// Cached objects, decoded with their resourceVersions.
fn decode_all<'a>(
    cached: impl Iterator<Item = &'a Arc<CachedObject>>,
) -> Result<Vec<Value>, ApiError> {
    cached.map(|o| objects::decode(&o.kv)).collect()
}

/// A continue token: where the next page starts.
#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: Revision,
    start: String,
}

impl ApiServer {
    /// GET one object (also `/status`, which returns the whole object as Kubernetes does).
    /// With a `resourceVersion` it is read from the watch cache once that has caught up to it
    /// (`0`: any state), as kube-apiserver does; without one, from the store (a quorum read).
    pub(super) async fn get(
        &self,
        target: &Target,
        query: &Query,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let object = match query.get("resourceVersion").filter(|v| !v.is_empty()) {
            Some(rv) => self.get_cached(target, rv).await?,
            None => CachedObject::new(self.current(target).await?),
        };
        let r = target.resource;
        match Render::new(headers, query, r)? {
            Render::Table(version, include) => {
                let decoded = decode_all(std::iter::once(&object))?;
                let meta = json!({ "resourceVersion": object.kv.mod_revision.to_string() });
                let t = table::table(r.kind, &decoded, include, version, meta);
                Ok(json_response(
                    StatusCode::OK,
                    serde_json::to_vec(&t).unwrap_or_default(),
                ))
            }
            Render::Json => {
                let mut out = Vec::with_capacity(object.kv.value.len() + 32);
                object.write_json(&mut out);
                Ok(json_response(StatusCode::OK, out))
            }
            Render::PartialMetadata(api_version) => {
                let decoded = objects::decode(&object.kv)?;
                let partial = partial_metadata(api_version, &decoded);
                Ok(json_response(
                    StatusCode::OK,
                    serde_json::to_vec(&partial).unwrap_or_default(),
                ))
            }
            Render::Protobuf => {
                let mut out = Vec::new();
                encode::envelope(&r.api_version(), r.kind, protobuf_of(&object)?, &mut out);
                Ok(protobuf_response(StatusCode::OK, out))
            }
        }
    }

    /// The object a target names from the watch cache at `resourceVersion` `rv` (see
    /// [`ApiServer::cache_at`]); from the store when the cache does not get there in time.
    async fn get_cached(&self, target: &Target, rv: &str) -> Result<Arc<CachedObject>, ApiError> {
        let name = target.name()?;
        let key = objects::key(target.resource, target.namespace.as_deref(), name);
        if self.cache_at(Some(rv)).await?.is_ok()
            && let Ok(cached) = self.watch_cache.get(target.resource.plural, &key)
        {
            return cached.ok_or_else(|| ApiError::NotFound {
                kind: target.resource.qualified(),
                name: name.to_string(),
            });
        }
        Ok(CachedObject::new(self.current(target).await?))
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
        let render = Render::new(headers, query, r)?;
        // A page holds at most MAX_LIST_LIMIT items whatever the limit (the rest follows
        // with `continue`, which the API allows: a server may return fewer than asked).
        let limit = query
            .int("limit")?
            .filter(|l| *l > 0)
            .map(|l| usize::try_from(l).unwrap_or(usize::MAX).min(MAX_LIST_LIMIT));
        let start = match query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let prefix = objects::prefix(r, target.namespace.as_deref());
        let (items, revision) = match &start {
            // Later pages continue where the last page ended, at the first page's revision.
            Some(token) => (self.list_cached_at(r, &prefix, token).await?, token.rv),
            None => self.list_cached(r, &prefix, query).await?,
        };
        let mut page: Vec<&Arc<CachedObject>> = Vec::new();
        let mut remaining = 0usize;
        for object in &items {
            let before_start = start
                .as_ref()
                .is_some_and(|s| object.kv.key.as_str() <= s.start.as_str());
            if before_start || !filter.matches_cached(object) {
                continue;
            }
            if limit.is_some_and(|l| page.len() >= l) {
                remaining += 1;
            } else {
                page.push(object);
            }
        }
        let mut metadata = json!({ "resourceVersion": revision.to_string() });
        if remaining > 0
            && let Some(last) = page.last()
        {
            let token = serde_json::to_vec(&Continue {
                rv: revision,
                start: last.kv.key.clone(),
            })
            .unwrap_or_default();
            metadata["continue"] =
                json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token));
            metadata["remainingItemCount"] = json!(remaining);
        }
        match render {
            Render::Table(version, include) => {
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
            Render::Protobuf => {
                let items = page
                    .iter()
                    .map(|o| protobuf_of(o).map(|b| &b[..]))
                    .collect::<Result<Vec<&[u8]>, _>>()?;
                let out = encode::list(&r.api_version(), r.kind, &metadata, items.into_iter())
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                return Ok(protobuf_response(StatusCode::OK, out));
            }
            Render::PartialMetadata(api_version) => {
                let items: Vec<Value> = decode_all(page.into_iter())?
                    .iter()
                    .map(|object| partial_metadata(api_version, object))
                    .collect();
                let list = json!({
                    "apiVersion": api_version,
                    "kind": "PartialObjectMetadataList",
                    "metadata": metadata,
                    "items": items,
                });
                return Ok(json_response(
                    StatusCode::OK,
                    serde_json::to_vec(&list).unwrap_or_default(),
                ));
            }
            Render::Json => {}
        }
        // The list is written around the cached JSON, without parsing the objects.
        let head = format!(
            "{{\"apiVersion\":\"{}\",\"kind\":\"{}List\",\"metadata\":{},\"items\":[",
            r.api_version(),
            r.kind,
            metadata
        );
        let mut out = Vec::with_capacity(
            head.len() + page.iter().map(|o| o.kv.value.len() + 32).sum::<usize>() + 2,
        );
        out.extend_from_slice(head.as_bytes());
        for (i, object) in page.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            object.write_json(&mut out);
        }
        out.extend_from_slice(b"]}");
        Ok(json_response(StatusCode::OK, out))
    }

    /// The objects of a first page from the watch cache, at the revision the request asks
    /// for: `resourceVersion=0` any state the cache has, unset the store's current revision
    /// (a consistent read, KEP-2340), `N` at least N. When the cache does not get there in
    /// time the store answers.
    async fn list_cached(
        &self,
        r: &Resource,
        prefix: &str,
        query: &Query,
    ) -> Result<(Vec<Arc<CachedObject>>, Revision), ApiError> {
        let rv = query.get("resourceVersion").filter(|v| !v.is_empty());
        if self.cache_at(rv).await?.is_ok()
            && let Ok(listed) = self.watch_cache.list(r.plural, prefix)
        {
            return Ok(listed);
        }
        self.list_store(prefix).await
    }

    /// A later page's objects: under `prefix`, after the token's key, as they were at the
    /// token's revision (a consistent snapshot, as Kubernetes promises); 410 once the watch
    /// cache no longer reaches back to it, with Kubernetes' message.
    async fn list_cached_at(
        &self,
        r: &Resource,
        prefix: &str,
        token: &Continue,
    ) -> Result<Vec<Arc<CachedObject>>, ApiError> {
        self.cache_at(Some(&token.rv.to_string())).await??;
        match self
            .watch_cache
            .list_at(r.plural, prefix, &token.start, token.rv)
        {
            Ok(items) => Ok(items),
            Err(CacheError::Expired { .. }) => Err(ApiError::Gone(String::from(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ))),
            // A resource the cache does not keep: the store's current state.
            Err(CacheError::Unknown(_)) => Ok(self.list_store(prefix).await?.0),
            Err(err) => Err(cache_error(err)),
        }
    }

    /// Every object under `prefix`, read from the store at its current revision.
    async fn list_store(
        &self,
        prefix: &str,
    ) -> Result<(Vec<Arc<CachedObject>>, Revision), ApiError> {
        let listed = self.store.list(prefix).await?;
        let items = listed.items.into_iter().map(CachedObject::new).collect();
        Ok((items, listed.revision))
    }

    /// Waits until the watch cache can answer a read at `resourceVersion` `rv`: `0` at once
    /// (any state), `N` once it has seen N, unset once it has seen the store's current
    /// revision (a consistent read). The inner error is the 504 Kubernetes gives when the
    /// cache does not get there in time.
    async fn cache_at(&self, rv: Option<&str>) -> Result<Result<(), ApiError>, ApiError> {
        let wanted = match rv {
            Some("0") => return Ok(Ok(())),
            Some(v) => parse_revision(v)?,
            None => self.store.revision().await?,
        };
        Ok(self
            .watch_cache
            .wait_until(wanted, FRESHNESS_WAIT)
            .await
            .map_err(|_| {
                ApiError::Timeout(format!(
                    "Too large resource version: {wanted}, current: {}",
                    self.watch_cache.revision()
                ))
            }))
    }

    /// GET with `watch=1`: a stream of `{"type":..., "object":...}` lines, served from the
    /// watch cache.
    pub(super) async fn watch(
        self: &Arc<Self>,
        target: &Target,
        query: &Query,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let r = target.resource;
        let filter = Filter::new(target, query)?;
        let render = Render::new(headers, query, r)?;
        let user = super::authentication::requester()
            .map_or_else(|| String::from("system:anonymous"), |u| u.username);
        let seat = self.inflight.watch(&user)?;
        let mut framer = Framer {
            render,
            api_version: r.api_version(),
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
        let cache = self.watch_cache.clone();
        // Subscribed before anything is read, so no change between the read and the wait
        // is missed.
        let mut changed = cache.subscribe(r.plural).map_err(cache_error)?;
        let rv = query.get("resourceVersion").filter(|v| !v.is_empty());
        self.cache_at(rv).await??;
        let (initial, from) = match rv {
            // From a resourceVersion: only the changes after it.
            Some(v) if v != "0" && !send_initial => (Vec::new(), parse_revision(v)?),
            // Unset or 0: the current objects first (unset: as a consistent list would).
            _ => cache.list(r.plural, &prefix).map_err(cache_error)?,
        };
        let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
        let sink = WatchSink { tx, _seat: seat };
        tokio::spawn(async move {
            let mut out = Vec::new();
            for object in &initial {
                if filter.matches_cached(object) {
                    framer.frame_into(&mut out, "ADDED", object, object.kv.mod_revision);
                    if out.len() >= MAX_CHUNK
                        && !sink.send(Bytes::from(std::mem::take(&mut out))).await
                    {
                        return;
                    }
                }
            }
            if !out.is_empty() && !sink.send(Bytes::from(out)).await {
                return;
            }
            // Every event of this resource up to `cursor` has been written (or skipped).
            let mut cursor = from;
            if send_initial && bookmarks && !sink.send(framer.bookmark(cursor, true)).await {
                return;
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + BOOKMARK_EVERY,
                BOOKMARK_EVERY,
            );
            loop {
                changed.borrow_and_update();
                let (events, seen_up_to) = match cache.events_after(r.plural, cursor, MAX_BATCH) {
                    Ok(read) => read,
                    Err(err) => {
                        sink.send(framer.error(&cache_error(err))).await;
                        return;
                    }
                };
                if let Some(last) = events.last() {
                    cursor = last.revision();
                    let mut out = Vec::new();
                    for event in &events {
                        if let Some((kind, object)) = classify(&filter, &prefix, event) {
                            framer.frame_into(&mut out, kind, object, event.revision());
                        }
                    }
                    if !out.is_empty() && !sink.send(Bytes::from(out)).await {
                        return;
                    }
                    continue;
                }
                let out = tokio::select! {
                    woken = changed.changed() => match woken {
                        Ok(()) => continue,
                        Err(_) => return,
                    },
                    // Nothing of this resource was unread at `seen_up_to`; a later change is
                    // read (and sent) before any bookmark that could pass it.
                    _ = ticker.tick(), if bookmarks => framer.bookmark(seen_up_to.max(cursor), false),
                    () = &mut deadline => return,
                    () = sink.tx.closed() => return,
                };
                if !sink.send(out).await {
                    return;
                }
            }
        });
        let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut resp = (StatusCode::OK, body).into_response();
        let content_type = match render {
            Render::Protobuf => protobuf::WATCH_MEDIA_TYPE,
            Render::Json | Render::Table(..) | Render::PartialMetadata(_) => "application/json",
        };
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        Ok(resp)
    }
}

/// A resourceVersion from a query.
fn parse_revision(v: &str) -> Result<Revision, ApiError> {
    v.parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {v:?}")))
}

/// The API error of a cache that cannot serve a watch.
fn cache_error(err: CacheError) -> ApiError {
    match err {
        CacheError::Expired { .. } => ApiError::Gone(err.to_string()),
        CacheError::NotFresh(_) => ApiError::Timeout(err.to_string()),
        CacheError::Unknown(_) => ApiError::Internal(err.to_string()),
    }
}

/// The event type a watcher sees for a cached event and the version of the object it is
/// sent, or None to skip it. As Kubernetes' cacher: with a selector, an object that starts
/// matching is ADDED and one that stops matching is DELETED (with its previous content),
/// decided from the event's previous and new versions.
fn classify<'a>(
    filter: &Filter,
    prefix: &str,
    event: &'a CachedEvent,
) -> Option<(&'static str, &'a CachedObject)> {
    if !event.object.kv.key.starts_with(prefix) {
        return None;
    }
    let prev = event.prev.as_deref();
    if filter.is_everything() {
        return Some(match (event.kind, prev) {
            (EventKind::Delete, _) => ("DELETED", &event.object),
            (EventKind::Put, None) => ("ADDED", &event.object),
            (EventKind::Put, Some(_)) => ("MODIFIED", &event.object),
        });
    }
    let was = prev.filter(|p| filter.matches_cached(p));
    match event.kind {
        EventKind::Delete => {
            let last = was.or_else(|| Some(&*event.object).filter(|o| filter.matches_cached(o)));
            last.map(|o| ("DELETED", o))
        }
        EventKind::Put => match (filter.matches_cached(&event.object), was) {
            (true, Some(_)) => Some(("MODIFIED", &event.object)),
            (true, None) => Some(("ADDED", &event.object)),
            (false, Some(prev)) => Some(("DELETED", prev)),
            (false, None) => None,
        },
    }
}

/// Writes watch events: JSON lines of stored objects or of one-row Tables, or protobuf frames.
struct Framer {
    render: Render,
    api_version: String,
    kind: &'static str,
    columns_sent: bool,
}

impl Framer {
    /// Appends one event; `revision` is the event's (the object's own, except for an object
    /// that stopped matching, sent with its previous content). An object without a protobuf
    /// form becomes an ERROR event for a protobuf watcher.
    fn frame_into(
        &mut self,
        out: &mut Vec<u8>,
        event: &str,
        object: &CachedObject,
        revision: Revision,
    ) {
        if let Render::Protobuf = self.render {
            // The object's own message is shared by every watcher; one sent with an older
            // revision (it left a selector) is encoded for this event alone.
            let encoded = if revision == object.kv.mod_revision {
                object
                    .protobuf()
                    .map(|raw| Cow::Borrowed(raw.as_ref()))
                    .map_err(str::to_owned)
            } else {
                let mut value = object.decode().unwrap_or(Value::Null);
                objects::set_resource_version(&mut value, revision);
                encode::message(&value)
                    .map(Cow::Owned)
                    .map_err(|e| e.to_string())
            };
            match encoded {
                Ok(raw) => encode::watch_event(event, &self.api_version, self.kind, &raw, out),
                Err(e) => out.extend_from_slice(&self.error(&ApiError::Internal(e))),
            }
            return;
        }
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(event.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        match self.render {
            Render::Json | Render::Protobuf => {
                objects::splice_resource_version_into(out, &object.kv.value, revision);
            }
            Render::Table(version, include) => {
                let mut object = object.decode().unwrap_or(Value::Null);
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
            Render::PartialMetadata(api_version) => {
                let mut object = object.decode().unwrap_or(Value::Null);
                objects::set_resource_version(&mut object, revision);
                let partial = partial_metadata(api_version, &object);
                out.extend_from_slice(&serde_json::to_vec(&partial).unwrap_or_default());
            }
        }
        out.extend_from_slice(b"}\n");
    }

    /// A BOOKMARK event at `revision`.
    fn bookmark(&self, revision: Revision, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({ "resourceVersion": revision.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let object = match self.render {
            Render::PartialMetadata(api_version) => {
                json!({ "apiVersion": api_version, "kind": "PartialObjectMetadata", "metadata": metadata })
            }
            _ => json!({ "apiVersion": self.api_version, "kind": self.kind, "metadata": metadata }),
        };
        self.event("BOOKMARK", &object)
    }

    /// An ERROR event carrying the error's Status.
    fn error(&self, err: &ApiError) -> Bytes {
        self.event("ERROR", &err.to_status())
    }

    /// An event of an object made here (a bookmark, a Status).
    fn event(&self, event: &str, object: &Value) -> Bytes {
        let mut out = Vec::new();
        if let Render::Protobuf = self.render {
            let api_version = object["apiVersion"].as_str().unwrap_or_default();
            let kind = object["kind"].as_str().unwrap_or_default();
            // Bookmarks and Statuses fit their messages: made here, never from a client.
            if let Ok(raw) = encode::message(object) {
                encode::watch_event(event, api_version, kind, &raw, &mut out);
            }
        } else {
            out =
                serde_json::to_vec(&json!({ "type": event, "object": object })).unwrap_or_default();
            out.push(b'\n');
        }
        Bytes::from(out)
    }
}

fn decode_continue(token: &str) -> Result<Continue, ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid continue token {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(name: &str, app: &str, created: Revision, revision: Revision) -> Arc<CachedObject> {
        let value =
            json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": app}}});
        CachedObject::new(KeyValue {
            key: format!("/registry/pods/default/{name}"),
            value: Bytes::from(value.to_string()),
            create_revision: created,
            mod_revision: revision,
        })
    }

    fn event(
        kind: EventKind,
        object: Arc<CachedObject>,
        prev: Option<Arc<CachedObject>>,
    ) -> CachedEvent {
        CachedEvent { kind, object, prev }
    }

    fn pods() -> &'static Resource {
        super::super::resources::find("", "v1", "pods").expect("pods")
    }

    fn web_only() -> Filter {
        Filter {
            resource: pods(),
            labels: LabelSelector::parse("app=web").expect("selector"),
            fields: FieldSelector::everything(),
            name: None,
        }
    }

    fn seen(filter: &Filter, prefix: &str, e: &CachedEvent) -> Option<(&'static str, Revision)> {
        classify(filter, prefix, e).map(|(kind, object)| (kind, object.kv.mod_revision))
    }

    #[test]
    fn selector_watchers_see_objects_enter_and_leave() {
        let filter = web_only();
        let all = "/registry/pods/";
        let web1 = version("a", "web", 1, 1);
        let web2 = version("a", "web", 1, 2);
        let db3 = version("a", "db", 1, 3);
        let web4 = version("a", "web", 1, 4);
        let created = event(EventKind::Put, web1.clone(), None);
        assert_eq!(seen(&filter, all, &created), Some(("ADDED", 1)));
        let modified = event(EventKind::Put, web2.clone(), Some(web1));
        assert_eq!(seen(&filter, all, &modified), Some(("MODIFIED", 2)));
        // Relabelled away: DELETED, with the content the watcher last saw.
        let left = event(EventKind::Put, db3.clone(), Some(web2));
        assert_eq!(seen(&filter, all, &left), Some(("DELETED", 2)));
        // A change of an object it never saw: nothing.
        let db5 = version("a", "db", 1, 5);
        assert_eq!(
            seen(&filter, all, &event(EventKind::Put, db5, Some(db3.clone()))),
            None
        );
        // Relabelled back: ADDED.
        let back = event(EventKind::Put, web4.clone(), Some(db3));
        assert_eq!(seen(&filter, all, &back), Some(("ADDED", 4)));
        let deleted = event(EventKind::Delete, version("a", "web", 1, 6), Some(web4));
        assert_eq!(seen(&filter, all, &deleted), Some(("DELETED", 4)));
        // Another namespace's watch sees none of it.
        assert_eq!(seen(&filter, "/registry/pods/other/", &created), None);
    }

    #[test]
    fn watchers_of_everything_see_every_change() {
        let everything = Filter {
            resource: pods(),
            labels: LabelSelector::everything(),
            fields: FieldSelector::everything(),
            name: None,
        };
        let all = "/registry/pods/";
        let v1 = version("a", "db", 1, 1);
        let v2 = version("a", "web", 1, 2);
        assert_eq!(
            seen(&everything, all, &event(EventKind::Put, v1.clone(), None)),
            Some(("ADDED", 1))
        );
        assert_eq!(
            seen(
                &everything,
                all,
                &event(EventKind::Put, v2.clone(), Some(v1))
            ),
            Some(("MODIFIED", 2))
        );
        let gone = version("a", "web", 1, 3);
        assert_eq!(
            seen(&everything, all, &event(EventKind::Delete, gone, Some(v2))),
            Some(("DELETED", 3))
        );
    }

    #[test]
    fn a_watcher_that_stops_matching_gets_the_old_content_at_the_new_revision() {
        let mut framer = Framer {
            render: Render::Json,
            api_version: "v1".into(),
            kind: "Pod",
            columns_sent: false,
        };
        let old = version("a", "web", 1, 2);
        let mut out = Vec::new();
        framer.frame_into(&mut out, "DELETED", &old, 3);
        let line: Value = serde_json::from_slice(&out).expect("one JSON line");
        assert_eq!(line["type"], "DELETED");
        assert_eq!(line["object"]["metadata"]["labels"]["app"], "web");
        assert_eq!(line["object"]["metadata"]["resourceVersion"], "3");
        assert_eq!(out.last(), Some(&b'\n'));
    }
}

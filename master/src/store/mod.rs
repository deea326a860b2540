//! The store: every object of the cluster, modelled on etcd.
//!
//! Keys live under a prefix (`/registry/pods/default/web-1`), one global revision increases
//! on every write, writes compare on the key's mod revision, reads range by prefix, and a
//! watch replays every change after a revision. Two backends implement [`Store`] and pass one
//! conformance suite (`tests/store.rs`): [`embedded::EmbeddedStore`] (redb, group commit; the
//! zero-setup default) and [`etcd::EtcdStore`] (a real etcd through etcd-client).

pub mod embedded;
pub mod encryption;
pub mod etcd;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

/// A store revision: etcd's global, strictly increasing write counter. It is what the
/// API calls `resourceVersion`.
pub type Revision = i64;

/// One key and its value at a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// Full key, e.g. `/registry/pods/default/web-1`.
    pub key: String,
    /// The stored bytes (JSON for API objects).
    pub value: Bytes,
    /// Revision of the write that created the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key. For a deletion event: the deleting revision.
    pub mod_revision: Revision,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created (`kv.create_revision == kv.mod_revision`) or updated.
    Put,
    /// The key was deleted; the event's `kv` holds the last value and the deleting revision.
    Delete,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// Put or delete.
    pub kind: EventKind,
    /// The new value (put), or the last value with `mod_revision` = deleting revision (delete).
    pub kv: KeyValue,
}

/// The result of a range read: the items and the store revision they were read at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListResult {
    /// Keys under the prefix, sorted by key.
    pub items: Vec<KeyValue>,
    /// The revision of the whole store when the range was read.
    pub revision: Revision,
}

/// A stream of changes in revision order. It ends with an error (never silently) when the
/// watch cannot continue, e.g. [`StoreError::Compacted`] when the watcher fell too far behind.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

/// Errors of the store boundary.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The key does not exist.
    #[error("key {0} not found")]
    NotFound(String),
    /// A create found the key present.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The key's mod revision was not the expected one.
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        /// The key compared.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key's actual mod revision.
        actual: Revision,
    },
    /// The requested revision is older than the oldest one the store still keeps.
    #[error("revision {requested} has been compacted (oldest kept: {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compaction point: revisions at or below it are gone.
        compacted: Revision,
    },
    /// The requested revision is newer than the store's current revision.
    #[error("revision {requested} is in the future (current: {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// The backend failed (I/O, network, etcd error).
    #[error("store backend: {0}")]
    Backend(String),
    /// The backend did not answer in time (etcd unreachable or overloaded).
    #[error("store backend: {0}")]
    Timeout(String),
}

/// An etcd-shaped key-value store. Both backends behave the same; `tests/store.rs` pins it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The key's current value, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Every key under `prefix`, sorted by key, with the revision they were read at.
    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError>;

    /// Create `key`; fails with [`StoreError::AlreadyExists`] if present. Returns the new kv.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError>;

    /// Replace the value of an existing key. With `expected`, fails with
    /// [`StoreError::Conflict`] unless the key's mod revision equals it.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError>;

    /// Delete an existing key (compared on `expected` as in [`Store::update`]). Returns the
    /// deleted value with `mod_revision` set to the deleting revision.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError>;

    /// Every change under `prefix` with a revision greater than `after`, in order, then live
    /// changes. `after` below the compaction point fails with [`StoreError::Compacted`].
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;

    /// Forget history at or below `revision`; later watches from there get `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// The store's current revision.
    async fn revision(&self) -> Result<Revision, StoreError>;

    /// Whether the store can take writes now (what `/readyz` tells): by default, whether it
    /// answers for its revision.
    async fn ready(&self) -> Result<(), StoreError> {
        self.revision().await.map(|_| ())
    }
}

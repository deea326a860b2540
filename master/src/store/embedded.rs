//! The embedded backend: a redb file, one writer thread with group commit, state in memory.
//!
//! Every write goes through one dedicated thread. It drains everything queued (up to
//! [`EmbeddedOptions::max_batch`] requests), checks each request's condition in order against
//! the current state and the earlier requests of the same batch, gives the successful ones
//! consecutive revisions, writes them all in ONE redb transaction and commits it (one fsync for
//! the whole batch), then applies them to the in-memory state, publishes the watch events and
//! answers every caller. A write is acknowledged only after its commit, so it survives kill -9.
//!
//! Reads never touch the disk: the latest value of every key is kept in a `BTreeMap`, loaded at
//! open. Watches replay from an in-memory window of recent events
//! ([`EmbeddedOptions::history_events`]) and then follow a broadcast of committed batches; a
//! restart starts the window afresh at the current revision, so older watches get
//! [`StoreError::Compacted`] (clients relist, as after an etcd compaction).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::thread::JoinHandle;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::{broadcast, oneshot};

use super::{
    EventKind, KeyValue, ListResult, Revision, Store, StoreError, WatchEvent, WatchStream,
};

/// Key -> `create_revision (i64 LE) | mod_revision (i64 LE) | value`.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// Store-wide counters: [`META_REVISION`] and [`META_COMPACTED`].
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
/// The current revision: deletions leave no key behind, so it is stored on its own.
const META_REVISION: &str = "revision";
/// The compaction point.
const META_COMPACTED: &str = "compacted";
/// Bytes in front of the value in a [`KV`] record.
const RECORD_HEADER: usize = 16;

/// redb's page cache.
const REDB_CACHE_BYTES: usize = 64 << 20;

/// The database file inside the store's directory.
pub const DATABASE_FILE: &str = "skiff.redb";

/// Tuning of an [`EmbeddedStore`]. The defaults are what the master uses; tests shrink them.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Most requests committed by one transaction (default 4,096).
    pub max_batch: usize,
    /// Most events kept in memory for watches that start in the past (default 200,000).
    pub history_events: usize,
    /// Most bytes of keys and values those events may hold (default 256 MiB): superseded
    /// values stay alive in the history, so this bounds the memory it costs.
    pub history_bytes: usize,
    /// Committed batches a watcher may fall behind the live broadcast before it has to catch
    /// up from the history window instead (default 1,024).
    pub live_batches: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            max_batch: 4096,
            history_events: 200_000,
            history_bytes: 256 << 20,
            live_batches: 1024,
        }
    }
}

/// How often a store whose commit failed tries again by itself.
const RECOVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The revision of an empty store, as in etcd: the first write gets revision 2.
const EMPTY_REVISION: Revision = 1;

/// A durable [`Store`] in one redb file, with group commit. Dropping it stops the writer
/// thread (after the batch in flight) and closes the file.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    requests: Option<crossbeam_channel::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

/// What readers, the writer thread and watchers share.
struct Shared {
    state: RwLock<State>,
    /// Every committed batch, in revision order. Sent under the state's write lock, so a
    /// watcher that subscribes under the read lock sees each event exactly once: either in the
    /// history it replays or on the channel.
    live: broadcast::Sender<Batch>,
    /// Why the last commit failed, until one succeeds again (what `ready` reports).
    failure: Mutex<Option<StoreError>>,
}

/// The events of one commit.
type Batch = Arc<Vec<Arc<WatchEvent>>>;

/// The in-memory picture of the store.
struct State {
    kvs: BTreeMap<String, KeyValue>,
    revision: Revision,
    /// The compaction point asked for with [`Store::compact`] (persisted).
    compacted: Revision,
    history: History,
}

/// The recent events, for watches that start in the past.
struct History {
    /// The events after `start` up to the store's revision, one per revision, in order (an
    /// empty store's revision 1 has none).
    events: VecDeque<Arc<WatchEvent>>,
    /// Bytes of keys and values in `events`.
    bytes: usize,
    /// Events at or below this revision are no longer available.
    start: Revision,
    max_events: usize,
    max_bytes: usize,
}

impl History {
    fn push(&mut self, event: Arc<WatchEvent>) {
        self.bytes += event_bytes(&event);
        self.events.push_back(event);
    }

    /// Forgets the events at or below `compacted` and the oldest beyond the window's size.
    fn trim(&mut self, compacted: Revision) {
        self.start = self.start.max(compacted);
        while let Some(front) = self.events.front() {
            let revision = front.kv.mod_revision;
            let over = self.events.len() > self.max_events || self.bytes > self.max_bytes;
            if revision > self.start && !over {
                break;
            }
            self.bytes -= event_bytes(front);
            self.start = self.start.max(revision);
            self.events.pop_front();
        }
    }

    /// The events after `after` under `prefix`, or the revision below which history is gone.
    fn after(&self, after: Revision, prefix: &str) -> Result<VecDeque<Arc<WatchEvent>>, Revision> {
        if after < self.start {
            return Err(self.start);
        }
        // One event per revision, in order: skip straight to the first one after `after`.
        let skip = match self.events.front() {
            Some(first) => usize::try_from(after + 1 - first.kv.mod_revision).unwrap_or(0),
            None => 0,
        };
        Ok(self
            .events
            .iter()
            .skip(skip)
            .filter(|event| event.kv.key.starts_with(prefix))
            .cloned()
            .collect())
    }
}

fn event_bytes(event: &WatchEvent) -> usize {
    event.kv.key.len() + event.kv.value.len()
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Only the writer thread mutates the state and it never panics while holding the
        // lock on data from outside; a poisoned lock still holds a consistent state.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request to the writer thread.
enum Request {
    Write {
        op: WriteOp,
        reply: oneshot::Sender<Result<KeyValue, StoreError>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// A conditional write.
enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Option<Revision>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`: creates the directory, opens the redb file in it,
    /// loads every key into memory and starts the writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// [`EmbeddedStore::open`] with other [`EmbeddedOptions`].
    pub fn open_with(dir: &Path, options: EmbeddedOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| backend(format!("create {}", dir.display()), e))?;
        let path = dir.join(DATABASE_FILE);
        // Reads are served from memory; redb's cache only has to hold the pages writes walk.
        let db = redb::Builder::new()
            .set_cache_size(REDB_CACHE_BYTES)
            .create(&path)
            .map_err(|e| backend(format!("open {}", path.display()), e))?;
        // Secrets live in here: the directory and the database are root's alone (a directory
        // or file from before this rule is tightened too).
        restrict(dir, 0o700)?;
        restrict(&path, 0o600)?;
        let state = load(&db, &options)?;
        let (live, _) = broadcast::channel(options.live_batches.max(1));
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            live,
            failure: Mutex::new(None),
        });
        let (requests, queue) = crossbeam_channel::unbounded();
        let writer = Writer {
            db: Some(db),
            path,
            shared: Arc::clone(&shared),
            record: Vec::new(),
            max_batch: options.max_batch.max(1),
        };
        let writer = std::thread::Builder::new()
            .name("skiff-store-writer".to_owned())
            .spawn(move || writer.run(queue))
            .map_err(|e| backend("start the store writer thread", e))?;
        Ok(EmbeddedStore {
            shared,
            requests: Some(requests),
            writer: Some(writer),
        })
    }

    async fn write(&self, op: WriteOp) -> Result<KeyValue, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Write { op, reply })?;
        answer.await.map_err(|_| writer_gone())?
    }

    fn send(&self, request: Request) -> Result<(), StoreError> {
        self.requests
            .as_ref()
            .ok_or_else(writer_gone)?
            .send(request)
            .map_err(|_| writer_gone())
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer loop; joining makes sure the file is closed when
        // the drop returns, so the directory can be opened again at once.
        drop(self.requests.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.shared.read().kvs.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError> {
        let state = self.shared.read();
        let items = state
            .kvs
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        Ok(ListResult {
            items,
            revision: state.revision,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError> {
        self.write(WriteOp::Create {
            key: key.to_owned(),
            value,
        })
        .await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        self.write(WriteOp::Update {
            key: key.to_owned(),
            value,
            expected,
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        self.write(WriteOp::Delete {
            key: key.to_owned(),
            expected,
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let after = after.max(0);
        let (pending, live) = replay(&self.shared, prefix, after)?;
        let watch = Watch {
            shared: Arc::downgrade(&self.shared),
            live,
            prefix: prefix.to_owned(),
            last: after,
            pending,
            done: false,
        };
        Ok(futures::stream::unfold(watch, Watch::next).boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Compact { revision, reply })?;
        answer.await.map_err(|_| writer_gone())?
    }

    async fn ready(&self) -> Result<(), StoreError> {
        match &*self
            .shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.read().revision)
    }
}

/// Subscribes to the live batches and collects the history after `after` under `prefix`, both
/// under one read lock so that nothing is missed or seen twice between them.
fn replay(
    shared: &Shared,
    prefix: &str,
    after: Revision,
) -> Result<(VecDeque<Arc<WatchEvent>>, broadcast::Receiver<Batch>), StoreError> {
    let state = shared.read();
    let pending =
        state
            .history
            .after(after, prefix)
            .map_err(|compacted| StoreError::Compacted {
                requested: after,
                compacted,
            })?;
    Ok((pending, shared.live.subscribe()))
}

/// One watcher: its replayed events, then the live batches filtered by prefix.
struct Watch {
    /// Weak, so that watchers do not keep a dropped store's state alive.
    shared: Weak<Shared>,
    live: broadcast::Receiver<Batch>,
    prefix: String,
    /// The revision up to which events were taken (delivered or queued in `pending`).
    last: Revision,
    pending: VecDeque<Arc<WatchEvent>>,
    done: bool,
}

impl Watch {
    async fn next(mut self) -> Option<(Result<WatchEvent, StoreError>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(WatchEvent::clone(&event)), self));
            }
            if self.done {
                return None;
            }
            match self.live.recv().await {
                Ok(batch) => self.take(&batch),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too far behind the live channel: catch up from the history window if it
                    // still holds everything after `last`, else end with Compacted.
                    if let Err(e) = self.catch_up() {
                        return self.fail(e);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return self.fail(StoreError::Backend("the store was closed".to_owned()));
                }
            }
        }
    }

    fn take(&mut self, batch: &[Arc<WatchEvent>]) {
        for event in batch {
            let revision = event.kv.mod_revision;
            if revision > self.last {
                self.last = revision;
                if event.kv.key.starts_with(&self.prefix) {
                    self.pending.push_back(Arc::clone(event));
                }
            }
        }
    }

    fn catch_up(&mut self) -> Result<(), StoreError> {
        let shared = self
            .shared
            .upgrade()
            .ok_or_else(|| StoreError::Backend("the store was closed".to_owned()))?;
        let (pending, live) = replay(&shared, &self.prefix, self.last)?;
        if let Some(event) = pending.back() {
            self.last = event.kv.mod_revision;
        }
        self.pending = pending;
        self.live = live;
        Ok(())
    }

    fn fail(mut self, error: StoreError) -> Option<(Result<WatchEvent, StoreError>, Self)> {
        self.done = true;
        Some((Err(error), self))
    }
}

/// The writer thread: owns the database, the only one to change the state.
///
/// A commit that fails (a full or failing disk) answers its writes with the error and changes
/// nothing in memory; redb then wants the file closed and opened again, so the writer drops
/// it and says why in `failure` (`/readyz` turns red). The next batch opens it again (redb
/// repairs it), and so does a probe commit every [`RECOVERY_INTERVAL`] while no writes come:
/// once a commit holds, the store is healthy again by itself.
struct Writer {
    /// None after a failed commit, until it is opened again.
    db: Option<Database>,
    path: std::path::PathBuf,
    shared: Arc<Shared>,
    /// Reused buffer for encoding records.
    record: Vec<u8>,
    max_batch: usize,
}

/// A write whose condition held, waiting for the commit.
struct Accepted {
    event: Arc<WatchEvent>,
    reply: oneshot::Sender<Result<KeyValue, StoreError>>,
}

/// The reply to an accepted compaction, waiting for the commit.
type AcceptedCompaction = oneshot::Sender<Result<(), StoreError>>;

impl Writer {
    fn run(mut self, queue: crossbeam_channel::Receiver<Request>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        loop {
            let first = if self.failing() {
                match queue.recv_timeout(RECOVERY_INTERVAL) {
                    Ok(request) => request,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        self.recover();
                        continue;
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match queue.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                }
            };
            batch.push(first);
            while batch.len() < self.max_batch {
                match queue.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
    }

    /// Checks, persists, applies and answers one batch of requests.
    fn commit_batch(&mut self, batch: &mut Vec<Request>) {
        let mut accepted = Vec::with_capacity(batch.len());
        let mut compactions = Vec::new();
        let (revision, compacted) = {
            let state = self.shared.read();
            // Keys written earlier in this batch: their value after those writes.
            let mut overlay: HashMap<String, Option<KeyValue>> = HashMap::new();
            let mut revision = state.revision;
            let mut compacted = state.compacted;
            for request in batch.drain(..) {
                match request {
                    Request::Write { op, reply } => {
                        let current = |key: &str| match overlay.get(key) {
                            Some(kv) => kv.clone(),
                            None => state.kvs.get(key).cloned(),
                        };
                        match check(op, current, revision + 1) {
                            Ok(event) => {
                                revision += 1;
                                let after = match event.kind {
                                    EventKind::Put => Some(event.kv.clone()),
                                    EventKind::Delete => None,
                                };
                                overlay.insert(event.kv.key.clone(), after);
                                accepted.push(Accepted {
                                    event: Arc::new(event),
                                    reply,
                                });
                            }
                            // A failed condition consumes no revision.
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                    Request::Compact {
                        revision: requested,
                        reply,
                    } => {
                        if requested > revision {
                            let _ = reply.send(Err(StoreError::FutureRevision {
                                requested,
                                current: revision,
                            }));
                        } else if requested <= compacted {
                            let _ = reply.send(Err(StoreError::Compacted {
                                requested,
                                compacted,
                            }));
                        } else {
                            compacted = requested;
                            compactions.push(reply);
                        }
                    }
                }
            }
            (revision, compacted)
        };
        if accepted.is_empty() && compactions.is_empty() {
            return;
        }

        // After a failure the batch is the probe: it opens the file again, and its commit
        // holding makes the store healthy.
        if let Err(e) = self.persist(&accepted, revision, &compactions, compacted) {
            tracing::error!(error = %e, "the store could not commit; writes fail until it can");
            // redb wants the file opened again after an I/O error.
            self.db = None;
            *self
                .shared
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(e.clone());
            for write in accepted {
                let _ = write.reply.send(Err(e.clone()));
            }
            for compaction in compactions {
                let _ = compaction.send(Err(e.clone()));
            }
            return;
        }
        self.healed();

        let events: Vec<Arc<WatchEvent>> = accepted.iter().map(|a| Arc::clone(&a.event)).collect();
        {
            let mut state = self.shared.write();
            for event in &events {
                match event.kind {
                    EventKind::Put => {
                        state.kvs.insert(event.kv.key.clone(), event.kv.clone());
                    }
                    EventKind::Delete => {
                        state.kvs.remove(&event.kv.key);
                    }
                }
                state.history.push(Arc::clone(event));
            }
            state.revision = revision;
            state.compacted = compacted;
            state.history.trim(compacted);
            if !events.is_empty() {
                // No receivers is fine: nobody watches.
                let _ = self.shared.live.send(Arc::new(events));
            }
        }
        for write in accepted {
            let _ = write.reply.send(Ok(write.event.kv.clone()));
        }
        for compaction in compactions {
            let _ = compaction.send(Ok(()));
        }
    }

    /// Whether the last commit failed.
    fn failing(&self) -> bool {
        self.shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// After a failed commit: opens the file again if it is closed and commits a probe (the
    /// current revision, rewritten); when that holds, the store is healthy again.
    fn recover(&mut self) {
        let revision = self.shared.read().revision;
        let probe = self.open().and_then(|db| {
            let txn = db.begin_write().map_err(|e| backend("begin write", e))?;
            {
                let mut meta = txn.open_table(META).map_err(|e| backend("open meta", e))?;
                meta.insert(META_REVISION, revision)
                    .map_err(|e| backend("insert revision", e))?;
            }
            txn.commit().map_err(|e| backend("commit", e))
        });
        match probe {
            Ok(()) => self.healed(),
            Err(e) => {
                self.db = None;
                *self
                    .shared
                    .failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(e);
            }
        }
    }

    /// A commit held: the store is healthy (again).
    fn healed(&self) {
        let mut failure = self
            .shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if failure.take().is_some() {
            tracing::info!("the store commits again");
        }
    }

    /// The database, opened again (redb repairs it) if a failure closed it.
    fn open(&mut self) -> Result<&Database, StoreError> {
        if self.db.is_none() {
            let db = redb::Builder::new()
                .set_cache_size(REDB_CACHE_BYTES)
                .create(&self.path)
                .map_err(|e| backend(format!("open {}", self.path.display()), e))?;
            self.db = Some(db);
        }
        self.db.as_ref().ok_or_else(writer_gone)
    }

    /// Writes the accepted events and the counters in one redb transaction and commits it
    /// (with fsync: redb's default durability).
    fn persist(
        &mut self,
        accepted: &[Accepted],
        revision: Revision,
        compactions: &[AcceptedCompaction],
        compacted: Revision,
    ) -> Result<(), StoreError> {
        self.open()?;
        let db = self.db.as_ref().ok_or_else(writer_gone)?;
        let txn = db.begin_write().map_err(|e| backend("begin write", e))?;
        {
            let mut kv = txn.open_table(KV).map_err(|e| backend("open kv", e))?;
            for write in accepted {
                let event = &write.event;
                match event.kind {
                    EventKind::Put => {
                        encode(&event.kv, &mut self.record);
                        kv.insert(event.kv.key.as_str(), self.record.as_slice())
                            .map_err(|e| backend("insert", e))?;
                    }
                    EventKind::Delete => {
                        kv.remove(event.kv.key.as_str())
                            .map_err(|e| backend("remove", e))?;
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(|e| backend("open meta", e))?;
            if !accepted.is_empty() {
                meta.insert(META_REVISION, revision)
                    .map_err(|e| backend("insert revision", e))?;
            }
            if !compactions.is_empty() {
                meta.insert(META_COMPACTED, compacted)
                    .map_err(|e| backend("insert compaction point", e))?;
            }
        }
        txn.commit().map_err(|e| backend("commit", e))
    }
}

/// Checks `op`'s condition against the key's current value and builds its event at `revision`.
fn check(
    op: WriteOp,
    current: impl Fn(&str) -> Option<KeyValue>,
    revision: Revision,
) -> Result<WatchEvent, StoreError> {
    match op {
        WriteOp::Create { key, value } => {
            if current(&key).is_some() {
                return Err(StoreError::AlreadyExists(key));
            }
            Ok(WatchEvent {
                kind: EventKind::Put,
                kv: KeyValue {
                    key,
                    value,
                    create_revision: revision,
                    mod_revision: revision,
                },
            })
        }
        WriteOp::Update {
            key,
            value,
            expected,
        } => {
            let existing = compare(current(&key), &key, expected)?;
            Ok(WatchEvent {
                kind: EventKind::Put,
                kv: KeyValue {
                    key,
                    value,
                    create_revision: existing.create_revision,
                    mod_revision: revision,
                },
            })
        }
        WriteOp::Delete { key, expected } => {
            let existing = compare(current(&key), &key, expected)?;
            Ok(WatchEvent {
                kind: EventKind::Delete,
                kv: KeyValue {
                    mod_revision: revision,
                    ..existing
                },
            })
        }
    }
}

/// The existing value if the key exists and its mod revision is `expected` (when given).
fn compare(
    existing: Option<KeyValue>,
    key: &str,
    expected: Option<Revision>,
) -> Result<KeyValue, StoreError> {
    let existing = existing.ok_or_else(|| StoreError::NotFound(key.to_owned()))?;
    match expected {
        Some(expected) if expected != existing.mod_revision => Err(StoreError::Conflict {
            key: key.to_owned(),
            expected,
            actual: existing.mod_revision,
        }),
        _ => Ok(existing),
    }
}

/// Loads the counters and every key, creating the tables of a new database.
fn load(db: &Database, options: &EmbeddedOptions) -> Result<State, StoreError> {
    let txn = db.begin_write().map_err(|e| backend("begin write", e))?;
    let state = {
        let meta = txn.open_table(META).map_err(|e| backend("open meta", e))?;
        let read = |name: &str| -> Result<Option<i64>, StoreError> {
            Ok(meta
                .get(name)
                .map_err(|e| backend("read meta", e))?
                .map(|value| value.value()))
        };
        let revision = read(META_REVISION)?.unwrap_or(EMPTY_REVISION);
        let compacted = read(META_COMPACTED)?.unwrap_or(0);
        if revision < EMPTY_REVISION || compacted < 0 || compacted > revision {
            return Err(StoreError::Backend(format!(
                "corrupt store: revision {revision}, compaction point {compacted}"
            )));
        }
        let table = txn.open_table(KV).map_err(|e| backend("open kv", e))?;
        let mut kvs = BTreeMap::new();
        for entry in table.iter().map_err(|e| backend("read kv", e))? {
            let (key, record) = entry.map_err(|e| backend("read kv", e))?;
            let kv = decode(key.value(), record.value(), revision)?;
            kvs.insert(kv.key.clone(), kv);
        }
        State {
            kvs,
            revision,
            compacted,
            history: History {
                events: VecDeque::new(),
                bytes: 0,
                // The history of the previous run is gone: only later events can be watched.
                // An empty store has no history to lose.
                start: if revision == EMPTY_REVISION {
                    0
                } else {
                    revision
                },
                max_events: options.history_events,
                max_bytes: options.history_bytes,
            },
        }
    };
    txn.commit().map_err(|e| backend("commit", e))?;
    Ok(state)
}

fn encode(kv: &KeyValue, record: &mut Vec<u8>) {
    record.clear();
    record.reserve(RECORD_HEADER + kv.value.len());
    record.extend_from_slice(&kv.create_revision.to_le_bytes());
    record.extend_from_slice(&kv.mod_revision.to_le_bytes());
    record.extend_from_slice(&kv.value);
}

fn decode(key: &str, record: &[u8], revision: Revision) -> Result<KeyValue, StoreError> {
    let corrupt = || StoreError::Backend(format!("corrupt store record for key {key}"));
    let (create, rest) = record.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let (modified, value) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let create_revision = i64::from_le_bytes(*create);
    let mod_revision = i64::from_le_bytes(*modified);
    if create_revision <= EMPTY_REVISION
        || mod_revision < create_revision
        || mod_revision > revision
    {
        return Err(corrupt());
    }
    Ok(KeyValue {
        key: key.to_owned(),
        value: Bytes::copy_from_slice(value),
        create_revision,
        mod_revision,
    })
}

fn backend(context: impl std::fmt::Display, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("embedded store: {context}: {error}"))
}

fn writer_gone() -> StoreError {
    StoreError::Backend("embedded store: the writer thread has stopped".to_owned())
}

/// Set `path`'s permission bits to `mode`.
fn restrict(path: &Path, mode: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| backend(format!("restrict {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, create_revision: Revision, mod_revision: Revision) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Bytes::copy_from_slice(value.as_bytes()),
            create_revision,
            mod_revision,
        }
    }

    #[test]
    fn records_round_trip() {
        let original = kv("/a", "value", 2, 5);
        let mut record = Vec::new();
        encode(&original, &mut record);
        assert_eq!(decode("/a", &record, 5), Ok(original));
    }

    #[test]
    fn corrupt_records_are_errors_not_panics() {
        let mut record = Vec::new();
        encode(&kv("/a", "v", 2, 5), &mut record);
        for cut in 0..RECORD_HEADER {
            assert!(matches!(
                decode("/a", &record[..cut], 5),
                Err(StoreError::Backend(_))
            ));
        }
        // A mod revision above the store's revision, or below the create revision.
        assert!(matches!(
            decode("/a", &record, 4),
            Err(StoreError::Backend(_))
        ));
        encode(&kv("/a", "v", 6, 5), &mut record);
        assert!(matches!(
            decode("/a", &record, 9),
            Err(StoreError::Backend(_))
        ));
    }

    fn history(max_events: usize, max_bytes: usize) -> History {
        History {
            events: VecDeque::new(),
            bytes: 0,
            start: 1,
            max_events,
            max_bytes,
        }
    }

    fn put(revision: Revision, key: &str, value: &str) -> Arc<WatchEvent> {
        Arc::new(WatchEvent {
            kind: EventKind::Put,
            kv: kv(key, value, revision, revision),
        })
    }

    fn revisions(events: &VecDeque<Arc<WatchEvent>>) -> Vec<Revision> {
        events.iter().map(|e| e.kv.mod_revision).collect()
    }

    #[test]
    fn history_replays_after_a_revision_by_prefix() {
        let mut h = history(100, 1 << 20);
        for (revision, key) in [(2, "/a/1"), (3, "/b/1"), (4, "/a/2"), (5, "/a/3")] {
            h.push(put(revision, key, "v"));
        }
        assert_eq!(revisions(&h.after(1, "/a/").unwrap()), [2, 4, 5]);
        assert_eq!(revisions(&h.after(3, "/a/").unwrap()), [4, 5]);
        assert_eq!(revisions(&h.after(5, "/").unwrap()), Vec::<Revision>::new());
        assert_eq!(revisions(&h.after(9, "/").unwrap()), Vec::<Revision>::new());
        assert_eq!(h.after(0, "/"), Err(1));
    }

    #[test]
    fn history_is_bounded_by_compaction_count_and_bytes() {
        let mut h = history(3, 1 << 20);
        for revision in 2..=6 {
            h.push(put(revision, "/k", "v"));
        }
        h.trim(0);
        assert_eq!(revisions(&h.events), [4, 5, 6]);
        assert_eq!(h.after(2, "/"), Err(3));
        h.trim(4);
        assert_eq!(revisions(&h.events), [5, 6]);
        assert_eq!(h.start, 4);

        // "/k" + 10 bytes = 12 bytes per event: two fit in 30, three do not.
        let mut h = history(100, 30);
        for revision in 2..=5 {
            h.push(put(revision, "/k", "0123456789"));
        }
        h.trim(0);
        assert_eq!(revisions(&h.events), [4, 5]);
        assert_eq!(h.bytes, 24);
        assert_eq!(h.start, 3);
    }
}

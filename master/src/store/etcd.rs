//! The etcd backend: every [`Store`] operation is one etcd request through etcd-client.
//!
//! Conditional writes are etcd transactions: `create` compares the key's create revision with 0,
//! `update`/`delete` compare its mod revision with the expected one (or its create revision
//! with 0 when there is none) and read the key in the else branch to tell
//! [`StoreError::NotFound`] from [`StoreError::Conflict`]. Watches ask for `prev_kv` so a delete
//! event carries the last value.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KvClient,
    PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient, WatchOptions,
};
use futures::StreamExt;

use super::{
    EventKind, KeyValue, ListResult, Revision, Store, StoreError, WatchEvent, WatchStream,
};

/// Largest response accepted from etcd: a list of every pod of a big cluster is far above
/// gRPC's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// How long one etcd request may take (a list: [`LIST_TIMEOUT`]); then the request fails
/// with [`StoreError::Timeout`] (504), so a client is answered promptly while etcd is away.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a list may take (a whole resource of a big cluster).
const LIST_TIMEOUT: Duration = Duration::from_secs(60);

/// Tries of one request whose connection could not be made (each goes to an endpoint the
/// balancer picks): with several members, a dead one is passed over.
const CONNECT_TRIES: usize = 10;
/// Between two such tries.
const CONNECT_PAUSE: Duration = Duration::from_millis(20);

/// `request` (made anew for each try), failing with [`StoreError::Timeout`] after `limit`.
async fn within<T, F, Fut>(limit: Duration, request: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    attempt(limit, request).await?.map_err(backend)
}

/// `request`'s own answer, tried again on another endpoint while the connection to the one
/// picked could not even be made (so the request never reached etcd, and trying again is
/// safe for a write too; kube-apiserver's etcd client also moves on from a dead member).
/// [`StoreError::Timeout`] after `limit`.
async fn attempt<T, F, Fut>(
    limit: Duration,
    mut request: F,
) -> Result<Result<T, etcd_client::Error>, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let tries = async {
        let mut tries = 1;
        loop {
            match request().await {
                Err(e) if tries < CONNECT_TRIES && never_sent(&e) => {
                    tries += 1;
                    tokio::time::sleep(CONNECT_PAUSE).await;
                }
                answer => return answer,
            }
        }
    };
    tokio::time::timeout(limit, tries)
        .await
        .map_err(|_| timed_out(limit))
}

/// Whether `error` says the connection to the endpoint could not be made (tonic's
/// "tcp connect error" and its kin), not that etcd got the request.
fn never_sent(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::Unavailable && status.message().contains("connect error")
        }
        _ => false,
    }
}

fn timed_out(limit: Duration) -> StoreError {
    StoreError::Timeout(format!("etcd did not answer within {limit:?}"))
}

/// etcd's message for a revision below its compaction point.
const COMPACTED: &str = "required revision has been compacted";
/// etcd's message for a revision above its current one.
const FUTURE_REVISION: &str = "required revision is a future revision";

/// A [`Store`] backed by a real etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    /// Held so the client's endpoint set (its balanced channel) lives as long as the store.
    _client: Client,
}

/// TLS to etcd (kube-apiserver's `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`): the
/// CA that signed etcd's serving certificate and the client certificate etcd asks for.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// PEM of the CA etcd's certificate must be signed by.
    pub ca_pem: Vec<u8>,
    /// PEM of the client certificate, if etcd asks for one.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints` (e.g. `http://127.0.0.1:2379`) and checks
    /// that it answers.
    pub async fn connect(endpoints: &[String]) -> Result<Self, StoreError> {
        Self::connect_with(endpoints, None).await
    }

    /// [`EtcdStore::connect`], over TLS when `tls` is given (`https://` endpoints).
    pub async fn connect_with(
        endpoints: &[String],
        tls: Option<&EtcdTls>,
    ) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10));
        if let Some(tls) = tls {
            let mut config = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.client {
                config = config.identity(etcd_client::Identity::from_pem(cert, key));
            }
            options = options.with_tls(config);
        }
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(backend)?;
        let store = EtcdStore {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            _client: client,
        };
        store.revision().await?;
        Ok(store)
    }

    /// etcd's compaction point, known to be above `after`: a watch from `after` is refused
    /// with it. Falls back to `after + 1` if etcd does not say.
    async fn compaction_point(&self, after: Revision) -> Revision {
        let options = WatchOptions::new().with_start_revision(after.max(1));
        let point = async {
            let (_watcher, mut stream) =
                self.watch.clone().watch("\0", Some(options)).await.ok()?;
            let response = stream.message().await.ok()??;
            Some(response.compact_revision()).filter(|&r| r > 0)
        };
        tokio::time::timeout(Duration::from_secs(2), point)
            .await
            .ok()
            .flatten()
            .unwrap_or(after + 1)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        within(REQUEST_TIMEOUT, || {
            let (mut kv, txn) = (self.kv.clone(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let response = within(REQUEST_TIMEOUT, || {
            let mut kv = self.kv.clone();
            async move { kv.get(key, None).await }
        })
        .await?;
        response.kvs().first().map(convert_kv).transpose()
    }

    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError> {
        // etcd sorts a range by key, ascending, unless told otherwise.
        let response = within(LIST_TIMEOUT, || {
            let mut kv = self.kv.clone();
            async move { kv.get(prefix, Some(GetOptions::new().with_prefix())).await }
        })
        .await?;
        let revision = header_revision(response.header())?;
        let items = response
            .kvs()
            .iter()
            .map(convert_kv)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ListResult { items, revision })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(StoreError::AlreadyExists(key.to_owned()));
        }
        let revision = header_revision(response.header())?;
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let put = TxnOp::put(key, value.to_vec(), Some(PutOptions::new().with_prev_key()));
        let response = self.txn(guarded(key, expected, put)).await?;
        if !response.succeeded() {
            return Err(failed_compare(key, expected, &response));
        }
        let revision = header_revision(response.header())?;
        let previous = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Put(put) => put.prev_key().map(convert_kv),
                _ => None,
            })
            .transpose()?
            .ok_or_else(|| StoreError::Backend(format!("etcd put of {key} lost prev_kv")))?;
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: previous.create_revision,
            mod_revision: revision,
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        let delete = TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()));
        let response = self.txn(guarded(key, expected, delete)).await?;
        if !response.succeeded() {
            return Err(failed_compare(key, expected, &response));
        }
        let revision = header_revision(response.header())?;
        let previous = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Delete(delete) => delete.prev_kvs().first().map(convert_kv),
                _ => None,
            })
            .transpose()?
            .ok_or_else(|| StoreError::Backend(format!("etcd delete of {key} lost prev_kv")))?;
        Ok(KeyValue {
            mod_revision: revision,
            ..previous
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let after = after.max(0);
        // etcd reports a compacted start revision only on the stream, after "created". A read
        // at `after` fails the same way at once, so the caller gets the error from `watch`
        // itself, as from the embedded store. (A future `after` is fine: the watch waits.)
        if after > 0 {
            let at = GetOptions::new().with_count_only().with_revision(after);
            let probe = attempt(REQUEST_TIMEOUT, || {
                let (mut kv, at) = (self.kv.clone(), at.clone());
                async move { kv.get("\0", Some(at)).await }
            })
            .await?;
            if let Err(e) = probe {
                let message = e.to_string();
                if message.contains(COMPACTED) {
                    return Err(StoreError::Compacted {
                        requested: after,
                        compacted: self.compaction_point(after).await,
                    });
                } else if !message.contains(FUTURE_REVISION) {
                    return Err(backend(e));
                }
            }
        }
        // Start one revision early: etcd refuses a start revision below its compaction point,
        // so starting at `after` fails exactly when `after` is below it (the trait's rule),
        // where starting at `after + 1` would be let through at the compaction point itself
        // and could silently miss a deletion compacted away there. The extra event at `after`
        // is dropped below. (A start revision of 0 means "now" to etcd, hence the floor of 1.)
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(after.max(1));
        let (watcher, stream) = within(REQUEST_TIMEOUT, || {
            let (mut watch, options) = (self.watch.clone(), options.clone());
            async move { watch.watch(prefix, Some(options)).await }
        })
        .await?;
        let state = WatchState {
            // Dropping the watcher closes the request side; keep it as long as the stream.
            _watcher: watcher,
            stream,
            after,
            pending: VecDeque::new(),
            done: false,
        };
        Ok(futures::stream::unfold(state, WatchState::next).boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let compacted = attempt(REQUEST_TIMEOUT, || {
            let mut kv = self.kv.clone();
            async move { kv.compact(revision, None).await }
        })
        .await?;
        match compacted {
            Ok(_) => Ok(()),
            Err(e) => {
                let message = e.to_string();
                if message.contains(COMPACTED) {
                    Err(StoreError::Compacted {
                        requested: revision,
                        compacted: self.compaction_point(revision - 1).await,
                    })
                } else if message.contains(FUTURE_REVISION) {
                    Err(StoreError::FutureRevision {
                        requested: revision,
                        current: self.revision().await?,
                    })
                } else {
                    Err(StoreError::Backend(message))
                }
            }
        }
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        // A count-only range over an empty key range is the cheapest request with a header.
        let response = within(REQUEST_TIMEOUT, || {
            let mut kv = self.kv.clone();
            async move {
                kv.get("\0", Some(GetOptions::new().with_count_only()))
                    .await
            }
        })
        .await?;
        header_revision(response.header())
    }
}

/// The state of one etcd watch seen as a [`WatchStream`].
struct WatchState {
    _watcher: etcd_client::Watcher,
    stream: etcd_client::WatchStream,
    /// Events at or below this revision are not wanted (see [`EtcdStore::watch`]).
    after: Revision,
    pending: VecDeque<WatchEvent>,
    done: bool,
}

impl WatchState {
    async fn next(mut self) -> Option<(Result<WatchEvent, StoreError>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            let error = match self.stream.message().await {
                Ok(Some(response)) if response.compact_revision() != 0 => StoreError::Compacted {
                    requested: self.after,
                    compacted: response.compact_revision(),
                },
                Ok(Some(response)) if response.canceled() => StoreError::Backend(format!(
                    "etcd canceled the watch: {}",
                    response.cancel_reason()
                )),
                Ok(Some(response)) => match self.take_events(&response) {
                    Ok(()) => continue,
                    Err(e) => e,
                },
                Ok(None) => StoreError::Backend("etcd closed the watch stream".to_owned()),
                Err(e) => backend(e),
            };
            self.done = true;
            self.pending.clear();
            return Some((Err(error), self));
        }
    }

    fn take_events(&mut self, response: &etcd_client::WatchResponse) -> Result<(), StoreError> {
        for event in response.events() {
            let Some(kv) = event.kv() else {
                return Err(StoreError::Backend(
                    "etcd watch event without kv".to_owned(),
                ));
            };
            if kv.mod_revision() <= self.after {
                continue;
            }
            let event = match event.event_type() {
                EventType::Put => WatchEvent {
                    kind: EventKind::Put,
                    kv: convert_kv(kv)?,
                },
                EventType::Delete => {
                    // etcd's delete kv is only the key and the deleting revision; the last
                    // value comes from prev_kv (absent only if compacted away meanwhile).
                    let deleted = convert_kv(kv)?;
                    let last = event.prev_kv().map(convert_kv).transpose()?;
                    WatchEvent {
                        kind: EventKind::Delete,
                        kv: KeyValue {
                            value: last.as_ref().map(|kv| kv.value.clone()).unwrap_or_default(),
                            create_revision: last.map_or(0, |kv| kv.create_revision),
                            ..deleted
                        },
                    }
                }
            };
            self.after = event.kv.mod_revision;
            self.pending.push_back(event);
        }
        Ok(())
    }
}

/// A transaction running `op` when `key` exists with mod revision `expected` (any mod revision
/// when `None`), reading the key otherwise.
fn guarded(key: &str, expected: Option<Revision>, op: TxnOp) -> Txn {
    let compare = match expected {
        Some(revision) => Compare::mod_revision(key, CompareOp::Equal, revision),
        None => Compare::create_revision(key, CompareOp::Greater, 0),
    };
    Txn::new()
        .when([compare])
        .and_then([op])
        .or_else([TxnOp::get(key, None)])
}

/// The error of a [`guarded`] transaction whose compare failed, from its else-branch read.
fn failed_compare(key: &str, expected: Option<Revision>, response: &TxnResponse) -> StoreError {
    let current = response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision()),
        _ => None,
    });
    match (current, expected) {
        (None, _) => StoreError::NotFound(key.to_owned()),
        (Some(actual), Some(expected)) => StoreError::Conflict {
            key: key.to_owned(),
            expected,
            actual,
        },
        // The key exists, so an unconditional compare cannot have failed unless it was
        // created between the compare and the read: report it as a conflict on "absent".
        (Some(actual), None) => StoreError::Conflict {
            key: key.to_owned(),
            expected: 0,
            actual,
        },
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision, StoreError> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Backend("etcd response without header".to_owned()))
}

fn convert_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
    let key = std::str::from_utf8(kv.key())
        .map_err(|e| StoreError::Backend(format!("etcd key is not UTF-8: {e}")))?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn backend(error: etcd_client::Error) -> StoreError {
    StoreError::Backend(format!("etcd: {error}"))
}

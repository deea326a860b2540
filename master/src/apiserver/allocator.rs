//! Service ClusterIPs and NodePorts, handed out from their ranges. Each value taken is a key in
//! the store (`/registry/serviceips/10.96.0.12`, `/registry/servicenodeports/30080`) created
//! with a create-if-absent, so concurrent creates (even through several API servers on one
//! etcd) never hand out one value twice.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use ipnet::Ipv4Net;

use crate::store::{Store, StoreError};

/// The default NodePort range, as kube-apiserver's `--service-node-port-range`.
pub const NODE_PORTS: RangeInclusive<u32> = 30000..=32767;

/// Why a value could not be allocated.
#[derive(Debug, thiserror::Error)]
pub enum AllocateError {
    /// The requested value is outside the range.
    #[error(
        "provided {what} ({value}) is not in the valid range. The range of valid {what}s is {range}"
    )]
    OutOfRange {
        /// "IP" or "port".
        what: &'static str,
        /// The requested value as written.
        value: String,
        /// The range, as written in flags.
        range: String,
    },
    /// The requested value is taken.
    #[error("provided {what} is already allocated")]
    Taken {
        /// "IP" or "port".
        what: &'static str,
    },
    /// Every value is taken.
    #[error("range is full")]
    Full,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hands out the integers `first..=last` as store keys under one prefix.
pub struct RangeAllocator {
    prefix: &'static str,
    what: &'static str,
    first: u32,
    last: u32,
    shown: String,
    store: Arc<dyn Store>,
    next: AtomicU32,
}

impl RangeAllocator {
    fn new(
        prefix: &'static str,
        what: &'static str,
        range: RangeInclusive<u32>,
        shown: String,
        store: Arc<dyn Store>,
    ) -> Self {
        let (first, last) = (*range.start(), *range.end());
        // Start at a random offset so a restarted server does not probe every taken value.
        let start = rand::random::<u32>() % (last - first + 1).max(1);
        Self {
            prefix,
            what,
            first,
            last,
            shown,
            store,
            next: AtomicU32::new(start),
        }
    }

    fn key(&self, value: u32) -> String {
        format!("{}{}", self.prefix, self.show(value))
    }

    fn show(&self, value: u32) -> String {
        if self.what == "IP" {
            Ipv4Addr::from(value).to_string()
        } else {
            value.to_string()
        }
    }

    /// Take `requested`, or the next free value.
    pub async fn allocate(&self, requested: Option<u32>) -> Result<u32, AllocateError> {
        if let Some(value) = requested {
            if !(self.first..=self.last).contains(&value) {
                return Err(self.out_of_range(self.show(value)));
            }
            return match self.store.create(&self.key(value), Bytes::new()).await {
                Ok(_) => Ok(value),
                Err(StoreError::AlreadyExists(_)) => Err(AllocateError::Taken { what: self.what }),
                Err(e) => Err(e.into()),
            };
        }
        let size = self.last - self.first + 1;
        for _ in 0..size.min(1 << 16) {
            let value = self.first + self.next.fetch_add(1, Ordering::Relaxed) % size;
            match self.store.create(&self.key(value), Bytes::new()).await {
                Ok(_) => return Ok(value),
                Err(StoreError::AlreadyExists(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AllocateError::Full)
    }

    /// Give a value back; releasing a free value is fine.
    pub async fn release(&self, value: u32) -> Result<(), StoreError> {
        match self.store.delete(&self.key(value), None).await {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn out_of_range(&self, value: String) -> AllocateError {
        AllocateError::OutOfRange {
            what: self.what,
            value,
            range: self.shown.clone(),
        }
    }
}

/// ClusterIPs from the service CIDR (network and broadcast addresses excluded; the first
/// address is the `kubernetes` Service's).
pub struct ServiceIps {
    range: Ipv4Net,
    inner: RangeAllocator,
}

impl ServiceIps {
    /// An allocator over `range` (e.g. 10.96.0.0/12) backed by `store`.
    pub fn new(range: Ipv4Net, store: Arc<dyn Store>) -> Self {
        let network = u32::from(range.network());
        let broadcast = u32::from(range.broadcast());
        let hosts = (network + 1)..=(broadcast.saturating_sub(1)).max(network + 1);
        Self {
            range,
            inner: RangeAllocator::new(
                "/registry/serviceips/",
                "IP",
                hosts,
                range.to_string(),
                store,
            ),
        }
    }

    /// The first usable address, reserved for the `kubernetes` Service (10.96.0.1).
    pub fn first(&self) -> Ipv4Addr {
        first_address(self.range)
    }

    /// Allocate `requested` (an address as written) if given, else a free address.
    pub async fn allocate(&self, requested: Option<&str>) -> Result<Ipv4Addr, AllocateError> {
        let requested = match requested {
            Some(text) => Some(u32::from(
                text.parse::<Ipv4Addr>()
                    .map_err(|_| self.inner.out_of_range(text.to_string()))?,
            )),
            None => None,
        };
        self.inner.allocate(requested).await.map(Ipv4Addr::from)
    }

    /// Give an address back (unparsable or free addresses are ignored).
    pub async fn release(&self, ip: &str) -> Result<(), StoreError> {
        match ip.parse::<Ipv4Addr>() {
            Ok(ip) => self.inner.release(u32::from(ip)).await,
            Err(_) => Ok(()),
        }
    }
}

/// NodePorts from [`NODE_PORTS`].
pub struct NodePorts {
    inner: RangeAllocator,
}

impl NodePorts {
    /// An allocator over the default NodePort range backed by `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let shown = format!("{}-{}", NODE_PORTS.start(), NODE_PORTS.end());
        Self {
            inner: RangeAllocator::new(
                "/registry/servicenodeports/",
                "port",
                NODE_PORTS,
                shown,
                store,
            ),
        }
    }

    /// Allocate `requested` if given, else a free port.
    pub async fn allocate(&self, requested: Option<u32>) -> Result<u32, AllocateError> {
        self.inner.allocate(requested).await
    }

    /// Give a port back.
    pub async fn release(&self, port: u32) -> Result<(), StoreError> {
        self.inner.release(port).await
    }
}

/// The first usable address of a Service range, the `kubernetes` Service's (10.96.0.1).
pub fn first_address(range: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(range.network()).saturating_add(1))
}

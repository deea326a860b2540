//! ClusterIP allocation from the service CIDR. Each allocated address is a key in the store
//! (`/registry/serviceips/<ip>`), taken with a create-if-absent, so concurrent creates (even
//! through several API servers on one etcd) never hand out one address twice.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use ipnet::Ipv4Net;

use crate::store::{Store, StoreError};

const PREFIX: &str = "/registry/serviceips/";

/// Why an address could not be allocated.
#[derive(Debug, thiserror::Error)]
pub enum AllocateError {
    /// The requested address is outside the service CIDR.
    #[error("the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}")]
    OutOfRange {
        /// Requested address.
        ip: String,
        /// The service CIDR.
        range: Ipv4Net,
    },
    /// The requested address is taken.
    #[error("failed to allocate IP {0}: provided IP is already allocated")]
    Taken(Ipv4Addr),
    /// Every address is taken.
    #[error("failed to allocate a serviceIP: range is full")]
    Full,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hands out ClusterIPs from one range.
pub struct ServiceIps {
    range: Ipv4Net,
    store: Arc<dyn Store>,
    next: AtomicU32,
}

impl ServiceIps {
    /// An allocator over `range` (e.g. 10.96.0.0/12) backed by `store`.
    pub fn new(range: Ipv4Net, store: Arc<dyn Store>) -> Self {
        Self {
            range,
            store,
            next: AtomicU32::new(2),
        }
    }

    /// The service CIDR.
    pub fn range(&self) -> Ipv4Net {
        self.range
    }

    /// The first usable address, reserved for the `kubernetes` Service (10.96.0.1).
    pub fn first(&self) -> Ipv4Addr {
        offset(self.range, 1)
    }

    fn size(&self) -> u32 {
        // Network and broadcast addresses are never handed out.
        (1u64 << (32 - self.range.prefix_len()))
            .saturating_sub(2)
            .min(u32::MAX as u64) as u32
    }

    /// Allocate `requested` if given, else the next free address.
    pub async fn allocate(&self, requested: Option<&str>) -> Result<Ipv4Addr, AllocateError> {
        if let Some(requested) = requested {
            let ip: Ipv4Addr = requested.parse().map_err(|_| AllocateError::OutOfRange {
                ip: requested.to_string(),
                range: self.range,
            })?;
            let host = u32::from(ip).wrapping_sub(u32::from(self.range.network()));
            if !self.range.contains(&ip) || host == 0 || host > self.size() {
                return Err(AllocateError::OutOfRange {
                    ip: requested.to_string(),
                    range: self.range,
                });
            }
            return match self.store.create(&key(ip), Bytes::new()).await {
                Ok(_) => Ok(ip),
                Err(StoreError::AlreadyExists(_)) => Err(AllocateError::Taken(ip)),
                Err(e) => Err(e.into()),
            };
        }
        let size = self.size();
        for _ in 0..size.min(1 << 16) {
            let n = self.next.fetch_add(1, Ordering::Relaxed) % size + 1;
            let ip = offset(self.range, n);
            match self.store.create(&key(ip), Bytes::new()).await {
                Ok(_) => return Ok(ip),
                Err(StoreError::AlreadyExists(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AllocateError::Full)
    }

    /// Give an address back (a missing key is fine: release is idempotent).
    pub async fn release(&self, ip: &str) -> Result<(), StoreError> {
        let Ok(ip) = ip.parse::<Ipv4Addr>() else {
            return Ok(());
        };
        match self.store.delete(&key(ip), None).await {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether a listed key belongs to the allocator (so other code can skip it).
    pub fn is_allocator_key(key: &str) -> bool {
        key.starts_with(PREFIX)
    }
}

fn key(ip: Ipv4Addr) -> String {
    format!("{PREFIX}{ip}")
}

fn offset(range: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(range.network()).wrapping_add(n))
}

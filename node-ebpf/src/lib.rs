//! The eBPF maps' keys and values, shared by skiff's programs (`src/main.rs`, built for
//! `bpfel-unknown-none`) and the node agent (`node/src/proxy/`, feature `user`: `aya::Pod`).
//!
//! The layout is Cilium's socket load balancer's (`bpf/lib/lb.h`): one `SERVICES` map keyed by
//! Service address, port, protocol and backend slot, where slot 0 is the Service's own entry
//! (how many backends it has) and slots `1..=count` name its backends by id; a `BACKENDS` map
//! from id to address and port; a `REV_NAT` map keyed by socket cookie and backend, for replies
//! and `getpeername()` to show the Service's address; `AFFINITY` for `sessionAffinity:
//! ClientIP`. Addresses and ports are in network byte order, as the kernel hands them over.
#![no_std]

/// IANA protocol numbers, as `bpf_sock_addr.protocol` carries them.
pub const PROTOCOL_TCP: u8 = 6;
pub const PROTOCOL_UDP: u8 = 17;

/// `ServiceValue::flags`: the Service has `sessionAffinity: ClientIP`.
pub const SERVICE_FLAG_AFFINITY: u8 = 1;

/// The slot of a Service's own entry in `SERVICES`.
pub const SERVICE_SLOT: u16 = 0;

/// A `SERVICES` key: one frontend (Service address, port, protocol) and one slot of it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// IPv4 address, network byte order.
    pub address: u32,
    /// Port, network byte order.
    pub port: u16,
    /// 0 for the Service's entry, `1..=count` for its backends.
    pub backend_slot: u16,
    /// `PROTOCOL_TCP` or `PROTOCOL_UDP`.
    pub protocol: u8,
    pub pad: [u8; 3],
}

/// A `SERVICES` value. In slot 0: `count`, `rev_nat_index`, `flags`, `affinity_timeout_s`;
/// in slot n: `backend_id` (and `rev_nat_index`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceValue {
    /// The backend this slot names (slots 1..=count).
    pub backend_id: u32,
    /// How many backends the Service has (slot 0); 0 refuses connects (ECONNREFUSED).
    pub count: u16,
    /// The Service's number: its `REV_NAT` entries and its `CONNECTIONS` counter.
    pub rev_nat_index: u16,
    /// `SERVICE_FLAG_*`.
    pub flags: u8,
    pub pad: [u8; 3],
    /// `sessionAffinityConfig.clientIP.timeoutSeconds` when `SERVICE_FLAG_AFFINITY` is set.
    pub affinity_timeout_s: u32,
}

/// A `BACKENDS` value: where a backend id sends traffic.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Backend {
    /// IPv4 address, network byte order.
    pub address: u32,
    /// Port, network byte order.
    pub port: u16,
    pub protocol: u8,
    pub pad: u8,
}

/// A `REV_NAT` key: the socket (its cookie) and the backend it was sent to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RevNatKey {
    pub cookie: u64,
    /// Backend address, network byte order.
    pub address: u32,
    /// Backend port, network byte order.
    pub port: u16,
    pub pad: u16,
}

/// A `REV_NAT` value: the Service address the socket asked for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RevNatValue {
    pub address: u32,
    pub port: u16,
    pub rev_nat_index: u16,
}

/// An `AFFINITY` key: a client (its network namespace's cookie: one per pod, one for the
/// host) and a Service.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    pub netns_cookie: u64,
    pub rev_nat_index: u16,
    pub pad: [u8; 6],
}

/// An `AFFINITY` value: the backend a client was last sent to, and when.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AffinityValue {
    /// `bpf_ktime_get_ns()` of the last connect.
    pub last_used_ns: u64,
    pub backend_id: u32,
    pub pad: u32,
}

/// The maps' names (the programs' statics; pinned under these names).
pub mod maps {
    pub const SERVICES: &str = "SERVICES";
    pub const BACKENDS: &str = "BACKENDS";
    pub const REV_NAT: &str = "REV_NAT";
    pub const AFFINITY: &str = "AFFINITY";
    pub const CONNECTIONS: &str = "CONNECTIONS";
}

/// The programs' names and the cgroup hooks they attach to.
pub mod programs {
    pub const CONNECT4: &str = "connect4";
    pub const SENDMSG4: &str = "sendmsg4";
    pub const RECVMSG4: &str = "recvmsg4";
    pub const GETPEERNAME4: &str = "getpeername4";
}

#[cfg(feature = "user")]
mod user {
    // SAFETY (every impl): `#[repr(C)]` plain data, every bit pattern valid, padding explicit.
    unsafe impl aya::Pod for super::ServiceKey {}
    unsafe impl aya::Pod for super::ServiceValue {}
    unsafe impl aya::Pod for super::Backend {}
    unsafe impl aya::Pod for super::RevNatKey {}
    unsafe impl aya::Pod for super::RevNatValue {}
    unsafe impl aya::Pod for super::AffinityKey {}
    unsafe impl aya::Pod for super::AffinityValue {}
}

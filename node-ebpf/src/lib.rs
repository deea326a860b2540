//! The eBPF maps' keys and values, shared by skiff's programs (`src/main.rs`, built for
//! `bpfel-unknown-none`) and the node agent (`node/src/proxy/`, feature `user`: `aya::Pod`).
//!
//! The layout is Cilium's socket load balancer's (`bpf/lib/lb.h`): one `SERVICES` map keyed by
//! Service address, port, protocol and backend slot, where slot 0 is the Service's own entry
//! (how many backends it has) and slots `1..=count` name its backends by id; a `BACKENDS` map
//! from id to address and port; a `REV_NAT` map keyed by socket cookie and backend, for replies
//! and `getpeername()` to show the Service's address; `AFFINITY` for `sessionAffinity:
//! ClientIP`. Addresses and ports are in network byte order, as the kernel hands them over.
//!
//! NodePort traffic from outside the node (no socket hook sees its client) is translated per
//! packet by the TC programs on the node's devices, as Cilium's `bpf_host` nodeport does:
//! `NODEPORT_FLOWS` remembers each flow both ways (the client and the frontend it asked for
//! -> the backend; the client and that backend -> the frontend, for replies).
#![no_std]

/// IANA protocol numbers, as `bpf_sock_addr.protocol` carries them.
pub const PROTOCOL_TCP: u8 = 6;
pub const PROTOCOL_UDP: u8 = 17;

/// `ServiceValue::flags`: the Service has `sessionAffinity: ClientIP`.
pub const SERVICE_FLAG_AFFINITY: u8 = 1;
/// `ServiceValue::flags`: the frontend is a NodePort (a node address and a nodePort). The
/// socket hooks translate it only for the node's own network namespaces (`NODE_NETNS`); a
/// client in any other namespace is outside the node, and its packets meet the TC programs.
pub const SERVICE_FLAG_NODE_PORT: u8 = 2;

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
/// host; or, for a client outside the node, [`AFFINITY_OUTSIDE`] with its IPv4 address) and a
/// Service.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    pub netns_cookie: u64,
    pub rev_nat_index: u16,
    pub pad: [u8; 6],
}

/// `AffinityKey::netns_cookie` of a client outside the node: this bit with its IPv4 address
/// (network byte order) in the low 32 bits. Network namespace cookies are counters that never
/// reach it.
pub const AFFINITY_OUTSIDE: u64 = 1 << 63;

/// An `AFFINITY` value: the backend a client was last sent to, and when.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AffinityValue {
    /// `bpf_ktime_get_ns()` of the last connect.
    pub last_used_ns: u64,
    pub backend_id: u32,
    pub pad: u32,
}

/// `FlowKey::direction`: a client's packets to a frontend (the value names the backend).
pub const FLOW_TO_BACKEND: u8 = 0;
/// `FlowKey::direction`: a backend's replies to the client (the value names the frontend).
pub const FLOW_TO_CLIENT: u8 = 1;

/// `skb->mark` bit of a packet the TC program sent to a backend: the agent's forwarding rule
/// accepts exactly these (Docker's `FORWARD` policy drops other new flows into pod bridges).
pub const MARK_NODEPORT: u32 = 0x0020_0000;

/// A `NODEPORT_FLOWS` key: one flow of a client outside the node, one way.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The client's IPv4 address, network byte order.
    pub client_address: u32,
    /// The frontend's address (`FLOW_TO_BACKEND`) or the backend's (`FLOW_TO_CLIENT`).
    pub peer_address: u32,
    /// The client's port, network byte order.
    pub client_port: u16,
    /// The frontend's port or the backend's, network byte order.
    pub peer_port: u16,
    /// `PROTOCOL_TCP` or `PROTOCOL_UDP`.
    pub protocol: u8,
    /// `FLOW_TO_BACKEND` or `FLOW_TO_CLIENT`.
    pub direction: u8,
    pub pad: [u8; 2],
}

/// A `NODEPORT_FLOWS` value: where the other end of the translation is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowValue {
    /// The backend's address (`FLOW_TO_BACKEND`) or the frontend's, network byte order.
    pub address: u32,
    /// Its port, network byte order.
    pub port: u16,
    pub pad: u16,
    /// The backend's id (`FLOW_TO_BACKEND`): a flow whose backend is gone picks another.
    pub backend_id: u32,
}

/// The maps' names (the programs' statics; pinned under these names).
pub mod maps {
    pub const SERVICES: &str = "SERVICES";
    pub const BACKENDS: &str = "BACKENDS";
    pub const REV_NAT: &str = "REV_NAT";
    pub const AFFINITY: &str = "AFFINITY";
    pub const CONNECTIONS: &str = "CONNECTIONS";
    pub const NODEPORT_FLOWS: &str = "NODEPORT_FLOWS";
    pub const NODE_NETNS: &str = "NODE_NETNS";
}

/// The programs' names and the cgroup hooks they attach to.
pub mod programs {
    pub const CONNECT4: &str = "connect4";
    pub const SENDMSG4: &str = "sendmsg4";
    pub const RECVMSG4: &str = "recvmsg4";
    pub const GETPEERNAME4: &str = "getpeername4";
    /// TC ingress of the node's devices: NodePort frontends to a backend.
    pub const NODEPORT_INGRESS: &str = "nodeport_ingress";
    /// TC egress of the node's devices: backends' replies back to the NodePort frontend.
    pub const NODEPORT_EGRESS: &str = "nodeport_egress";
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
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowValue {}
}

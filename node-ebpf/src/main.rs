//! skiff's Service load balancing at the socket layer, as Cilium's socket LB
//! (`bpf/bpf_sock.c`) does it: attached to the cgroup v2 root, `connect4` and `sendmsg4`
//! rewrite a Service address and port into one ready backend's before the route lookup (no
//! per-packet NAT), and `recvmsg4` and `getpeername4` put the Service's address back, so a UDP
//! reply comes from the Service and `getpeername()` names it.
//!
//! A client outside the node has no socket here for those hooks to see: for it the TC
//! programs on the node's devices translate NodePort traffic per packet, as Cilium's
//! `bpf_host` nodeport does. `nodeport_ingress` sends a packet to a node address and nodePort
//! to one backend (destination NAT, checksums fixed by the kernel's helpers) and remembers the
//! flow both ways; `nodeport_egress` gives the backend's replies the frontend's address and
//! port back on their way out. The host's routing forwards between the device and the pod
//! bridge in between.
#![no_std]
#![no_main]
// Every function but the programs is inlined: each program is one function, as the verifier
// reads it (a call LLVM turns into a jump into another program's code is refused).

use aya_ebpf::bindings::bpf_sock_addr;
use aya_ebpf::helpers::generated::{
    bpf_get_netns_cookie, bpf_get_prandom_u32, bpf_get_socket_cookie, bpf_ktime_get_ns,
    bpf_set_retval,
};
use aya_ebpf::macros::{cgroup_sock_addr, classifier, map};
use aya_ebpf::maps::{HashMap, LruHashMap, PerCpuArray};
use aya_ebpf::programs::{SockAddrContext, TcContext};
use skiff_node_ebpf::{
    AFFINITY_OUTSIDE, AffinityKey, AffinityValue, Backend, FLOW_TO_BACKEND, FLOW_TO_CLIENT,
    FlowKey, FlowValue, MARK_NODEPORT, PROTOCOL_TCP, PROTOCOL_UDP, RevNatKey, RevNatValue,
    SERVICE_FLAG_AFFINITY, SERVICE_FLAG_NODE_PORT, SERVICE_SLOT, ServiceKey, ServiceValue,
};

/// A cgroup sock_addr program's verdicts.
const ALLOW: i32 = 1;
const REJECT: i32 = 0;
/// What a connect to a Service without backends fails with: kube-proxy's REJECT.
const ECONNREFUSED: i32 = 111;

/// The agent sets the sizes at load (`--proxy-max-services` and friends); these are defaults.
#[map]
static SERVICES: HashMap<ServiceKey, ServiceValue> = HashMap::pinned(65_536, 0);
#[map]
static BACKENDS: HashMap<u32, Backend> = HashMap::pinned(65_536, 0);
#[map]
static REV_NAT: LruHashMap<RevNatKey, RevNatValue> = LruHashMap::pinned(262_144, 0);
#[map]
static AFFINITY: LruHashMap<AffinityKey, AffinityValue> = LruHashMap::pinned(65_536, 0);
/// Connections (and unconnected UDP sends) translated, per Service (`rev_nat_index`), per CPU.
#[map]
static CONNECTIONS: PerCpuArray<u64> = PerCpuArray::pinned(65_536, 0);
/// NodePort flows of clients outside the node, both ways (`FLOW_TO_BACKEND`, `FLOW_TO_CLIENT`).
#[map]
static NODEPORT_FLOWS: LruHashMap<FlowKey, FlowValue> = LruHashMap::pinned(262_144, 0);
/// The node's own network namespaces, by cookie: the host's and its pods' (the agent keeps
/// it). The socket hooks translate NodePorts only for these.
#[map]
static NODE_NETNS: HashMap<u64, u8> = HashMap::pinned(16_384, 0);

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    translate_to_backend(&ctx)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    translate_to_backend(&ctx)
}

#[cgroup_sock_addr(recvmsg4)]
pub fn recvmsg4(ctx: SockAddrContext) -> i32 {
    translate_to_service(&ctx)
}

#[cgroup_sock_addr(getpeername4)]
pub fn getpeername4(ctx: SockAddrContext) -> i32 {
    translate_to_service(&ctx)
}

#[inline(always)]
fn protocol(sock_addr: &bpf_sock_addr) -> Option<u8> {
    match sock_addr.protocol {
        6 => Some(PROTOCOL_TCP),
        17 => Some(PROTOCOL_UDP),
        _ => None,
    }
}

/// Service address and port to one of its backends; anything else is left alone.
#[inline(always)]
fn translate_to_backend(ctx: &SockAddrContext) -> i32 {
    // SAFETY: the kernel hands every sock_addr program a valid context.
    let sock_addr = unsafe { &mut *ctx.sock_addr };
    let Some(protocol) = protocol(sock_addr) else {
        return ALLOW;
    };
    let mut key = ServiceKey {
        address: sock_addr.user_ip4,
        port: sock_addr.user_port as u16,
        backend_slot: SERVICE_SLOT,
        protocol,
        pad: [0; 3],
    };
    // SAFETY: a copy is taken at once; the agent replaces entries whole.
    let Some(service) = (unsafe { SERVICES.get(&key) }).copied() else {
        return ALLOW;
    };
    // SAFETY: the helper takes the program's own context.
    let netns_cookie = unsafe { bpf_get_netns_cookie(ctx.sock_addr.cast()) };
    // A NodePort from a namespace that is not the node's: a client outside the node, whose
    // packets the node's TC programs translate (as another host's would be).
    // SAFETY: only the presence of the entry is read.
    if service.flags & SERVICE_FLAG_NODE_PORT != 0
        && unsafe { NODE_NETNS.get(&netns_cookie) }.is_none()
    {
        return ALLOW;
    }
    if service.count == 0 {
        // SAFETY: bpf_set_retval only sets the syscall's errno for a rejected call.
        unsafe { bpf_set_retval(-ECONNREFUSED) };
        return REJECT;
    }
    let affinity = AffinityKey {
        netns_cookie,
        rev_nat_index: service.rev_nat_index,
        pad: [0; 6],
    };
    let Some((_, backend)) = pick_backend(&mut key, &service, &affinity) else {
        unsafe { bpf_set_retval(-ECONNREFUSED) };
        return REJECT;
    };
    // Remember the Service for replies and getpeername(), keyed by this socket.
    // SAFETY: the helper takes the program's own context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    let rev_nat_key = RevNatKey {
        cookie,
        address: backend.address,
        port: backend.port,
        pad: 0,
    };
    let rev_nat = RevNatValue {
        address: key.address,
        port: key.port,
        rev_nat_index: service.rev_nat_index,
    };
    // A full LRU map evicts its oldest entry; an error here only costs the reverse view.
    let _ = REV_NAT.insert(&rev_nat_key, &rev_nat, 0);
    count_connection(&service);
    sock_addr.user_ip4 = backend.address;
    sock_addr.user_port = u32::from(backend.port);
    ALLOW
}

#[inline(always)]
fn count_connection(service: &ServiceValue) {
    if let Some(counter) = CONNECTIONS.get_ptr_mut(u32::from(service.rev_nat_index)) {
        // SAFETY: a per-CPU slot; nothing else writes it while this program runs on this CPU.
        unsafe { *counter += 1 };
    }
}

/// The backend for a new connection of the client `affinity` names: its recent one with
/// session affinity, else one chosen uniformly at random (remembered with session affinity).
#[inline(always)]
fn pick_backend(
    key: &mut ServiceKey,
    service: &ServiceValue,
    affinity: &AffinityKey,
) -> Option<(u32, Backend)> {
    let with_affinity = service.flags & SERVICE_FLAG_AFFINITY != 0;
    let found = match with_affinity {
        true => affinity_backend(affinity, service),
        false => None,
    };
    let (backend_id, backend) = match found {
        Some(found) => found,
        None => {
            // SAFETY: no preconditions.
            let random = unsafe { bpf_get_prandom_u32() };
            key.backend_slot = (random % u32::from(service.count)) as u16 + 1;
            // SAFETY: copies taken at once, as above.
            let slot = (unsafe { SERVICES.get(&*key) }).copied()?;
            let backend = (unsafe { BACKENDS.get(slot.backend_id) }).copied()?;
            (slot.backend_id, backend)
        }
    };
    if with_affinity {
        remember_affinity(affinity, backend_id);
    }
    Some((backend_id, backend))
}

/// The client's backend if it used this Service within the affinity timeout and the backend
/// still exists.
#[inline(always)]
fn affinity_backend(key: &AffinityKey, service: &ServiceValue) -> Option<(u32, Backend)> {
    // SAFETY: copies taken at once, as above.
    let last = (unsafe { AFFINITY.get(key) }).copied()?;
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let timeout_ns = u64::from(service.affinity_timeout_s) * 1_000_000_000;
    if now.saturating_sub(last.last_used_ns) > timeout_ns {
        return None;
    }
    let backend = (unsafe { BACKENDS.get(last.backend_id) }).copied()?;
    Some((last.backend_id, backend))
}

#[inline(always)]
fn remember_affinity(key: &AffinityKey, backend_id: u32) {
    let value = AffinityValue {
        // SAFETY: no preconditions.
        last_used_ns: unsafe { bpf_ktime_get_ns() },
        backend_id,
        pad: 0,
    };
    let _ = AFFINITY.insert(key, &value, 0);
}

/// A backend's address and port back to the Service's, for sockets `translate_to_backend`
/// sent there.
#[inline(always)]
fn translate_to_service(ctx: &SockAddrContext) -> i32 {
    // SAFETY: the kernel hands every sock_addr program a valid context.
    let sock_addr = unsafe { &mut *ctx.sock_addr };
    if protocol(sock_addr).is_none() {
        return ALLOW;
    }
    let key = RevNatKey {
        // SAFETY: the helper takes the program's own context.
        cookie: unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) },
        address: sock_addr.user_ip4,
        port: sock_addr.user_port as u16,
        pad: 0,
    };
    // SAFETY: a copy taken at once.
    if let Some(service) = (unsafe { REV_NAT.get(&key) }).copied() {
        sock_addr.user_ip4 = service.address;
        sock_addr.user_port = u32::from(service.port);
    }
    ALLOW
}

/// A TC verdict: go on to the next program on the device, then the stack (tcx's TCX_NEXT,
/// cls_bpf's TC_ACT_UNSPEC). Every packet goes on, translated or not.
const TC_NEXT: i32 = -1;

/// Offsets in an Ethernet frame (the programs attach to Ethernet devices).
const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const IP_CSUM_OFF: usize = ETH_HLEN + 10;
const IP_SRC_OFF: usize = ETH_HLEN + 12;
const IP_DST_OFF: usize = ETH_HLEN + 16;
/// `bpf_l4_csum_replace` flags: the change is in the pseudo header (an address); a UDP
/// checksum of 0 (none) stays 0.
const BPF_F_PSEUDO_HDR: u64 = 0x10;
const BPF_F_MARK_MANGLED_0: u64 = 0x20;

/// The headers of a TCP or UDP packet over IPv4; addresses and ports in network byte order.
struct Packet {
    /// Offset of the TCP or UDP header.
    l4: usize,
    protocol: u8,
    source: u32,
    destination: u32,
    source_port: u16,
    destination_port: u16,
}

impl Packet {
    /// The headers, for an unfragmented TCP or UDP packet over IPv4 (a fragment past the first
    /// carries no ports: fragments are left alone).
    #[inline(always)]
    fn parse(ctx: &TcContext) -> Option<Packet> {
        let ethertype: u16 = ctx.load(12).ok()?;
        if ethertype != ETH_P_IP.to_be() {
            return None;
        }
        let version_ihl: u8 = ctx.load(ETH_HLEN).ok()?;
        let header_len = usize::from(version_ihl & 0x0f) * 4;
        if version_ihl >> 4 != 4 || header_len < 20 {
            return None;
        }
        let fragment: u16 = ctx.load(ETH_HLEN + 6).ok()?;
        // More-fragments flag or an offset.
        if u16::from_be(fragment) & 0x3fff != 0 {
            return None;
        }
        let protocol: u8 = ctx.load(ETH_HLEN + 9).ok()?;
        if protocol != PROTOCOL_TCP && protocol != PROTOCOL_UDP {
            return None;
        }
        let l4 = ETH_HLEN + header_len;
        Some(Packet {
            l4,
            protocol,
            source: ctx.load(IP_SRC_OFF).ok()?,
            destination: ctx.load(IP_DST_OFF).ok()?,
            source_port: ctx.load(l4).ok()?,
            destination_port: ctx.load(l4 + 2).ok()?,
        })
    }

    /// Rewrites one address (at `address_offset`) and one port (at `port_offset`), fixing the
    /// IPv4 header's checksum and the TCP or UDP one (its pseudo header has the address).
    #[inline(always)]
    fn rewrite(
        &self,
        ctx: &TcContext,
        (address_offset, old_address, new_address): (usize, u32, u32),
        (port_offset, old_port, new_port): (usize, u16, u16),
    ) -> Option<()> {
        let (csum_offset, flags) = match self.protocol {
            PROTOCOL_TCP => (self.l4 + 16, 0),
            _ => (self.l4 + 6, BPF_F_MARK_MANGLED_0),
        };
        let (old_a, new_a) = (u64::from(old_address), u64::from(new_address));
        ctx.l4_csum_replace(csum_offset, old_a, new_a, flags | BPF_F_PSEUDO_HDR | 4)
            .ok()?;
        ctx.l4_csum_replace(
            csum_offset,
            u64::from(old_port),
            u64::from(new_port),
            flags | 2,
        )
        .ok()?;
        ctx.l3_csum_replace(IP_CSUM_OFF, old_a, new_a, 4).ok()?;
        ctx.store(address_offset, &new_address, 0).ok()?;
        ctx.store(port_offset, &new_port, 0).ok()?;
        Some(())
    }
}

#[classifier]
pub fn nodeport_ingress(ctx: TcContext) -> i32 {
    if let Some(packet) = Packet::parse(&ctx) {
        let _ = nodeport_to_backend(&ctx, &packet);
    }
    TC_NEXT
}

#[classifier]
pub fn nodeport_egress(ctx: TcContext) -> i32 {
    if let Some(packet) = Packet::parse(&ctx) {
        let _ = backend_to_client(&ctx, &packet);
    }
    TC_NEXT
}

/// A packet to a NodePort frontend goes to its flow's backend (a new flow picks one); anything
/// else, and a frontend without backends (the host answers: a reset, port unreachable), is
/// left alone.
#[inline(always)]
fn nodeport_to_backend(ctx: &TcContext, packet: &Packet) -> Option<()> {
    let mut key = ServiceKey {
        address: packet.destination,
        port: packet.destination_port,
        backend_slot: SERVICE_SLOT,
        protocol: packet.protocol,
        pad: [0; 3],
    };
    // SAFETY: a copy is taken at once; the agent replaces entries whole.
    let service = (unsafe { SERVICES.get(&key) }).copied()?;
    if service.count == 0 {
        return None;
    }
    let flow = FlowKey {
        client_address: packet.source,
        peer_address: packet.destination,
        client_port: packet.source_port,
        peer_port: packet.destination_port,
        protocol: packet.protocol,
        direction: FLOW_TO_BACKEND,
        pad: [0; 2],
    };
    let backend = match flow_backend(&flow) {
        Some(backend) => backend,
        None => {
            let affinity = AffinityKey {
                netns_cookie: AFFINITY_OUTSIDE | u64::from(packet.source),
                rev_nat_index: service.rev_nat_index,
                pad: [0; 6],
            };
            let (backend_id, backend) = pick_backend(&mut key, &service, &affinity)?;
            let to_backend = FlowValue {
                address: backend.address,
                port: backend.port,
                pad: 0,
                backend_id,
            };
            let reply = FlowKey {
                peer_address: backend.address,
                peer_port: backend.port,
                direction: FLOW_TO_CLIENT,
                ..flow
            };
            let to_client = FlowValue {
                address: packet.destination,
                port: packet.destination_port,
                pad: 0,
                backend_id,
            };
            // The reply's entry first: the backend may answer before this returns.
            NODEPORT_FLOWS.insert(&reply, &to_client, 0).ok()?;
            NODEPORT_FLOWS.insert(&flow, &to_backend, 0).ok()?;
            count_connection(&service);
            backend
        }
    };
    packet.rewrite(
        ctx,
        (IP_DST_OFF, packet.destination, backend.address),
        (packet.l4 + 2, packet.destination_port, backend.port),
    )?;
    // SAFETY: the program's own context; the mark is a plain field programs may write.
    unsafe { (*ctx.skb.skb).mark |= MARK_NODEPORT };
    Some(())
}

/// The backend a flow was sent to, while it is still a backend (a flow whose backend went
/// away picks another).
#[inline(always)]
fn flow_backend(flow: &FlowKey) -> Option<Backend> {
    // SAFETY: copies taken at once.
    let to = (unsafe { NODEPORT_FLOWS.get(flow) }).copied()?;
    let backend = (unsafe { BACKENDS.get(to.backend_id) }).copied()?;
    (backend.address == to.address && backend.port == to.port).then_some(backend)
}

/// A backend's reply to a client of a NodePort flow gets the frontend's address and port as
/// its source.
#[inline(always)]
fn backend_to_client(ctx: &TcContext, packet: &Packet) -> Option<()> {
    let reply = FlowKey {
        client_address: packet.destination,
        peer_address: packet.source,
        client_port: packet.destination_port,
        peer_port: packet.source_port,
        protocol: packet.protocol,
        direction: FLOW_TO_CLIENT,
        pad: [0; 2],
    };
    // SAFETY: a copy taken at once.
    let frontend = (unsafe { NODEPORT_FLOWS.get(&reply) }).copied()?;
    packet.rewrite(
        ctx,
        (IP_SRC_OFF, packet.source, frontend.address),
        (packet.l4, packet.source_port, frontend.port),
    )
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

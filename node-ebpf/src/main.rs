//! skiff's Service load balancing at the socket layer, as Cilium's socket LB
//! (`bpf/bpf_sock.c`) does it: attached to the cgroup v2 root, `connect4` and `sendmsg4`
//! rewrite a Service address and port into one ready backend's before the route lookup (no
//! per-packet NAT), and `recvmsg4` and `getpeername4` put the Service's address back, so a UDP
//! reply comes from the Service and `getpeername()` names it.
#![no_std]
#![no_main]

use aya_ebpf::bindings::bpf_sock_addr;
use aya_ebpf::helpers::generated::{
    bpf_get_netns_cookie, bpf_get_prandom_u32, bpf_get_socket_cookie, bpf_ktime_get_ns,
    bpf_set_retval,
};
use aya_ebpf::macros::{cgroup_sock_addr, map};
use aya_ebpf::maps::{HashMap, LruHashMap, PerCpuArray};
use aya_ebpf::programs::SockAddrContext;
use skiff_node_ebpf::{
    AffinityKey, AffinityValue, Backend, PROTOCOL_TCP, PROTOCOL_UDP, RevNatKey, RevNatValue,
    SERVICE_FLAG_AFFINITY, SERVICE_SLOT, ServiceKey, ServiceValue,
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

fn protocol(sock_addr: &bpf_sock_addr) -> Option<u8> {
    match sock_addr.protocol {
        6 => Some(PROTOCOL_TCP),
        17 => Some(PROTOCOL_UDP),
        _ => None,
    }
}

/// Service address and port to one of its backends; anything else is left alone.
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
    if service.count == 0 {
        // SAFETY: bpf_set_retval only sets the syscall's errno for a rejected call.
        unsafe { bpf_set_retval(-ECONNREFUSED) };
        return REJECT;
    }
    let Some((backend_id, backend)) = pick_backend(ctx, &mut key, &service) else {
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
    if service.flags & SERVICE_FLAG_AFFINITY != 0 {
        remember_affinity(ctx, &service, backend_id);
    }
    if let Some(counter) = CONNECTIONS.get_ptr_mut(u32::from(service.rev_nat_index)) {
        // SAFETY: a per-CPU slot; nothing else writes it while this program runs on this CPU.
        unsafe { *counter += 1 };
    }
    sock_addr.user_ip4 = backend.address;
    sock_addr.user_port = u32::from(backend.port);
    ALLOW
}

/// The backend for this connect: the client's recent one with session affinity, else one
/// chosen uniformly at random.
fn pick_backend(
    ctx: &SockAddrContext,
    key: &mut ServiceKey,
    service: &ServiceValue,
) -> Option<(u32, Backend)> {
    if service.flags & SERVICE_FLAG_AFFINITY != 0
        && let Some(found) = affinity_backend(ctx, service)
    {
        return Some(found);
    }
    // SAFETY: no preconditions.
    let random = unsafe { bpf_get_prandom_u32() };
    key.backend_slot = (random % u32::from(service.count)) as u16 + 1;
    // SAFETY: copies taken at once, as above.
    let slot = (unsafe { SERVICES.get(&*key) }).copied()?;
    let backend = (unsafe { BACKENDS.get(slot.backend_id) }).copied()?;
    Some((slot.backend_id, backend))
}

fn affinity_key(ctx: &SockAddrContext, service: &ServiceValue) -> AffinityKey {
    AffinityKey {
        // SAFETY: the helper takes the program's own context.
        netns_cookie: unsafe { bpf_get_netns_cookie(ctx.sock_addr.cast()) },
        rev_nat_index: service.rev_nat_index,
        pad: [0; 6],
    }
}

/// The client's backend if it used this Service within the affinity timeout and the backend
/// still exists.
fn affinity_backend(ctx: &SockAddrContext, service: &ServiceValue) -> Option<(u32, Backend)> {
    let key = affinity_key(ctx, service);
    // SAFETY: copies taken at once, as above.
    let last = (unsafe { AFFINITY.get(&key) }).copied()?;
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let timeout_ns = u64::from(service.affinity_timeout_s) * 1_000_000_000;
    if now.saturating_sub(last.last_used_ns) > timeout_ns {
        return None;
    }
    let backend = (unsafe { BACKENDS.get(last.backend_id) }).copied()?;
    Some((last.backend_id, backend))
}

fn remember_affinity(ctx: &SockAddrContext, service: &ServiceValue, backend_id: u32) {
    let key = affinity_key(ctx, service);
    let value = AffinityValue {
        // SAFETY: no preconditions.
        last_used_ns: unsafe { bpf_ktime_get_ns() },
        backend_id,
        pad: 0,
    };
    let _ = AFFINITY.insert(&key, &value, 0);
}

/// A backend's address and port back to the Service's, for sockets `translate_to_backend`
/// sent there.
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

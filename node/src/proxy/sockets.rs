//! Closing the connected UDP sockets the socket programs sent to a backend that is gone.
//!
//! A connected UDP socket keeps the backend `connect4` chose for it: with the backend gone it
//! would send into nothing for ever (a known problem of Cilium's socket load balancer). So,
//! as kube-proxy flushes the conntrack entries of a removed UDP endpoint, the agent destroys
//! those sockets: netlink sock_diag's `SOCK_DESTROY` (what `ss -K` sends;
//! `CONFIG_INET_DIAG_DESTROY`), in the host's network namespace and in each pod's of this node,
//! for exactly the sockets whose cookie the `REV_NAT` map holds with that backend. The owner
//! sees `ECONNABORTED` on its next call and can connect again, to a live backend. (The kernel
//! also has `bpf_sock_destroy` for socket iterators, but it is a kfunc, which aya 0.14 cannot
//! load.)
//!
//! TCP connections are left alone, as kube-proxy leaves their conntrack entries: a backend
//! that stops being ready is often a pod finishing its requests before it exits.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::constants::{AF_INET, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::{SockDiagDestroy, SockDiagMessage};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr};
use skiff_node_ebpf::{RevNatKey, RevNatValue, maps};

use super::node_netns::{self, PodNetns};

/// A backend, as the sockets name their peer: IPv4 address and port.
pub type Peer = (Ipv4Addr, u16);

/// Destroys the connected UDP sockets that the programs sent to one of `gone`, in the host's
/// namespace and in `pods`' (maps pinned in `pin_dir`). Returns how many were destroyed.
pub fn close_udp(pin_dir: &Path, gone: &[Peer], pods: &[PodNetns]) -> io::Result<usize> {
    let cookies = translated_sockets(pin_dir, gone)?;
    if cookies.is_empty() {
        return Ok(0);
    }
    let mut closed = destroy_in_this_namespace(&cookies)?;
    for pod in pods {
        let in_pod = crate::netns::in_namespace_of(pod.pid, || {
            // The sandbox's pid may have been taken by another process since: only the
            // namespace the pod had is searched.
            if node_netns::own_cookie()? != pod.cookie {
                return Ok(0);
            }
            destroy_in_this_namespace(&cookies)
        });
        // A sandbox that ended meanwhile took its sockets with it.
        closed += in_pod.unwrap_or(0);
    }
    Ok(closed)
}

/// The cookies of the sockets `REV_NAT` says were sent to one of `gone`, with their peer.
fn translated_sockets(pin_dir: &Path, gone: &[Peer]) -> io::Result<HashMap<u64, Peer>> {
    let data = MapData::from_pin(pin_dir.join(maps::REV_NAT)).map_err(io::Error::other)?;
    let map = Map::from_map_data(data).map_err(io::Error::other)?;
    let rev_nat: BpfHashMap<MapData, RevNatKey, RevNatValue> =
        BpfHashMap::try_from(map).map_err(io::Error::other)?;
    let gone: HashSet<Peer> = gone.iter().copied().collect();
    Ok(rev_nat
        .keys()
        .filter_map(Result::ok)
        .filter_map(|key| {
            let peer = (
                Ipv4Addr::from(u32::from_be(key.address)),
                u16::from_be(key.port),
            );
            gone.contains(&peer).then_some((key.cookie, peer))
        })
        .collect())
}

/// Destroys, in the calling thread's namespace, the connected UDP sockets among `cookies`
/// whose peer is still the one the cookie was sent to.
fn destroy_in_this_namespace(cookies: &HashMap<u64, Peer>) -> io::Result<usize> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let doomed: Vec<SocketId> = udp_sockets(&mut socket)?
        .into_iter()
        .filter(|id| {
            let IpAddr::V4(address) = id.destination_address else {
                return false;
            };
            cookies.get(&cookie(id)) == Some(&(address, id.destination_port))
        })
        .collect();
    let mut closed = 0;
    for id in doomed {
        // A socket closed meanwhile is no error worth more than not counting it.
        if destroy(&mut socket, id).is_ok() {
            closed += 1;
        }
    }
    Ok(closed)
}

/// The kernel's socket cookie of a sock_diag id (two native-endian 32-bit halves, low first).
fn cookie(id: &SocketId) -> u64 {
    let [a, b, c, d, e, f, g, h] = id.cookie;
    u64::from(u32::from_ne_bytes([a, b, c, d]))
        | (u64::from(u32::from_ne_bytes([e, f, g, h])) << 32)
}

fn udp_request(socket_id: SocketId) -> SockDiagMessage {
    SockDiagMessage::InetRequest(InetRequest {
        family: AF_INET,
        protocol: IPPROTO_UDP,
        extensions: ExtensionFlags::empty(),
        states: StateFlags::all(),
        socket_id,
    })
}

fn send<T: netlink_packet_core::NetlinkSerializable + std::fmt::Debug>(
    socket: &mut Socket,
    flags: u16,
    payload: T,
) -> io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
    message.finalize();
    let mut buf = vec![0; message.buffer_len()];
    message.serialize(&mut buf);
    socket.send(&buf, 0)?;
    Ok(())
}

/// Every IPv4 UDP socket of the namespace (a sock_diag dump).
fn udp_sockets(socket: &mut Socket) -> io::Result<Vec<SocketId>> {
    send(
        socket,
        NLM_F_REQUEST | NLM_F_DUMP,
        udp_request(SocketId::new_v4()),
    )?;
    let mut found = Vec::new();
    loop {
        let (received, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset < received.len() {
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(&received[offset..])
                .map_err(io::Error::other)?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    found.push(response.header.socket_id);
                }
                NetlinkPayload::Done(_) => return Ok(found),
                NetlinkPayload::Error(err) => {
                    return match err.code {
                        Some(_) => Err(io::Error::other(format!("{err:?}"))),
                        None => Ok(found),
                    };
                }
                _ => {}
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}

/// `SOCK_DESTROY` of the socket `id` names (its cookie included), waiting for the answer.
fn destroy(socket: &mut Socket, id: SocketId) -> io::Result<()> {
    send(
        socket,
        NLM_F_REQUEST | NLM_F_ACK,
        SockDiagDestroy::new(udp_request(id)),
    )?;
    let (received, _) = socket.recv_from_full()?;
    let message =
        NetlinkMessage::<SockDiagMessage>::deserialize(&received).map_err(io::Error::other)?;
    match message.payload {
        NetlinkPayload::Error(err) if err.code.is_some() => {
            Err(io::Error::other(format!("{err:?}")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sock_diag_cookie_is_the_kernel_cookie_in_two_native_halves() {
        let kernel_cookie: u64 = 0x0000_0001_0000_2a2b;
        let low = (kernel_cookie as u32).to_ne_bytes();
        let high = ((kernel_cookie >> 32) as u32).to_ne_bytes();
        let mut id = SocketId::new_v4();
        id.cookie = [
            low[0], low[1], low[2], low[3], high[0], high[1], high[2], high[3],
        ];
        assert_eq!(cookie(&id), kernel_cookie);
    }
}

//! Map key and value types shared between the eBPF programs and `skiff-node`'s proxy.
//!
//! The layout is fixed (`#[repr(C)]`) because the kernel side and the user side read the
//! same bytes. The programs themselves arrive with the Service proxy.
#![no_std]

/// A Service frontend: ClusterIP and port, both in network byte order, as the
/// connect4 hook sees them in `bpf_sock_addr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// IPv4 address, network byte order.
    pub address: u32,
    /// Port, network byte order, in the low 16 bits.
    pub port: u16,
    /// IP protocol number (6 = TCP, 17 = UDP).
    pub protocol: u8,
    /// Padding; always zero so keys hash alike.
    pub pad: u8,
}

/// One backend endpoint: pod IP and target port, network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backend {
    /// IPv4 address, network byte order.
    pub address: u32,
    /// Port, network byte order.
    pub port: u16,
    /// Padding; always zero.
    pub pad: u16,
}

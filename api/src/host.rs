//! Facts of the machine a component runs on.

use std::ffi::CStr;
use std::net::Ipv4Addr;

/// The machine's hostname, lowercased (the default node name, a leader candidate's name).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| String::from("localhost"))
}

/// The machine's address for others (a node's InternalIP, where the API server is reached
/// from pods): the first IPv4 address of an interface that is up and neither loopback nor one
/// of Docker's or skiff's own (bridges, veths).
pub fn internal_ipv4() -> Option<Ipv4Addr> {
    let mut found = None;
    // SAFETY: getifaddrs allocates a list we only read and then free with freeifaddrs.
    unsafe {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut list) != 0 {
            return None;
        }
        let mut entry = list;
        while !entry.is_null() {
            let ifa = &*entry;
            entry = ifa.ifa_next;
            if ifa.ifa_addr.is_null()
                || i32::from((*ifa.ifa_addr).sa_family) != libc::AF_INET
                || ifa.ifa_flags & (libc::IFF_UP as u32) == 0
                || ifa.ifa_flags & (libc::IFF_LOOPBACK as u32) != 0
            {
                continue;
            }
            let name = CStr::from_ptr(ifa.ifa_name).to_string_lossy();
            if ["docker", "br-", "veth", "skiff"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                continue;
            }
            let addr = &*(ifa.ifa_addr as *const libc::sockaddr_in);
            found = Some(Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)));
            break;
        }
        libc::freeifaddrs(list);
    }
    found
}

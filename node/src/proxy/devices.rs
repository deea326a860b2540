//! The devices NodePort traffic from outside the node arrives on: those that carry the node's
//! addresses (Cilium's `--devices` auto-detection, narrowed to the NodePort addresses), unless
//! `--devices` names them. Loopback is never one: what arrives there comes from this host,
//! whose sockets the cgroup programs translate.

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::net::Ipv4Addr;

/// The names of the non-loopback interfaces that have one of `addresses`, sorted.
pub fn with_addresses(addresses: &[Ipv4Addr]) -> std::io::Result<Vec<String>> {
    let mut found = BTreeSet::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifaddr = unsafe { &*entry };
        entry = ifaddr.ifa_next;
        if ifaddr.ifa_addr.is_null()
            || ifaddr.ifa_flags & libc::IFF_LOOPBACK as libc::c_uint != 0
            // SAFETY: a non-null sockaddr of the entry.
            || i32::from(unsafe { (*ifaddr.ifa_addr).sa_family }) != libc::AF_INET
        {
            continue;
        }
        // SAFETY: an AF_INET address is a sockaddr_in.
        let address = unsafe { &*ifaddr.ifa_addr.cast::<libc::sockaddr_in>() };
        let address = Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr));
        if addresses.contains(&address) {
            // SAFETY: the entry's NUL-terminated name.
            let name = unsafe { CStr::from_ptr(ifaddr.ifa_name) };
            found.insert(name.to_string_lossy().into_owned());
        }
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_never_a_nodeport_device() {
        let devices = with_addresses(&[Ipv4Addr::LOCALHOST]).expect("getifaddrs");
        assert!(devices.is_empty(), "{devices:?}");
    }
}

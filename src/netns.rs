//! Network namespaces a test makes on this machine, joined to the host by veth pairs, for
//! what crosses a network: a host outside the node, or a master an agent can be cut off from.
//!
//! A namespace has no default route: it talks only to the host ends of its links, so nothing
//! it sends can leave the machine (DESIGN.md, "Network safety"). [`NetworkNamespace::block`]
//! drops every packet on one link inside the namespace (a black hole: no reset, no ICMP
//! error), [`NetworkNamespace::unblock`] lets them through again. Dropping the value removes
//! the namespace and its links.

use std::os::fd::AsRawFd;
use std::process::Command;

use anyhow::{Context, bail};

/// A network namespace of this machine, removed with its links when dropped.
pub struct NetworkNamespace {
    name: String,
    /// The host ends of the links (`<device>0`).
    host_devices: Vec<String>,
}

/// One veth pair between the host and a [`NetworkNamespace`]: `<device>0` on the host with
/// `10.<subnet>.0.1/24`, `<device>1` in the namespace with `10.<subnet>.0.2/24`.
#[derive(Clone, Debug)]
pub struct Link {
    /// The namespace's end.
    pub device: String,
    /// The host's address on the link.
    pub host_ip: String,
    /// The namespace's address on the link.
    pub inside_ip: String,
}

impl NetworkNamespace {
    /// Makes namespace `name` (removing a leftover of that name first) with loopback up.
    pub fn create(name: &str) -> anyhow::Result<NetworkNamespace> {
        remove_namespace(name);
        ip(&["netns", "add", name])?;
        let namespace = NetworkNamespace {
            name: name.to_owned(),
            host_devices: Vec::new(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// The namespace's name (`ip netns exec <name>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Joins the namespace to the host with a veth pair on `10.<subnet>.0.0/24`; fails when
    /// that subnet is in use on the host already.
    pub fn link(&mut self, device: &str, subnet: u8) -> anyhow::Result<Link> {
        let prefix = format!("10.{subnet}.0.");
        let addresses = Command::new("ip")
            .args(["-4", "addr", "show"])
            .output()
            .context("running ip addr show")?;
        if String::from_utf8_lossy(&addresses.stdout).contains(&format!(" {prefix}")) {
            bail!("10.{subnet}.0.0/24 is in use on this machine already");
        }
        let (host_device, device) = (format!("{device}0"), format!("{device}1"));
        let _ = Command::new("ip")
            .args(["link", "del", &host_device])
            .stderr(std::process::Stdio::null())
            .status();
        let link = Link {
            device: device.clone(),
            host_ip: format!("{prefix}1"),
            inside_ip: format!("{prefix}2"),
        };
        ip(&[
            "link",
            "add",
            &host_device,
            "type",
            "veth",
            "peer",
            "name",
            &device,
            "netns",
            &self.name,
        ])?;
        self.host_devices.push(host_device.clone());
        ip(&[
            "addr",
            "add",
            &format!("{}/24", link.host_ip),
            "dev",
            &host_device,
        ])?;
        ip(&["link", "set", &host_device, "up"])?;
        let inside = format!("{}/24", link.inside_ip);
        ip(&["-n", &self.name, "addr", "add", &inside, "dev", &device])?;
        ip(&["-n", &self.name, "link", "set", &device, "up"])?;
        Ok(link)
    }

    /// Runs `work` on a thread of its own that joins the namespace and ends with it.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    enter(&self.name)?;
                    Ok(work())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Drops every packet that arrives on or leaves by `link` inside the namespace.
    pub fn block(&self, link: &Link) -> anyhow::Result<()> {
        self.iptables("-I", link)
    }

    /// Lets `link`'s packets through again.
    pub fn unblock(&self, link: &Link) -> anyhow::Result<()> {
        self.iptables("-D", link)
    }

    fn iptables(&self, action: &str, link: &Link) -> anyhow::Result<()> {
        for (chain, direction) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.name, "iptables", action, chain])
                .args([direction, &link.device, "-j", "DROP"])
                .output()
                .context("running iptables in the namespace")?;
            if !out.status.success() {
                bail!(
                    "iptables {action} {chain} in {}: {}",
                    self.name,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(())
    }
}

impl Drop for NetworkNamespace {
    fn drop(&mut self) {
        remove_namespace(&self.name);
        for device in &self.host_devices {
            let _ = Command::new("ip")
                .args(["link", "del", device])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Moves the calling thread (only it: setns is per thread) into namespace `name`; a thread
/// of its own should do this, and end there.
pub fn enter(name: &str) -> anyhow::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{name}"))
        .with_context(|| format!("opening namespace {name}"))?;
    // SAFETY: setns on this thread only, with an open namespace file.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns into {name}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// `ip netns del name`, quietly (it may not exist); its veth pairs go with it.
fn remove_namespace(name: &str) {
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stderr(std::process::Stdio::null())
        .status();
}

/// Runs `ip args` (iproute2), failing with its message.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

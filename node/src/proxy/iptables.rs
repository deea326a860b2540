//! kube-proxy's iptables mode, as `iptables-restore` input. Pure: the frontends each Service
//! wants ([`super::frontends::service_frontends`]) in, the text that makes the kernel do it
//! out; running it is [`super::iptables_restore`]'s job.
//!
//! The layout is kube-proxy's (`pkg/proxy/iptables/proxier.go`):
//! - nat `KUBE-SERVICES`, jumped to from `PREROUTING` (pods, other hosts) and `OUTPUT` (this
//!   host): one rule per frontend with backends, `-d <address>/32 -p <proto> --dport <port>`,
//!   to that frontend's `KUBE-SVC-<hash>`;
//! - `KUBE-SVC-<hash>`: traffic to a ClusterIP from outside the cluster CIDR (the host's
//!   own) and all NodePort traffic is marked for masquerading (`KUBE-MARK-MASQ`); with
//!   `sessionAffinity: ClientIP` a `-m recent --rcheck` rule per backend sends a recent
//!   client back to its backend; then backend i of n is picked with
//!   `-m statistic --mode random --probability 1/(n-i)` (the last one unconditionally), so
//!   each gets 1/n;
//! - `KUBE-SEP-<hash>` per backend: a pod reaching itself through its Service is marked for
//!   masquerading (hairpin), then DNAT to the pod (and `-m recent --set` with affinity);
//! - `KUBE-POSTROUTING`, jumped to from nat `POSTROUTING`, masquerades marked packets;
//! - filter `KUBE-SERVICES`, jumped to from `INPUT`, `FORWARD` and `OUTPUT` for new
//!   connections: a frontend without backends is `REJECT`ed (icmp-port-unreachable, which a
//!   connect reports as ECONNREFUSED);
//! - filter `KUBE-FIREWALL`, jumped to from `INPUT`: NodePorts on 127.0.0.1 need
//!   `route_localnet`, so packets to 127.0.0.0/8 from elsewhere are dropped (kubelet's rule).
//! - filter `KUBE-FORWARD`, jumped to from `FORWARD`: what the nat rules marked, and the
//!   rest of its connections, is forwarded (the host's policy may drop new flows into a pod
//!   bridge, as Docker's does).
//!
//! Where skiff differs: NodePort frontends are explicit (each node address and nodePort, as
//! `service_frontends` gives them), so they are plain `-d <address>/32 --dport` rules in
//! `KUBE-SERVICES` with a `KUBE-SVC` chain of their own instead of a `KUBE-NODEPORTS` chain;
//! all NodePort traffic is masqueraded (kube-proxy's `externalTrafficPolicy: Cluster`; with
//! `Local` it keeps the client's address). And several agents may share one machine
//! (`cargo xtask run --nodes N`), so every chain is the node's own: the fixed chains carry a
//! tag of the node name (`KUBE-SERVICES-<tag>`), and the hash behind `KUBE-SVC-`/`KUBE-SEP-`
//! includes it. Each agent programs every Service; the first `KUBE-SERVICES` jump that
//! matches translates (DNAT ends the nat walk), so one agent stopping or cleaning up takes
//! nothing from the others.
//!
//! Syncs are kube-proxy's: a full one at start writes every chain and deletes the node's
//! chains no Service wants (`-X`); then each change flushes and rewrites only the changed
//! Services' chains, deletes their chains that are gone, and rewrites `KUBE-SERVICES` (both
//! tables), all in one `iptables-restore --noflush` transaction.

use data_encoding::BASE32;
use ipnet::Ipv4Net;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::frontends::{BackendAddress, Balancing, Frontend, Protocol};
use super::table::ServiceName;

/// The most chains one restore input declares, about. iptables-nft's `iptables-restore
/// --noflush` (1.8.9) takes time quadratic in the chains one input touches: 1,000 Services of
/// 10 endpoints (11,000 chains) took 17 s as one input here, 10,000 would take most of an
/// hour; 10,000 Services took 49 s in inputs of 5,500 chains, 25 s of 2,200, 17 s of 1,000.
/// So a full sync goes in batches of whole Services, each input consistent on its own.
pub const CHAINS_PER_RESTORE: usize = 1_000;

/// What one Service wants: its frontends and what each should do.
pub type Wanted = BTreeMap<Frontend, Balancing>;

/// The packet mark bit that asks `KUBE-POSTROUTING` to masquerade (kube-proxy's).
pub const MASQUERADE_MARK: &str = "0x4000";

/// The tables skiff writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Nat,
    Filter,
}

impl Table {
    /// The name `iptables -t` takes.
    pub fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

/// The names of one node's chains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chains {
    node: String,
    tag: String,
}

impl Chains {
    /// The chains of node `node`.
    pub fn new(node: &str) -> Self {
        Chains {
            node: node.to_owned(),
            tag: hash(node, 8),
        }
    }

    /// `KUBE-SERVICES-<tag>` (nat and filter).
    pub fn services(&self) -> String {
        format!("KUBE-SERVICES-{}", self.tag)
    }

    /// `KUBE-MARK-MASQ-<tag>` (nat).
    pub fn mark_masq(&self) -> String {
        format!("KUBE-MARK-MASQ-{}", self.tag)
    }

    /// `KUBE-POSTROUTING-<tag>` (nat).
    pub fn postrouting(&self) -> String {
        format!("KUBE-POSTROUTING-{}", self.tag)
    }

    /// `KUBE-FIREWALL-<tag>` (filter).
    pub fn firewall(&self) -> String {
        format!("KUBE-FIREWALL-{}", self.tag)
    }

    /// `KUBE-FORWARD-<tag>` (filter).
    pub fn forward(&self) -> String {
        format!("KUBE-FORWARD-{}", self.tag)
    }

    /// `KUBE-SVC-<hash>`: the chain that picks a backend for `frontend` of `service`.
    pub fn service(&self, service: &ServiceName, frontend: &Frontend) -> String {
        format!(
            "KUBE-SVC-{}",
            hash(
                &format!("{}{}", self.node, frontend_key(service, frontend)),
                16
            )
        )
    }

    /// `KUBE-SEP-<hash>`: the chain that sends `frontend`'s traffic to `backend`.
    pub fn endpoint(
        &self,
        service: &ServiceName,
        frontend: &Frontend,
        backend: &BackendAddress,
    ) -> String {
        let key = format!(
            "{}{}{}:{}",
            self.node,
            frontend_key(service, frontend),
            backend.address,
            backend.port
        );
        format!("KUBE-SEP-{}", hash(&key, 16))
    }

    /// The chains every other chain of the node's hangs off, per table.
    pub fn roots(&self, table: Table) -> Vec<String> {
        match table {
            Table::Nat => vec![self.services(), self.mark_masq(), self.postrouting()],
            Table::Filter => vec![self.services(), self.firewall(), self.forward()],
        }
    }

    /// The rules in the built-in chains that jump to the node's chains (kube-proxy inserts
    /// them first in their chains).
    pub fn jumps(&self) -> Vec<Jump> {
        let portals = format!("skiff node {} service portals", self.node);
        let jump = |table, chain, conntrack: bool, comment: &str, target: String| {
            let mut rule = Vec::new();
            if conntrack {
                rule.extend(["-m", "conntrack", "--ctstate", "NEW"].map(String::from));
            }
            rule.extend(["-m", "comment", "--comment", comment, "-j"].map(String::from));
            rule.push(target);
            Jump { table, chain, rule }
        };
        vec![
            jump(Table::Nat, "PREROUTING", false, &portals, self.services()),
            jump(Table::Nat, "OUTPUT", false, &portals, self.services()),
            jump(
                Table::Nat,
                "POSTROUTING",
                false,
                &format!("skiff node {} postrouting rules", self.node),
                self.postrouting(),
            ),
            jump(Table::Filter, "INPUT", true, &portals, self.services()),
            jump(Table::Filter, "FORWARD", true, &portals, self.services()),
            jump(
                Table::Filter,
                "FORWARD",
                false,
                &format!("skiff node {} forwarding rules", self.node),
                self.forward(),
            ),
            jump(Table::Filter, "OUTPUT", true, &portals, self.services()),
            jump(
                Table::Filter,
                "INPUT",
                false,
                &format!("skiff node {} firewall", self.node),
                self.firewall(),
            ),
        ]
    }
}

/// A rule in a built-in chain: `iptables -t <table> -I <chain> <rule...>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jump {
    pub table: Table,
    pub chain: &'static str,
    pub rule: Vec<String>,
}

/// kube-proxy's chain hash: the first `len` characters of the base32 of sha256(`text`).
fn hash(text: &str, len: usize) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut encoded = BASE32.encode(digest.as_ref());
    encoded.truncate(len);
    encoded
}

/// The stable string a frontend's chains are named after.
fn frontend_key(service: &ServiceName, frontend: &Frontend) -> String {
    format!("{}/{}{}", service.0, service.1, describe_frontend(frontend))
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

fn describe_frontend(frontend: &Frontend) -> String {
    format!(
        "{}:{}/{}",
        frontend.address,
        frontend.port,
        protocol_name(frontend.protocol)
    )
}

/// `-d <address>/32 -p <proto> -m <proto> --dport <port>`.
fn match_frontend(frontend: &Frontend) -> String {
    let protocol = protocol_name(frontend.protocol);
    format!(
        "-d {}/32 -p {protocol} -m {protocol} --dport {}",
        frontend.address, frontend.port
    )
}

/// The restore input for one table: chains declared (created, or flushed if they exist),
/// rules appended, chains deleted.
#[derive(Default)]
struct Section {
    declared: Vec<String>,
    rules: String,
    deleted: Vec<String>,
}

impl Section {
    fn declare(&mut self, chain: String) {
        self.declared.push(chain);
    }

    fn rule(&mut self, chain: &str, rule: std::fmt::Arguments<'_>) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.rules, "-A {chain} {rule}");
    }

    fn render(&self, table: Table, out: &mut String) {
        let _ = writeln!(out, "*{}", table.name());
        for chain in self.declared.iter().chain(&self.deleted) {
            let _ = writeln!(out, ":{chain} - [0:0]");
        }
        out.push_str(&self.rules);
        for chain in &self.deleted {
            let _ = writeln!(out, "-X {chain}");
        }
        out.push_str("COMMIT\n");
    }
}

fn render(filter: &Section, nat: &Section) -> String {
    let mut out = String::with_capacity(filter.rules.len() + nat.rules.len() + 4096);
    filter.render(Table::Filter, &mut out);
    nat.render(Table::Nat, &mut out);
    out
}

/// What the node's rules say, and the restore input that changes them.
#[derive(Debug)]
pub struct Rules {
    chains: Chains,
    /// Traffic to a ClusterIP from outside it is masqueraded (the host's own).
    cluster_cidr: Ipv4Net,
    /// Frontends in it are ClusterIPs; the rest are NodePorts.
    service_cidr: Ipv4Net,
    programmed: BTreeMap<ServiceName, Wanted>,
}

impl Rules {
    /// Nothing programmed yet, for node `node`.
    pub fn new(node: &str, cluster_cidr: Ipv4Net, service_cidr: Ipv4Net) -> Self {
        Rules {
            chains: Chains::new(node),
            cluster_cidr,
            service_cidr,
            programmed: BTreeMap::new(),
        }
    }

    pub fn chains(&self) -> &Chains {
        &self.chains
    }

    /// How many frontends are programmed (with backends or not).
    pub fn frontend_count(&self) -> usize {
        self.programmed.values().map(BTreeMap::len).sum()
    }

    /// A full sync: every chain for `services` (the only Services there are), and `-X` for
    /// the chains in `live` (the node's chains found in the kernel, both tables) that none of
    /// them wants. Several inputs, restored in turn (see [`CHAINS_PER_RESTORE`]).
    pub fn full_sync(
        &mut self,
        services: impl IntoIterator<Item = (ServiceName, Wanted)>,
        live: &BTreeSet<String>,
    ) -> Vec<String> {
        self.programmed = services
            .into_iter()
            .filter(|(_, wanted)| !wanted.is_empty())
            .collect();
        self.resync(live)
    }

    /// A full sync of what is programmed already (after a restore failed), `-X` for the
    /// chains in `live` no Service wants. Each input leaves the rules consistent: a batch of
    /// whole Services' chains (created, or flushed and rewritten), the fixed chains in the
    /// first; then both `KUBE-SERVICES`, which name only chains that exist by then; then the
    /// chains no longer wanted go.
    pub fn resync(&self, live: &BTreeSet<String>) -> Vec<String> {
        let mut inputs = Vec::new();
        let (mut filter, mut nat) = (Section::default(), Section::default());
        self.write_fixed_chains(&mut filter, &mut nat);
        let mut wanted = BTreeSet::new();
        for (name, frontends) in &self.programmed {
            if nat.declared.len() >= CHAINS_PER_RESTORE {
                inputs.push(render(&filter, &nat));
                (filter, nat) = (Section::default(), Section::default());
            }
            for (frontend, balancing) in frontends {
                wanted.extend(self.frontend_chains(&mut nat, name, frontend, balancing));
            }
        }
        inputs.push(render(&filter, &nat));
        let fixed: BTreeSet<String> = self
            .chains
            .roots(Table::Nat)
            .into_iter()
            .chain(self.chains.roots(Table::Filter))
            .collect();
        let stale: BTreeSet<String> = live
            .iter()
            .filter(|chain| !wanted.contains(*chain) && !fixed.contains(*chain))
            .cloned()
            .collect();
        let (mut filter, mut nat) = (Section::default(), Section::default());
        self.write_services(&mut filter, &mut nat);
        if stale.len() <= CHAINS_PER_RESTORE {
            nat.deleted = stale.into_iter().collect();
            inputs.push(render(&filter, &nat));
        } else {
            inputs.push(render(&filter, &nat));
            inputs.extend(delete_chains(Table::Nat, &stale));
        }
        inputs
    }

    /// The UDP flows that `changed` takes a backend from: (frontend, the backend's address),
    /// whose conntrack entries would keep sending a client's datagrams to it (kube-proxy
    /// clears them, `conntrack -D`). Read before [`Rules::update`] takes `changed` in.
    pub fn stale_udp_flows(&self, changed: &[(ServiceName, Wanted)]) -> Vec<(Frontend, Ipv4Addr)> {
        let mut stale = BTreeSet::new();
        for (name, wanted) in changed {
            let Some(old) = self.programmed.get(name) else {
                continue;
            };
            for (frontend, balancing) in old {
                if frontend.protocol != Protocol::Udp {
                    continue;
                }
                let now = wanted
                    .get(frontend)
                    .map(|b| b.backends.as_slice())
                    .unwrap_or(&[]);
                for backend in &balancing.backends {
                    if !now.iter().any(|b| b.address == backend.address) {
                        stale.insert((*frontend, backend.address));
                    }
                }
            }
        }
        stale.into_iter().collect()
    }

    /// Whether `frontend` is a ClusterIP (else a NodePort).
    pub fn is_cluster_ip(&self, frontend: &Frontend) -> bool {
        self.service_cidr.contains(&frontend.address)
    }

    /// A partial sync for the Services in `changed` (each with what it wants now; empty when
    /// it is gone): their changed frontends' chains flushed and rewritten, their chains no
    /// longer wanted deleted, and both `KUBE-SERVICES` rewritten. `None` when none of them
    /// changed.
    pub fn update(
        &mut self,
        changed: impl IntoIterator<Item = (ServiceName, Wanted)>,
    ) -> Option<String> {
        let (filter, mut nat) = (Section::default(), Section::default());
        let mut any = false;
        for (name, wanted) in changed {
            let old = self.programmed.remove(&name).unwrap_or_default();
            if old == wanted {
                if !wanted.is_empty() {
                    self.programmed.insert(name, wanted);
                }
                continue;
            }
            any = true;
            let mut kept = BTreeSet::new();
            for (frontend, balancing) in &wanted {
                if old.get(frontend) == Some(balancing) {
                    kept.extend(self.chain_names(&name, frontend, balancing));
                } else {
                    kept.extend(self.frontend_chains(&mut nat, &name, frontend, balancing));
                }
            }
            for (frontend, balancing) in &old {
                nat.deleted.extend(
                    self.chain_names(&name, frontend, balancing)
                        .into_iter()
                        .filter(|chain| !kept.contains(chain)),
                );
            }
            if !wanted.is_empty() {
                self.programmed.insert(name, wanted);
            }
        }
        if !any {
            return None;
        }
        let mut filter = filter;
        self.write_services(&mut filter, &mut nat);
        Some(render(&filter, &nat))
    }

    /// The chains `frontend` has (none without backends).
    fn chain_names(
        &self,
        service: &ServiceName,
        frontend: &Frontend,
        balancing: &Balancing,
    ) -> Vec<String> {
        if balancing.backends.is_empty() {
            return Vec::new();
        }
        std::iter::once(self.chains.service(service, frontend))
            .chain(
                balancing
                    .backends
                    .iter()
                    .map(|backend| self.chains.endpoint(service, frontend, backend)),
            )
            .collect()
    }

    /// Declares and fills `frontend`'s `KUBE-SVC` and `KUBE-SEP` chains; returns their names.
    fn frontend_chains(
        &self,
        nat: &mut Section,
        service: &ServiceName,
        frontend: &Frontend,
        balancing: &Balancing,
    ) -> Vec<String> {
        let names = self.chain_names(service, frontend, balancing);
        let Some((svc, endpoints)) = names.split_first() else {
            return names;
        };
        let mark = self.chains.mark_masq();
        nat.declare(svc.clone());
        if self.service_cidr.contains(&frontend.address) {
            // The host's own traffic (and any from outside the cluster) needs a source the pod
            // can answer.
            nat.rule(
                svc,
                format_args!(
                    "! -s {} {} -j {mark}",
                    self.cluster_cidr.trunc(),
                    match_frontend(frontend)
                ),
            );
        } else {
            nat.rule(svc, format_args!("-j {mark}"));
        }
        if let Some(seconds) = balancing.affinity_timeout_s {
            for sep in endpoints {
                nat.rule(
                    svc,
                    format_args!(
                        "-m recent --name {sep} --rcheck --seconds {seconds} --reap -j {sep}"
                    ),
                );
            }
        }
        let n = endpoints.len();
        for (i, sep) in endpoints.iter().enumerate() {
            if i + 1 < n {
                nat.rule(
                    svc,
                    format_args!(
                        "-m statistic --mode random --probability {:.10} -j {sep}",
                        1.0 / (n - i) as f64
                    ),
                );
            } else {
                nat.rule(svc, format_args!("-j {sep}"));
            }
        }
        let protocol = protocol_name(frontend.protocol);
        for (sep, backend) in endpoints.iter().zip(&balancing.backends) {
            nat.declare(sep.clone());
            nat.rule(sep, format_args!("-s {}/32 -j {mark}", backend.address));
            let recent = if balancing.affinity_timeout_s.is_some() {
                format!("-m recent --name {sep} --set ")
            } else {
                String::new()
            };
            nat.rule(
                sep,
                format_args!(
                    "-p {protocol} {recent}-m {protocol} -j DNAT --to-destination {}:{}",
                    backend.address, backend.port
                ),
            );
        }
        names
    }

    /// Both `KUBE-SERVICES`, from everything programmed.
    fn write_services(&self, filter: &mut Section, nat: &mut Section) {
        let chain = self.chains.services();
        filter.declare(chain.clone());
        nat.declare(chain.clone());
        for (name, frontends) in &self.programmed {
            for (frontend, balancing) in frontends {
                let comment = format!("{}/{} {}", name.0, name.1, describe_frontend(frontend));
                if balancing.backends.is_empty() {
                    filter.rule(
                        &chain,
                        format_args!(
                            "-m comment --comment \"{comment} has no endpoints\" {} -j REJECT",
                            match_frontend(frontend)
                        ),
                    );
                } else {
                    nat.rule(
                        &chain,
                        format_args!(
                            "-m comment --comment \"{comment}\" {} -j {}",
                            match_frontend(frontend),
                            self.chains.service(name, frontend)
                        ),
                    );
                }
            }
        }
    }

    /// `KUBE-MARK-MASQ`, `KUBE-POSTROUTING`, `KUBE-FIREWALL` and `KUBE-FORWARD`.
    fn write_fixed_chains(&self, filter: &mut Section, nat: &mut Section) {
        let mark = self.chains.mark_masq();
        nat.declare(mark.clone());
        nat.rule(&mark, format_args!("-j MARK --or-mark {MASQUERADE_MARK}"));
        let post = self.chains.postrouting();
        nat.declare(post.clone());
        nat.rule(
            &post,
            format_args!("-m mark ! --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j RETURN"),
        );
        nat.rule(&post, format_args!("-j MARK --xor-mark {MASQUERADE_MARK}"));
        nat.rule(
            &post,
            format_args!(
                "-m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully"
            ),
        );
        let firewall = self.chains.firewall();
        filter.declare(firewall.clone());
        filter.rule(
            &firewall,
            format_args!(
                "! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
            ),
        );
        // What the nat rules translated and marked is forwarded to the pods (the host's
        // policy, Docker's among them, may drop other new flows into a bridge).
        let forward = self.chains.forward();
        filter.declare(forward.clone());
        filter.rule(
            &forward,
            format_args!(
                "-m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j ACCEPT"
            ),
        );
        filter.rule(
            &forward,
            format_args!(
                "-m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
            ),
        );
    }
}

/// The chains `iptables-save` output `save` (one table) declares that are reachable from
/// `roots` through `-j`/`-g` targets: a node's chains, found by its fixed ones.
pub fn reachable_chains(save: &str, roots: &[String]) -> BTreeSet<String> {
    let mut declared = BTreeSet::new();
    let mut targets: HashMap<&str, Vec<&str>> = HashMap::new();
    for line in save.lines() {
        if let Some(chain) = line.strip_prefix(':') {
            if let Some(name) = chain.split_whitespace().next() {
                declared.insert(name);
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let mut words = rule.split_whitespace();
            let Some(chain) = words.next() else { continue };
            while let Some(word) = words.next() {
                if (word == "-j" || word == "-g")
                    && let Some(target) = words.next()
                {
                    targets.entry(chain).or_default().push(target);
                }
            }
        }
    }
    let mut found = BTreeSet::new();
    let mut queue: Vec<&str> = roots
        .iter()
        .map(String::as_str)
        .filter(|root| declared.contains(root))
        .collect();
    while let Some(chain) = queue.pop() {
        if !found.insert(chain.to_owned()) {
            continue;
        }
        for target in targets.get(chain).into_iter().flatten() {
            if declared.contains(target) && !found.contains(*target) {
                queue.push(target);
            }
        }
    }
    found
}

/// The restore inputs that delete `chains` from `table`, in turn: all flushed first (they
/// may refer to each other), then deleted, at most [`CHAINS_PER_RESTORE`] a time. The jumps
/// to them from chains not among them must be gone already.
pub fn delete_chains(table: Table, chains: &BTreeSet<String>) -> Vec<String> {
    let chains: Vec<String> = chains.iter().cloned().collect();
    let input = |section: Section| {
        let mut out = String::new();
        section.render(table, &mut out);
        out
    };
    if chains.len() <= CHAINS_PER_RESTORE {
        return vec![input(Section {
            deleted: chains,
            ..Default::default()
        })];
    }
    let flushes = chains.chunks(CHAINS_PER_RESTORE).map(|batch| {
        input(Section {
            declared: batch.to_vec(),
            ..Default::default()
        })
    });
    let deletes = chains.chunks(CHAINS_PER_RESTORE).map(|batch| {
        input(Section {
            deleted: batch.to_vec(),
            ..Default::default()
        })
    });
    flushes.chain(deletes).collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const NODE: &str = "node-a";

    fn rules() -> Rules {
        Rules::new(
            NODE,
            "10.244.0.0/16".parse().unwrap(),
            "10.96.0.0/12".parse().unwrap(),
        )
    }

    fn name(service: &str) -> ServiceName {
        (String::from("default"), service.to_owned())
    }

    fn tcp(address: [u8; 4], port: u16) -> Frontend {
        Frontend {
            address: Ipv4Addr::from(address),
            port,
            protocol: Protocol::Tcp,
        }
    }

    fn backends(count: u8, port: u16) -> Vec<BackendAddress> {
        (1..=count)
            .map(|i| BackendAddress {
                address: Ipv4Addr::new(10, 244, 0, i),
                port,
                protocol: Protocol::Tcp,
            })
            .collect()
    }

    fn wanted(frontend: Frontend, backends: Vec<BackendAddress>, affinity: Option<u32>) -> Wanted {
        BTreeMap::from([(
            frontend,
            Balancing {
                backends,
                affinity_timeout_s: affinity,
                node_port: false,
            },
        )])
    }

    /// The kernel's rules as the restore inputs applied in turn leave them (with
    /// `--noflush`): chain -> rules.
    #[derive(Default)]
    struct Kernel {
        tables: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    }

    impl Kernel {
        fn restore_all(&mut self, inputs: &[String]) {
            for input in inputs {
                self.restore(input);
            }
        }

        fn restore(&mut self, input: &str) {
            let mut table = String::new();
            for line in input.lines() {
                if let Some(name) = line.strip_prefix('*') {
                    table = name.to_owned();
                } else if let Some(chain) = line.strip_prefix(':') {
                    let chain = chain.split_whitespace().next().unwrap().to_owned();
                    self.tables
                        .entry(table.clone())
                        .or_default()
                        .insert(chain, Vec::new());
                } else if let Some(rule) = line.strip_prefix("-A ") {
                    let (chain, rule) = rule.split_once(' ').unwrap();
                    self.tables
                        .get_mut(&table)
                        .and_then(|t| t.get_mut(chain))
                        .unwrap_or_else(|| panic!("rule for undeclared chain {chain}"))
                        .push(rule.to_owned());
                } else if let Some(chain) = line.strip_prefix("-X ") {
                    let t = self.tables.get_mut(&table).unwrap();
                    assert!(
                        t.iter()
                            .filter(|(name, _)| name.as_str() != chain)
                            .all(|(_, rules)| !rules
                                .iter()
                                .any(|r| r.ends_with(&format!("-j {chain}")))),
                        "{chain} is deleted while a rule jumps to it"
                    );
                    assert!(t.remove(chain).is_some(), "-X of unknown chain {chain}");
                } else {
                    assert_eq!(line, "COMMIT");
                }
            }
        }

        fn chain(&self, table: &str, chain: &str) -> &[String] {
            self.tables
                .get(table)
                .and_then(|t| t.get(chain))
                .map(Vec::as_slice)
                .unwrap_or_default()
        }

        fn chain_names(&self, table: &str) -> BTreeSet<String> {
            self.tables
                .get(table)
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default()
        }

        /// Where a new connection from `source` to `frontend` goes: each DNAT destination with
        /// its probability, `REJECT` when refused, `ACCEPT` when no rule takes it; and
        /// whether it is masqueraded.
        fn walk(&self, chains: &Chains, source: Ipv4Addr, frontend: &Frontend) -> Walk {
            let mut walk = Walk::default();
            for rule in self.chain("filter", &chains.services()) {
                if matches_frontend(rule, frontend) && rule.ends_with("-j REJECT") {
                    walk.outcomes.insert(String::from("REJECT"), 1.0);
                    return walk;
                }
            }
            let target = self
                .chain("nat", &chains.services())
                .iter()
                .find(|rule| matches_frontend(rule, frontend))
                .map(|rule| rule.rsplit(' ').next().unwrap().to_owned());
            let Some(svc) = target else {
                walk.outcomes.insert(String::from("ACCEPT"), 1.0);
                return walk;
            };
            let mut left = 1.0;
            for rule in self.chain("nat", &svc) {
                let target = rule.rsplit(' ').next().unwrap();
                if target == chains.mark_masq() {
                    let excluded = rule
                        .strip_prefix("! -s ")
                        .and_then(|r| r.split(' ').next())
                        .map(|cidr| cidr.parse::<Ipv4Net>().unwrap().contains(&source));
                    walk.masqueraded |= excluded != Some(true);
                    continue;
                }
                if rule.contains("--rcheck") {
                    continue;
                }
                let p = match rule.split_once("--probability ") {
                    Some((_, rest)) => rest.split(' ').next().unwrap().parse::<f64>().unwrap(),
                    None => 1.0,
                };
                let taken = left * p;
                left -= taken;
                let sep = self.chain("nat", target);
                for rule in sep {
                    if let Some(to) = rule.split_once("--to-destination ") {
                        *walk.outcomes.entry(to.1.to_owned()).or_default() += taken;
                    } else if rule.starts_with(&format!("-s {source}/32 ")) {
                        walk.hairpin = true;
                        walk.masqueraded = true;
                    }
                }
            }
            walk
        }
    }

    #[derive(Default, Debug)]
    struct Walk {
        outcomes: BTreeMap<String, f64>,
        masqueraded: bool,
        hairpin: bool,
    }

    fn matches_frontend(rule: &str, frontend: &Frontend) -> bool {
        rule.contains(&format!("{} ", match_frontend(frontend)))
            || rule.ends_with(&match_frontend(frontend))
    }

    #[test]
    fn chain_names_are_kube_proxy_shaped_stable_and_per_node() {
        let chains = Chains::new(NODE);
        let svc = chains.service(&name("web"), &tcp([10, 96, 0, 10], 80));
        assert!(svc.starts_with("KUBE-SVC-") && svc.len() == 25, "{svc}");
        assert!(
            svc[9..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        );
        assert_eq!(
            svc,
            Chains::new(NODE).service(&name("web"), &tcp([10, 96, 0, 10], 80))
        );
        assert_ne!(
            svc,
            Chains::new("node-b").service(&name("web"), &tcp([10, 96, 0, 10], 80))
        );
        assert_ne!(svc, chains.service(&name("web"), &tcp([10, 96, 0, 10], 81)));
        assert_ne!(chains.services(), Chains::new("node-b").services());
        for chain in [
            chains.services(),
            chains.postrouting(),
            chains.mark_masq(),
            chains.firewall(),
        ] {
            assert!(
                chain.len() <= 28,
                "iptables chain names are at most 28 characters: {chain}"
            );
        }
    }

    #[test]
    fn a_udp_backend_taken_away_names_its_flows_to_clear_and_tcp_or_kept_ones_do_not() {
        let mut rules = rules();
        let udp = |address: [u8; 4], port| Frontend {
            protocol: Protocol::Udp,
            ..tcp(address, port)
        };
        let udp_backends = |count| -> Vec<BackendAddress> {
            backends(count, 5353)
                .into_iter()
                .map(|b| BackendAddress {
                    protocol: Protocol::Udp,
                    ..b
                })
                .collect()
        };
        let (dns, node_port, web) = (
            udp([10, 96, 0, 10], 53),
            udp([192, 168, 1, 5], 30053),
            tcp([10, 96, 0, 11], 80),
        );
        let mut before = wanted(dns, udp_backends(3), None);
        before.extend(wanted(node_port, udp_backends(3), None));
        let _ = rules.full_sync(
            [
                (name("dns"), before),
                (name("web"), wanted(web, backends(3, 8080), None)),
            ],
            &BTreeSet::new(),
        );
        let mut after = wanted(dns, udp_backends(1), None);
        after.extend(wanted(node_port, udp_backends(1), None));
        let changed = vec![
            (name("dns"), after),
            (name("web"), wanted(web, backends(1, 8080), None)),
        ];
        let stale = rules.stale_udp_flows(&changed);
        let expected: Vec<(Frontend, Ipv4Addr)> = [dns, node_port]
            .into_iter()
            .flat_map(|f| {
                [
                    (f, Ipv4Addr::new(10, 244, 0, 2)),
                    (f, Ipv4Addr::new(10, 244, 0, 3)),
                ]
            })
            .collect();
        assert_eq!(stale, expected);
        assert!(rules.is_cluster_ip(&dns) && !rules.is_cluster_ip(&node_port));
        // A Service that is gone takes all its flows.
        let gone = rules.stale_udp_flows(&[(name("dns"), Wanted::new())]);
        assert_eq!(gone.len(), 6);
    }

    #[test]
    fn every_frontend_has_a_chain_and_each_backend_gets_an_equal_share() {
        let mut rules = rules();
        let web = tcp([10, 96, 0, 10], 80);
        let api = tcp([10, 96, 0, 11], 443);
        let mut kernel = Kernel::default();
        kernel.restore_all(&rules.full_sync(
            [
                (name("web"), wanted(web, backends(3, 8080), None)),
                (name("api"), wanted(api, backends(7, 8443), None)),
            ],
            &BTreeSet::new(),
        ));
        for (frontend, n, port) in [(web, 3, 8080), (api, 7, 8443)] {
            let walk = kernel.walk(rules.chains(), Ipv4Addr::new(10, 244, 9, 9), &frontend);
            assert_eq!(walk.outcomes.len(), n, "{walk:?}");
            let total: f64 = walk.outcomes.values().sum();
            assert!(
                (total - 1.0).abs() < 1e-9,
                "probabilities sum to 1: {total}"
            );
            for (to, p) in &walk.outcomes {
                assert!(to.ends_with(&format!(":{port}")), "{to}");
                assert!(
                    (p - 1.0 / n as f64).abs() < 1e-9,
                    "{to} gets {p}, not 1/{n}"
                );
            }
            assert!(!walk.masqueraded, "pod to ClusterIP keeps its source");
        }
        let svc_chains: Vec<_> = kernel
            .chain_names("nat")
            .into_iter()
            .filter(|c| c.starts_with("KUBE-SVC-"))
            .collect();
        assert_eq!(svc_chains.len(), 2);
        assert_eq!(
            kernel
                .chain_names("nat")
                .iter()
                .filter(|c| c.starts_with("KUBE-SEP-"))
                .count(),
            10
        );
        assert_eq!(rules.frontend_count(), 2);
    }

    #[test]
    fn the_host_and_a_pod_reaching_itself_are_masqueraded_node_ports_always() {
        let mut rules = rules();
        let web = tcp([10, 96, 0, 10], 80);
        let node_port = tcp([127, 0, 0, 1], 30080);
        let mut frontends = wanted(web, backends(1, 8080), None);
        frontends.extend(wanted(node_port, backends(1, 8080), None));
        let mut kernel = Kernel::default();
        kernel.restore_all(&rules.full_sync([(name("web"), frontends)], &BTreeSet::new()));
        let host = kernel.walk(rules.chains(), Ipv4Addr::new(169, 254, 96, 1), &web);
        assert!(host.masqueraded, "{host:?}");
        let itself = kernel.walk(rules.chains(), Ipv4Addr::new(10, 244, 0, 1), &web);
        assert!(itself.hairpin && itself.masqueraded, "{itself:?}");
        let other_pod = kernel.walk(rules.chains(), Ipv4Addr::new(10, 244, 0, 7), &web);
        assert!(
            !other_pod.hairpin && !other_pod.masqueraded,
            "{other_pod:?}"
        );
        let via_node_port = kernel.walk(rules.chains(), Ipv4Addr::new(10, 244, 0, 7), &node_port);
        assert!(via_node_port.masqueraded, "{via_node_port:?}");
        assert_eq!(
            via_node_port.outcomes.keys().collect::<Vec<_>>(),
            ["10.244.0.1:8080"]
        );
        let post = kernel.chain("nat", &rules.chains().postrouting());
        assert!(post.iter().any(|r| r.contains("-j MASQUERADE")), "{post:?}");
        let mark = kernel.chain("nat", &rules.chains().mark_masq());
        assert_eq!(mark, [format!("-j MARK --or-mark {MASQUERADE_MARK}")]);
    }

    #[test]
    fn a_frontend_without_backends_is_rejected_in_filter_with_no_nat_rule() {
        let mut rules = rules();
        let web = tcp([10, 96, 0, 10], 80);
        let mut kernel = Kernel::default();
        kernel.restore_all(&rules.full_sync(
            [(name("web"), wanted(web, Vec::new(), None))],
            &BTreeSet::new(),
        ));
        let walk = kernel.walk(rules.chains(), Ipv4Addr::new(10, 244, 0, 9), &web);
        assert_eq!(walk.outcomes.keys().collect::<Vec<_>>(), ["REJECT"]);
        assert!(kernel.chain("nat", &rules.chains().services()).is_empty());
        assert!(
            !kernel
                .chain_names("nat")
                .iter()
                .any(|c| c.starts_with("KUBE-SVC-"))
        );
        // Endpoints come: the REJECT goes, traffic is translated.
        kernel.restore(
            &rules
                .update([(name("web"), wanted(web, backends(2, 8080), None))])
                .unwrap(),
        );
        let walk = kernel.walk(rules.chains(), Ipv4Addr::new(10, 244, 0, 9), &web);
        assert_eq!(walk.outcomes.len(), 2, "{walk:?}");
        assert!(
            kernel
                .chain("filter", &rules.chains().services())
                .is_empty()
        );
        // And go again: rejected, and the chains are deleted.
        kernel.restore(
            &rules
                .update([(name("web"), wanted(web, Vec::new(), None))])
                .unwrap(),
        );
        let walk = kernel.walk(rules.chains(), Ipv4Addr::new(10, 244, 0, 9), &web);
        assert_eq!(walk.outcomes.keys().collect::<Vec<_>>(), ["REJECT"]);
        assert!(
            !kernel
                .chain_names("nat")
                .iter()
                .any(|c| c.starts_with("KUBE-S") && *c != rules.chains().services())
        );
    }

    #[test]
    fn client_ip_affinity_checks_then_sets_a_recent_list_per_backend() {
        let mut rules = rules();
        let web = tcp([10, 96, 0, 10], 80);
        let mut kernel = Kernel::default();
        kernel.restore_all(&rules.full_sync(
            [(name("web"), wanted(web, backends(3, 8080), Some(60)))],
            &BTreeSet::new(),
        ));
        let svc = rules.chains().service(&name("web"), &web);
        let svc_rules = kernel.chain("nat", &svc);
        let checks: Vec<_> = svc_rules
            .iter()
            .filter(|r| r.contains("--rcheck"))
            .collect();
        assert_eq!(checks.len(), 3, "{svc_rules:?}");
        let first_pick = svc_rules
            .iter()
            .position(|r| r.contains("statistic"))
            .unwrap();
        assert!(
            svc_rules
                .iter()
                .rposition(|r| r.contains("--rcheck"))
                .unwrap()
                < first_pick,
            "a recent client is sent back before a new pick: {svc_rules:?}"
        );
        for check in checks {
            assert!(check.contains("--seconds 60 --reap"), "{check}");
            let sep = check.rsplit(' ').next().unwrap();
            assert!(check.contains(&format!("--name {sep} ")), "{check}");
            let dnat = kernel.chain("nat", sep).last().unwrap();
            assert!(
                dnat.contains(&format!("-m recent --name {sep} --set")),
                "{dnat}"
            );
        }
        let walk = kernel.walk(rules.chains(), Ipv4Addr::new(10, 244, 9, 9), &web);
        assert!((walk.outcomes.values().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn an_update_rewrites_only_the_changed_service_and_deletes_what_went() {
        let mut rules = rules();
        let web = tcp([10, 96, 0, 10], 80);
        let api = tcp([10, 96, 0, 11], 80);
        let mut kernel = Kernel::default();
        kernel.restore_all(&rules.full_sync(
            [
                (name("web"), wanted(web, backends(3, 8080), None)),
                (name("api"), wanted(api, backends(2, 8080), None)),
            ],
            &BTreeSet::new(),
        ));
        assert_eq!(
            rules.update([(name("web"), wanted(web, backends(3, 8080), None))]),
            None,
            "no change, no restore"
        );
        let update = rules
            .update([(name("web"), wanted(web, backends(2, 8080), None))])
            .unwrap();
        let api_svc = rules.chains().service(&name("api"), &api);
        assert!(
            !update.contains(&format!(":{api_svc} "))
                && !update.contains(&format!("-A {api_svc} ")),
            "api's chains are left alone:\n{update}"
        );
        let gone = rules
            .chains()
            .endpoint(&name("web"), &web, &backends(3, 8080)[2]);
        assert!(update.contains(&format!("-X {gone}")), "{update}");
        kernel.restore(&update);
        let walk = kernel.walk(rules.chains(), Ipv4Addr::new(10, 244, 9, 9), &web);
        assert_eq!(walk.outcomes.len(), 2, "{walk:?}");
        assert_eq!(
            kernel
                .walk(rules.chains(), Ipv4Addr::new(10, 244, 9, 9), &api)
                .outcomes
                .len(),
            2
        );
        // The Service is deleted: all its chains go, KUBE-SERVICES no longer names it.
        kernel.restore(&rules.update([(name("web"), Wanted::new())]).unwrap());
        assert_eq!(
            kernel
                .walk(rules.chains(), Ipv4Addr::new(10, 244, 9, 9), &web)
                .outcomes
                .keys()
                .collect::<Vec<_>>(),
            ["ACCEPT"]
        );
        let left: Vec<_> = kernel
            .chain_names("nat")
            .into_iter()
            .filter(|c| c.starts_with("KUBE-SVC-") || c.starts_with("KUBE-SEP-"))
            .collect();
        assert_eq!(left.len(), 3, "api's chains only: {left:?}");
        assert_eq!(rules.frontend_count(), 1);
    }

    #[test]
    fn a_full_sync_deletes_the_node_chains_no_service_wants() {
        let mut first = rules();
        let web = tcp([10, 96, 0, 10], 80);
        let api = tcp([10, 96, 0, 11], 80);
        let mut kernel = Kernel::default();
        kernel.restore_all(&first.full_sync(
            [
                (name("web"), wanted(web, backends(3, 8080), None)),
                (name("api"), wanted(api, backends(2, 8080), None)),
            ],
            &BTreeSet::new(),
        ));
        // A restarted agent: api was deleted meanwhile. It finds its chains by reachability.
        let save: String = kernel
            .tables
            .get("nat")
            .unwrap()
            .iter()
            .map(|(chain, rules)| {
                let mut text = format!(":{chain} - [0:0]\n");
                for rule in rules {
                    text.push_str(&format!("-A {chain} {rule}\n"));
                }
                text
            })
            .collect::<String>()
            + ":OTHER - [0:0]\n-A OTHER -j KUBE-SVC-NOTOURS\n:KUBE-SVC-NOTOURS - [0:0]\n";
        let mut live = reachable_chains(&save, &first.chains().roots(Table::Nat));
        assert!(!live.contains("KUBE-SVC-NOTOURS") && !live.contains("OTHER"));
        assert_eq!(live.len(), 3 + 2 + 5, "{live:?}");
        live.extend(reachable_chains("", &first.chains().roots(Table::Filter)));
        let mut second = rules();
        kernel.restore_all(
            &second.full_sync([(name("web"), wanted(web, backends(3, 8080), None))], &live),
        );
        let left: Vec<_> = kernel
            .chain_names("nat")
            .into_iter()
            .filter(|c| c.starts_with("KUBE-SVC-") || c.starts_with("KUBE-SEP-"))
            .collect();
        assert_eq!(left.len(), 4, "web's chains only: {left:?}");
        assert_eq!(
            kernel
                .walk(second.chains(), Ipv4Addr::new(10, 244, 9, 9), &web)
                .outcomes
                .len(),
            3
        );
        // Cleanup: everything the node has goes.
        let nat: BTreeSet<String> = kernel.chain_names("nat");
        kernel.restore_all(&delete_chains(Table::Nat, &nat));
        assert!(kernel.chain_names("nat").is_empty());
    }

    #[test]
    fn a_large_full_sync_goes_in_batches_of_whole_services_services_chain_last() {
        let mut rules = rules();
        let services: Vec<_> = (0..200u16)
            .map(|i| {
                let frontend = tcp([10, 96, (i / 256) as u8, (i % 256) as u8], 80);
                (
                    name(&format!("svc-{i}")),
                    wanted(frontend, backends(10, 8080), None),
                )
            })
            .collect();
        let inputs = rules.full_sync(services.clone(), &BTreeSet::new());
        assert!(inputs.len() > 2, "{} inputs", inputs.len());
        for input in &inputs {
            let declared = input.lines().filter(|l| l.starts_with(':')).count();
            assert!(
                declared <= CHAINS_PER_RESTORE + 11,
                "{declared} chains in one input"
            );
        }
        let services_chain = format!("-A {} ", rules.chains().services());
        assert!(
            inputs[..inputs.len() - 1]
                .iter()
                .all(|input| !input.contains(&services_chain)),
            "KUBE-SERVICES comes last, once every chain it names exists"
        );
        for (name, frontends) in &services {
            let svc = rules
                .chains()
                .service(name, frontends.keys().next().unwrap());
            let holding: Vec<_> = inputs
                .iter()
                .filter(|input| input.contains(&format!(":{svc} ")))
                .collect();
            assert_eq!(holding.len(), 1);
            for backend in &frontends.values().next().unwrap().backends {
                let sep = rules
                    .chains()
                    .endpoint(name, frontends.keys().next().unwrap(), backend);
                assert!(
                    holding[0].contains(&format!(":{sep} ")),
                    "a Service's chains in one input"
                );
            }
        }
        let mut kernel = Kernel::default();
        kernel.restore_all(&inputs);
        let walk = kernel.walk(
            rules.chains(),
            Ipv4Addr::new(10, 244, 9, 9),
            &tcp([10, 96, 0, 199], 80),
        );
        assert_eq!(walk.outcomes.len(), 10);
        // Deleting them all goes in batches too: flushed first, then deleted.
        let all = kernel.chain_names("nat");
        let deletes = delete_chains(Table::Nat, &all);
        assert!(deletes.len() > 2);
        kernel.restore_all(&deletes);
        assert!(kernel.chain_names("nat").is_empty());
    }

    #[test]
    fn udp_frontends_match_udp() {
        let mut rules = rules();
        let dns = Frontend {
            address: Ipv4Addr::new(10, 96, 0, 10),
            port: 53,
            protocol: Protocol::Udp,
        };
        let text = rules
            .full_sync(
                [(
                    name("dns"),
                    wanted(
                        dns,
                        vec![BackendAddress {
                            address: Ipv4Addr::new(10, 244, 0, 2),
                            port: 5353,
                            protocol: Protocol::Udp,
                        }],
                        None,
                    ),
                )],
                &BTreeSet::new(),
            )
            .concat();
        assert!(
            text.contains("-d 10.96.0.10/32 -p udp -m udp --dport 53 -j KUBE-SVC-"),
            "{text}"
        );
        assert!(
            text.contains("-p udp -m udp -j DNAT --to-destination 10.244.0.2:5353"),
            "{text}"
        );
    }
}

//! skiff's node agent (the kubelet): registers its Node with the master, renews its Lease,
//! runs the pods bound to it (and static pods from a directory) as Docker containers behind a
//! pause sandbox, and reports their status.
//!
//! - [`api_balancer`]: the node-local API load balancer, for several masters;
//! - [`kubelet`]: registration, heartbeat, pod sources, pod workers, status reporting;
//! - [`proxy`]: Service load balancing in eBPF (kube-proxy's job);
//! - [`runtime`]: the container runtime trait and its Docker (bollard) implementation;
//! - [`hollow`]: hollow nodes, many simulated kubelets in one process (`--hollow N`);
//! - [`images`]: the static binaries built into local images (no registry is reachable).
//! - [`netns`]: work inside a pod's network namespace.
//! - [`uring`]: the io_uring layer (the async executor, heartbeat connection, file I/O, /proc
//!   reads).

pub mod api_balancer;
pub mod hollow;
pub mod images;
pub mod kubelet;
pub mod netns;
pub mod proxy;
pub mod runtime;
pub mod uring;

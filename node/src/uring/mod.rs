//! skiff-node's io_uring layer: the one place that knows the agent's hot I/O runs on
//! io_uring (tokio-uring), so the executor can be swapped later without touching the kubelet.
//! (The container runtime is another thing: [`crate::runtime`].)
//!
//! - [`executor`]: run the agent on a single-threaded tokio-uring runtime, or on a plain
//!   tokio current-thread runtime when io_uring cannot be set up (said once, as a warning).
//! - [`heartbeat`]: the persistent HTTPS/1.1 connection that renews the node's Lease (and
//!   writes its status), with rustls driven over owned buffers on a tokio-uring `TcpStream`,
//!   and the same over tokio + tokio-rustls for comparison; [`kubelet_heartbeat`] plugs it
//!   into the kubelet's `Heartbeat` trait. [`HeartbeatRing`] carries many connections'
//!   heartbeat requests on one ring of its own (the `io-uring` crate), for the hollow nodes.
//! - [`fs`]: whole-file reads (/proc, cgroup files, static pod manifests) and append-only
//!   container log files.
//! - [`capacity`](mod@capacity): the node's cpu/memory capacity and usage from /proc.
//!
//! Every function here works on either executor: on io_uring it uses io_uring operations,
//! otherwise plain tokio/std I/O.

pub mod capacity;
pub mod executor;
pub mod fs;
pub mod heartbeat;
mod http;
pub mod kubelet_heartbeat;
mod tls;

pub use capacity::{Capacity, CpuTimes, Usage, capacity, usage};
pub use executor::{Executor, block_on, io_uring_active, spawn};
pub use fs::{LogFile, read_file, read_tail};
pub use heartbeat::{
    ApiResponse, ConnectionError, Credential, HeartbeatConnection, HeartbeatRing,
    HeartbeatSettings, RenewalCost, Transport, measure_renewals,
};
pub use kubelet_heartbeat::UringHeartbeat;

//! skiff's API machinery: what every component needs to read and write Kubernetes objects
//! the way Kubernetes does, kept in one crate that the API server, the scheduler, the
//! controllers and the node agent share (Kubernetes keeps it in `k8s.io/apimachinery` and
//! the helpers of `k8s.io/api`, kube-rs in `kube-core`).
//!
//! Nothing here talks to the store or knows the API server's internals; the modules with
//! I/O are [`events`], which writes Events through the API as any client does, and [`host`],
//! which reads the machine's address (a node's InternalIP, the API server's advertise
//! address).

pub mod ca_pin;
pub mod events;
pub mod hash;
pub mod host;
pub mod meta;
pub mod names;
pub mod node_affinity;
pub mod pod;
pub mod quantity;
pub mod quota;
pub mod restart;
pub mod selectors;
pub mod taints;
pub mod time;
pub mod well_known;

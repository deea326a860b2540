//! Controllers: loops that drive the cluster toward what its objects say, each an API client
//! like any other (list + watch, then writes through the API server).
//!
//! - [`node_ipam`]: gives every Node a pod CIDR from the cluster CIDR (kube-controller-manager's
//!   `nodeipam` controller with `--allocate-node-cidrs`).

pub mod node_ipam;

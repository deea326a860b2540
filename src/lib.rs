//! Harness for skiff's end-to-end tests and benchmarks: starts the real programs (etcd,
//! skiff-master) on loopback ports of this machine, waits until they are ready and stops
//! them when dropped.

pub mod docker;
pub mod etcd;
pub mod master;
pub mod node;
pub mod python;

//! skiff-master: the control plane. The API server is the only entry point to the store;
//! the scheduler, the controllers and the cluster DNS talk to it like any other client.

pub mod apiserver;
pub mod controllers;
pub mod dns;
pub mod endpoint_leases;
pub mod leader_election;
pub mod scheduler;
pub mod store;
pub mod supervisor;

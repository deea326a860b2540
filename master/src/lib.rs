//! skiff-master: the control plane. The API server is the only entry point to the store;
//! the scheduler and controllers talk to it like any other client.

pub mod apiserver;
pub mod controllers;
pub mod scheduler;
pub mod store;

//! The settings every etcd the project starts runs with, in `cargo xtask run` and in the
//! tests' and benchmarks' etcd alike.

/// etcd's backend quota: 8 GiB, the most etcd recommends, where its default is 2 GiB. A
/// million pods (2-3 KB each) and the versions written before the API server's next
/// compaction (every 5 minutes) outgrow 2 GiB, after which etcd refuses every write
/// ("mvcc: database space exceeded") until an operator compacts and defragments it.
pub const QUOTA_BACKEND_BYTES: u64 = 8 << 30;

/// The flags for the settings above, to add to etcd's command line.
pub fn server_flags() -> [String; 1] {
    [format!("--quota-backend-bytes={QUOTA_BACKEND_BYTES}")]
}

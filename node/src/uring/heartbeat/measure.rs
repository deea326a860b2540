//! What a Lease renewal costs, wall and CPU time: [`measure_renewals`], for the benchmark
//! comparing the transports.

use std::io;
use std::time::{Duration, Instant};

use super::ConnectionError;
use super::connection::HeartbeatConnection;

/// What one Lease renewal costs on a connection, averaged over many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenewalCost {
    /// Renewals measured.
    pub renewals: u32,
    /// Wall time of one renewal: request to complete response, API server included.
    pub wall: Duration,
    /// CPU time the calling thread spent per renewal (user + system, io_uring completions
    /// included): the node's own cost. Meaningful on this module's single-threaded runtimes,
    /// where all of the connection's work happens on the calling thread.
    pub cpu: Duration,
}

/// Renews `renewals` times back to back on `conn` and reports the mean cost of one renewal.
/// One renewal before the measurement opens the connection, so the TLS handshake is not
/// counted.
pub async fn measure_renewals(
    conn: &mut HeartbeatConnection,
    renewals: u32,
) -> Result<RenewalCost, ConnectionError> {
    conn.renew().await?;
    let cpu_start = thread_cpu_time()?;
    let start = Instant::now();
    for _ in 0..renewals {
        conn.renew().await?;
    }
    let wall = start.elapsed();
    let cpu = thread_cpu_time()?.saturating_sub(cpu_start);
    let count = renewals.max(1);
    Ok(RenewalCost {
        renewals,
        wall: wall / count,
        cpu: cpu / count,
    })
}

/// CPU time consumed by the calling thread so far.
fn thread_cpu_time() -> io::Result<Duration> {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the valid pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let secs = u64::try_from(time.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(time.tv_nsec).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

//! Clocks for the breaker: the system's wall clock, and a manual one for tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A wall clock in milliseconds since the Unix epoch. Shared by every environment of a fleet,
/// so it must be wall time, not a monotonic counter.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;

    /// A reading that may lag `now_ms` by a few milliseconds but costs less. Used only to check
    /// the admission lease's deadline on the healthy path, where a lease honoured a few
    /// milliseconds late changes nothing (it bounds a cache of seconds).
    #[inline]
    fn now_ms_coarse(&self) -> u64 {
        self.now_ms()
    }
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// `CLOCK_REALTIME_COARSE`: the time at the last tick (1 to 4 ms old), read in about 5 ns
    /// instead of about 25-35 ns.
    #[cfg(target_os = "linux")]
    #[inline]
    fn now_ms_coarse(&self) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime only writes the timespec it is given.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } != 0 {
            return self.now_ms();
        }
        ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
    }
}

/// A clock that moves only when told; clones share one time. For tests and simulations.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now_ms: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock {
            now_ms: Arc::new(AtomicU64::new(now_ms)),
        }
    }

    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: u64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

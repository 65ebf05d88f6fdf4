//! Clocks for the breaker: the system's, and a manual one for tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The breaker's two clocks.
///
/// - The wall clock (`now_ms`), ms since the Unix epoch: the times written in the shared
///   record, which every environment of the fleet compares.
/// - A monotonic clock (`monotonic_ms`), ms from any origin: the deadlines only this
///   environment keeps (its copy's age, the admission lease, the store's back-off). A step of
///   the wall clock (NTP, an operator, a restored snapshot) cannot stretch them.
pub trait Clock: Send + Sync + 'static {
    /// The wall clock: Unix milliseconds.
    fn now_ms(&self) -> u64;

    /// Defaults to `now_ms`, which keeps a clock written for earlier versions working; a real
    /// clock should return a monotonic reading.
    fn monotonic_ms(&self) -> u64 {
        self.now_ms()
    }

    /// A wall-clock reading that may lag by a few milliseconds.
    #[deprecated(note = "local deadlines use `monotonic_ms_coarse`; use `now_ms`")]
    fn now_ms_coarse(&self) -> u64 {
        self.now_ms()
    }

    /// A monotonic reading that may lag `monotonic_ms` by a few milliseconds but costs less.
    /// Used only to check the admission lease on the healthy path, where a lease honoured a
    /// few milliseconds late changes nothing (it bounds a cache of seconds).
    #[inline]
    fn monotonic_ms_coarse(&self) -> u64 {
        self.monotonic_ms()
    }
}

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

#[cfg(unix)]
#[inline]
fn clock_ms(id: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    (unsafe { libc::clock_gettime(id, &mut ts) } == 0)
        .then(|| ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000)
}

impl Clock for SystemClock {
    #[inline]
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// `CLOCK_MONOTONIC_COARSE` on Linux: the time at the last tick (1 to 4 ms old), read in
    /// about 5 ns. Local deadlines are seconds long; a few milliseconds change nothing.
    #[inline]
    fn monotonic_ms(&self) -> u64 {
        #[cfg(target_os = "linux")]
        if let Some(ms) = clock_ms(libc::CLOCK_MONOTONIC_COARSE) {
            return ms;
        }
        #[cfg(unix)]
        if let Some(ms) = clock_ms(libc::CLOCK_MONOTONIC) {
            return ms;
        }
        fallback_monotonic_ms()
    }

    #[inline]
    fn monotonic_ms_coarse(&self) -> u64 {
        self.monotonic_ms()
    }
}

fn fallback_monotonic_ms() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// A clock that moves only when told; clones share one time. For tests and simulations.
///
/// `advance` moves both clocks; `set` moves the wall clock and the monotonic one forward by as
/// much (never back); `step_wall` moves only the wall clock, as an NTP step does.
#[derive(Clone, Debug)]
pub struct ManualClock {
    times: Arc<(AtomicU64, AtomicU64)>,
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock::new(0)
    }
}

impl ManualClock {
    /// A clock at `now_ms` on the wall clock.
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock {
            times: Arc::new((AtomicU64::new(now_ms), AtomicU64::new(1_000_000))),
        }
    }

    /// Sets the wall clock to `now_ms`; the monotonic clock moves forward by as much, never
    /// back.
    pub fn set(&self, now_ms: u64) {
        let before = self.times.0.swap(now_ms, Ordering::SeqCst);
        self.times
            .1
            .fetch_add(now_ms.saturating_sub(before), Ordering::SeqCst);
    }

    /// Moves both clocks forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.times.0.fetch_add(ms, Ordering::SeqCst);
        self.times.1.fetch_add(ms, Ordering::SeqCst);
    }

    /// Steps the wall clock by `delta_ms` (back when negative); the monotonic clock stays.
    pub fn step_wall(&self, delta_ms: i64) {
        let _ = self
            .times
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add_signed(delta_ms))
            });
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_ms(&self) -> u64 {
        self.times.0.load(Ordering::SeqCst)
    }

    #[inline]
    fn monotonic_ms(&self) -> u64 {
        self.times.1.load(Ordering::SeqCst)
    }
}

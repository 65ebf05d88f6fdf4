//! The fleet's window counters as one environment feeds them: which window and shard a report
//! goes to, and what an environment has seen but not reported yet.

use crate::types::{FailureRate, WindowCounts, WindowDelta};

/// How many items a window's counters are spread over: a fleet of 1,000 environments that all
/// report within one interval writes each item at most 125 times.
pub const WINDOW_SHARDS: u32 = 8;

/// How often an environment reports to the fleet's window while it sees failures; between
/// reports, its last answer stands.
pub const WINDOW_REPORT_INTERVAL_MS: u64 = 1_000;

/// How long past its second window a window's shard is kept (clocks of a fleet disagree).
const WINDOW_EXPIRY_SLACK_MS: u64 = 60_000;

/// Under the failure-rate policy, a report carries the successes since the environment's last
/// one, but at most this many times `1 / threshold` of them before its first failure; and an
/// environment that has not reported for a window counts at least that many. Healthy
/// environments report nothing, so the fleet sees only those that fail: capped, a long healthy
/// stretch cannot hide an outage that starts now; floored, a fresh or quiet environment's
/// first failure cannot pass for a high rate (it counts as a third of the threshold). With 3,
/// the rate the fleet sees of a steady error rate is at most 5 % above it.
pub const RATE_LOOKBACK_FACTOR: f64 = 3.0;

/// The shard an environment reports to: the same one every time (FNV-1a of its identity), so
/// that a fleet spreads over all of them.
pub(crate) fn shard_of(environment: &str) -> u32 {
    let hash = environment.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % u64::from(WINDOW_SHARDS)) as u32
}

/// The start of the window `now_ms` falls in, and of the one before when it began after the
/// circuit's last close. Windows are aligned to that close (to the epoch if it never closed),
/// so reports from before the close fall in windows no one reads again: as with an
/// environment's own count, failures from before the last close never count.
pub fn window_starts(closed_at_ms: Option<u64>, length_ms: u64, now_ms: u64) -> (u64, Option<u64>) {
    let origin = closed_at_ms.unwrap_or(0).min(now_ms);
    let start = now_ms - (now_ms - origin) % length_ms;
    let previous = start.checked_sub(length_ms).filter(|p| *p >= origin);
    (start, previous)
}

/// When a store may delete the shard of the window that starts at `start_ms`.
pub(crate) fn window_expiry(start_ms: u64, length_ms: u64) -> u64 {
    start_ms
        .saturating_add(length_ms.saturating_mul(2))
        .saturating_add(WINDOW_EXPIRY_SLACK_MS)
}

/// The calls a first report carries at most (and, after a quiet window, at least).
fn lookback(policy: &FailureRate) -> u64 {
    ((RATE_LOOKBACK_FACTOR / policy.threshold).ceil() as u64).max(1)
}

/// The calls of one environment under the failure-rate policy: its own counts of the current
/// and the previous window (for its decisions while the store is down), and what it has not
/// reported to the fleet yet.
#[derive(Clone, Debug, Default)]
pub(crate) struct RateCounts {
    /// The close the windows are aligned to, and the current window's start.
    aligned: Option<(Option<u64>, u64)>,
    own: WindowCounts,
    own_previous: WindowCounts,
    /// Successes since the last report while nothing failed, capped by the lookback.
    quiet_calls: u64,
    /// Since the first failure not yet reported (its successes included).
    pending: WindowCounts,
    reported_at_mono: Option<u64>,
}

impl RateCounts {
    /// Moves to the window `now_ms` falls in. A new close starts everything again: what was
    /// seen before it never counts.
    pub(crate) fn roll(&mut self, closed_at_ms: Option<u64>, length_ms: u64, now_ms: u64) {
        let (start, previous) = window_starts(closed_at_ms, length_ms, now_ms);
        match self.aligned {
            Some((closed, current)) if closed == closed_at_ms => {
                if current == start {
                    return;
                }
                self.own_previous = if Some(current) == previous {
                    std::mem::take(&mut self.own)
                } else {
                    self.quiet_calls = 0;
                    WindowCounts::default()
                };
                self.own = WindowCounts::default();
            }
            Some(_) => *self = RateCounts::default(),
            None => {}
        }
        self.aligned = Some((closed_at_ms, start));
    }

    /// `calls` successes.
    pub(crate) fn succeeded(&mut self, calls: u64, policy: &FailureRate) {
        self.own.calls = self.own.calls.saturating_add(calls);
        if self.has_pending() {
            self.pending.calls = self.pending.calls.saturating_add(calls);
        } else {
            self.quiet_calls = self
                .quiet_calls
                .saturating_add(calls)
                .min(lookback(policy) - 1);
        }
    }

    /// One counted failure at `now_mono` (`slow`: a success slower than `slow_call_ms`).
    pub(crate) fn failed(
        &mut self,
        now_mono: u64,
        policy: &FailureRate,
        window_ms: u64,
        slow: bool,
    ) {
        self.own.calls = self.own.calls.saturating_add(1);
        if slow {
            self.own.slow_calls = self.own.slow_calls.saturating_add(1);
        } else {
            self.own.failures = self.own.failures.saturating_add(1);
        }
        let mut quiet = std::mem::take(&mut self.quiet_calls);
        let long_quiet = self
            .reported_at_mono
            .is_none_or(|at| now_mono.saturating_sub(at) >= window_ms);
        if !self.has_pending() && long_quiet {
            quiet = quiet.max(lookback(policy) - 1);
        }
        self.pending.calls = self.pending.calls.saturating_add(quiet).saturating_add(1);
        if slow {
            self.pending.slow_calls = self.pending.slow_calls.saturating_add(1);
        } else {
            self.pending.failures = self.pending.failures.saturating_add(1);
        }
    }

    /// Whether failures wait to be reported.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.failures > 0 || self.pending.slow_calls > 0
    }

    /// Whether a report is due: something waits and the last report is an interval old.
    pub(crate) fn report_due(&self, now_mono: u64) -> bool {
        self.has_pending()
            && self
                .reported_at_mono
                .is_none_or(|at| now_mono.saturating_sub(at) >= WINDOW_REPORT_INTERVAL_MS)
    }

    /// What to add to the fleet's window for what waits.
    pub(crate) fn delta(&self, environment: &str) -> WindowDelta {
        WindowDelta {
            calls: self.pending.calls,
            failures: self.pending.failures,
            slow_calls: self.pending.slow_calls,
            environment: Some(environment.to_string()),
        }
    }

    /// The report was added at `now_mono`.
    pub(crate) fn reported(&mut self, now_mono: u64) {
        self.pending = WindowCounts::default();
        self.reported_at_mono = Some(now_mono);
    }

    /// The circuit opened (or is not closed): nothing waits any more.
    pub(crate) fn forget_pending(&mut self) {
        self.pending = WindowCounts::default();
        self.quiet_calls = 0;
    }

    /// This environment's own windows: the current one and the one before.
    pub(crate) fn own(&self) -> (&WindowCounts, &WindowCounts) {
        (&self.own, &self.own_previous)
    }

    /// This environment's failures in the current window (slow calls included), and of them
    /// slow calls.
    pub(crate) fn own_failures(&self) -> (u32, u32) {
        let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        (
            count(self.own.failures.saturating_add(self.own.slow_calls)),
            count(self.own.slow_calls),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: FailureRate = FailureRate {
        threshold: 0.5,
        minimum_calls: 10,
    };

    #[test]
    fn a_first_report_carries_at_most_the_lookback_of_successes() {
        let mut c = RateCounts::default();
        c.roll(None, 10_000, 5_000);
        c.succeeded(100, &POLICY);
        assert!(!c.report_due(0));
        c.failed(0, &POLICY, 10_000, false);
        // 3 / 0.5 = 6 calls: 5 successes before the failure, and the failure.
        assert_eq!(c.delta("e").calls, 6);
        assert!(c.report_due(0));
        c.succeeded(100, &POLICY);
        assert_eq!(c.delta("e").calls, 106, "after a failure every call counts");
        c.reported(0);
        c.failed(500, &POLICY, 10_000, false);
        assert!(!c.report_due(999), "one report per interval");
        assert!(c.report_due(1_000));
        assert_eq!((c.delta("e").calls, c.delta("e").failures), (1, 1));
    }

    #[test]
    fn a_fresh_environment_first_failure_counts_as_one_in_the_lookback() {
        let mut c = RateCounts::default();
        c.roll(None, 10_000, 5_000);
        c.failed(0, &POLICY, 10_000, false);
        assert_eq!((c.delta("e").calls, c.delta("e").failures), (6, 1));
        c.reported(0);
        c.succeeded(1, &POLICY);
        c.failed(2_000, &POLICY, 10_000, false);
        assert_eq!(
            c.delta("e").calls,
            2,
            "a recent report: only the calls made count"
        );
        c.reported(2_000);
        c.failed(12_000, &POLICY, 10_000, false);
        assert_eq!(
            c.delta("e").calls,
            6,
            "a window without a report: quiet again"
        );
    }

    #[test]
    fn own_counts_move_with_the_window_and_restart_at_a_close() {
        let mut c = RateCounts::default();
        c.roll(None, 10_000, 5_000);
        c.failed(0, &POLICY, 10_000, false);
        c.roll(None, 10_000, 12_000);
        assert_eq!((c.own().0.failures, c.own().1.failures), (0, 1));
        c.roll(None, 10_000, 45_000);
        assert_eq!(
            c.own().1.failures,
            0,
            "a skipped window leaves nothing behind"
        );
        c.failed(0, &POLICY, 10_000, false);
        c.roll(Some(45_500), 10_000, 46_000);
        assert_eq!(c.own().0.failures, 0);
        assert!(!c.has_pending(), "failures from before a close never count");
    }
}

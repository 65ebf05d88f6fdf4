//! Table-driven tests of the pure state machine: every transition, each row named after the
//! path it walks.

use fleetbreaker_core::machine::{
    self, AcquireDecision, Ctx, LocalChanges, ProbeDecision, RECORD_TTL_MARGIN_MS, Shared, Token,
    TripDecision, Window, Write,
};
use fleetbreaker_core::{
    CircuitState as S, Config, FailurePolicy, Outcome, PermitKind, Record, TransitionReason as R,
};

const NOW: u64 = 1_000_000;
const ME: Token<'static> = Token {
    environment: "me",
    permit_id: 7,
};

fn config() -> Config {
    Config {
        failure_policy: FailurePolicy::ConsecutiveFailures(3),
        recovery_timeout_ms: 10_000,
        success_threshold: 2,
        probe_lease_ms: Some(4_000),
        backoff_multiplier: 2.0,
        max_recovery_timeout_ms: Some(25_000),
        ..Config::default()
    }
}

fn ctx(config: &Config) -> Ctx<'_> {
    Ctx {
        config,
        circuit: "payments",
        environment: "me",
        now_ms: NOW,
    }
}

fn shared(state: S, change: impl FnOnce(&mut Record)) -> Shared {
    let mut r = Record::absent(5);
    r.state = state;
    change(&mut r);
    Shared::written(r)
}

/// Checks what every write must be: the next version, the swap's expectation, a legal
/// transition that describes exactly this write, and audit fields.
fn check_write(before: &Shared, w: &Write, to: S, reason: R) {
    assert_eq!(w.expected, before.expected);
    assert_eq!(w.next.version, before.record.version + 1);
    assert_eq!(w.next.state, to);
    assert_eq!(w.next.updated_at_ms, NOW);
    assert_eq!(w.next.updated_by, "me");
    assert!(w.next.expires_at_ms >= NOW + RECORD_TTL_MARGIN_MS);
    let t = &w.transition;
    assert_eq!(
        (t.from_state, t.to_state, t.reason),
        (before.record.state, to, reason)
    );
    assert_eq!(t.version, w.next.version);
    assert_eq!(t.at_ms, NOW);
    assert!(!t.local_only);
    assert!(machine::is_legal(t.from_state, t.reason, t.to_state));
}

fn write_of(d: AcquireDecision) -> Write {
    match d {
        AcquireDecision::Write(w) => *w,
        other => panic!("expected a write, got {other:?}"),
    }
}

/// Checks what `acquire` decided, given the record it decided on.
type Check = Box<dyn Fn(&Shared, AcquireDecision)>;

#[test]
fn acquire_table() {
    let c = config();
    let lease = Some(5_000);
    let admit = |kind: PermitKind, lease: Option<u64>| -> Check {
        Box::new(move |_, d| {
            assert_eq!(
                d,
                AcquireDecision::Admit {
                    kind,
                    lease_ms: lease
                }
            )
        })
    };
    let reject = || -> Check { Box::new(|_, d| assert_eq!(d, AcquireDecision::Reject)) };
    let take = |reason: R| -> Check {
        Box::new(move |before, d| {
            let w = write_of(d);
            check_write(before, &w, S::HalfOpen, reason);
            assert_eq!(w.next.probe_owner.as_deref(), Some("me#7"));
            assert_eq!(w.next.probe_lease_until_ms, Some(NOW + 4_000));
            assert_eq!(w.next.probe_successes, before.record.probe_successes);
        })
    };
    let expire = || -> Check {
        Box::new(|before, d| {
            let w = write_of(d);
            check_write(before, &w, S::Closed, R::OverrideExpired);
            assert_eq!(w.next.closed_at_ms, Some(NOW));
            assert_eq!(w.next.override_reason, None);
            assert_eq!(w.next.override_until_ms, None);
        })
    };
    let rows: Vec<(&str, Shared, Option<u64>, Check)> = vec![
        (
            "closed_admits_with_the_offered_lease",
            shared(S::Closed, |_| {}),
            lease,
            admit(PermitKind::Normal, lease),
        ),
        (
            "closed_admits_without_lease_when_none_offered",
            shared(S::Closed, |_| {}),
            None,
            admit(PermitKind::Normal, None),
        ),
        (
            "absent_record_admits",
            Shared::loaded(None),
            lease,
            admit(PermitKind::Normal, lease),
        ),
        (
            "open_rejects_before_break_ends",
            shared(S::Open, |r| r.open_until_ms = Some(NOW + 1)),
            lease,
            reject(),
        ),
        (
            "open_takes_probe_when_break_ends",
            shared(S::Open, |r| r.open_until_ms = Some(NOW)),
            lease,
            take(R::ProbeStarted),
        ),
        (
            "open_without_end_takes_probe_instead_of_wedging",
            shared(S::Open, |_| {}),
            lease,
            Box::new(|before, d| {
                let w = write_of(d);
                check_write(before, &w, S::HalfOpen, R::ProbeStarted);
                assert_eq!(w.next.opened_at_ms, Some(NOW), "the episode gets a name");
            }),
        ),
        (
            "open_with_only_its_opening_time_rejects_until_one_break_after_it",
            shared(S::Open, |r| r.opened_at_ms = Some(NOW - 9_999)),
            lease,
            reject(),
        ),
        (
            "open_with_only_its_opening_time_takes_probe_one_break_after_it",
            shared(S::Open, |r| r.opened_at_ms = Some(NOW - 10_000)),
            lease,
            take(R::ProbeStarted),
        ),
        (
            "half_open_own_token_is_admitted_as_probe",
            shared(S::HalfOpen, |r| {
                r.probe_owner = Some("me#7".into());
                r.probe_lease_until_ms = Some(NOW + 10);
            }),
            lease,
            admit(PermitKind::Probe, None),
        ),
        (
            "half_open_free_permit_is_taken",
            shared(S::HalfOpen, |r| r.probe_successes = 1),
            lease,
            take(R::ProbeStarted),
        ),
        (
            "half_open_live_lease_of_another_rejects",
            shared(S::HalfOpen, |r| {
                r.probe_owner = Some("me#6".into());
                r.probe_lease_until_ms = Some(NOW + 1);
            }),
            lease,
            reject(),
        ),
        (
            "half_open_expired_lease_is_taken_over",
            shared(S::HalfOpen, |r| {
                r.probe_owner = Some("other#1".into());
                r.probe_lease_until_ms = Some(NOW);
                r.probe_successes = 1;
            }),
            lease,
            take(R::ProbeTakenOver),
        ),
        (
            "half_open_owner_without_lease_is_taken_over",
            shared(S::HalfOpen, |r| r.probe_owner = Some("other#1".into())),
            lease,
            take(R::ProbeTakenOver),
        ),
        (
            "forced_open_rejects_until_its_end",
            shared(S::ForcedOpen, |r| r.override_until_ms = Some(NOW + 1)),
            lease,
            reject(),
        ),
        (
            "forced_open_without_end_rejects",
            shared(S::ForcedOpen, |_| {}),
            lease,
            reject(),
        ),
        (
            "forced_open_expired_closes",
            shared(S::ForcedOpen, |r| {
                r.override_until_ms = Some(NOW);
                r.override_reason = Some("x".into());
            }),
            lease,
            expire(),
        ),
        (
            "forced_closed_admits_with_lease_bounded_by_its_end",
            shared(S::ForcedClosed, |r| r.override_until_ms = Some(NOW + 100)),
            lease,
            admit(PermitKind::Normal, Some(100)),
        ),
        (
            "forced_closed_without_end_admits_with_offered_lease",
            shared(S::ForcedClosed, |_| {}),
            lease,
            admit(PermitKind::Normal, lease),
        ),
        (
            "forced_closed_expired_closes",
            shared(S::ForcedClosed, |r| r.override_until_ms = Some(NOW - 1)),
            lease,
            expire(),
        ),
    ];
    for (name, before, offered, check) in rows {
        let d = machine::acquire(&ctx(&c), &before, offered, ME);
        eprintln!("{name}: {d:?}");
        check(&before, d);
    }
}

#[test]
fn trip_table() {
    let c = config();
    let mut window = Window::default();
    for t in [NOW - 2, NOW - 1] {
        window.record_failure(t, c.failure_policy, false);
    }
    let closed = shared(S::Closed, |r| r.closed_at_ms = Some(NOW - 100));
    assert_eq!(
        machine::trip(&ctx(&c), &closed, &window),
        TripDecision::Count,
        "closed_below_threshold_counts"
    );

    // The third is a slow call: it counts like a failure, and is reported apart.
    window.record_failure(NOW, c.failure_policy, true);
    match machine::trip(&ctx(&c), &closed, &window) {
        TripDecision::Write(w) => {
            let w = *w;
            check_write(&closed, &w, S::Open, R::Tripped);
            assert_eq!(w.next.trips, 1);
            assert_eq!(w.next.opened_at_ms, Some(NOW));
            assert_eq!(w.next.open_until_ms, Some(NOW + 10_000));
            assert_eq!(w.next.failure_count, 3);
            assert_eq!(w.next.slow_call_count, 1);
            assert_eq!(
                (w.transition.failure_count, w.transition.slow_call_count),
                (3, 1),
                "the trip's event says what tripped it"
            );
            assert_eq!(
                w.next.closed_at_ms,
                Some(NOW - 100),
                "the last close stays known"
            );
        }
        other => panic!("closed_at_threshold_trips: {other:?}"),
    }
    for state in [S::Open, S::HalfOpen, S::ForcedOpen, S::ForcedClosed] {
        assert_eq!(
            machine::trip(&ctx(&c), &shared(state, |_| {}), &window),
            TripDecision::Absorb,
            "{state}_absorbs_the_streak"
        );
    }
}

#[test]
fn probe_outcome_table() {
    let c = config();
    const EPISODE: Option<u64> = Some(NOW - 20_000);
    let with_owner = |owner: &str, successes: u32, trips: u32| {
        let owner = owner.to_string();
        shared(S::HalfOpen, move |r| {
            r.probe_owner = Some(owner);
            r.probe_lease_until_ms = Some(NOW + 100);
            r.probe_successes = successes;
            r.trips = trips;
            r.opened_at_ms = EPISODE;
        })
    };
    let mine = |successes, trips| with_owner("me#7", successes, trips);
    let outcome =
        |before: &Shared, o: Outcome| machine::probe_outcome(&ctx(&c), before, ME, EPISODE, o);
    let write = |d: ProbeDecision| match d {
        ProbeDecision::Write(w) => *w,
        ProbeDecision::Fenced => panic!("expected a write"),
    };

    let before = mine(0, 1);
    let w = write(outcome(&before, Outcome::Success));
    check_write(&before, &w, S::HalfOpen, R::ProbeSucceeded);
    assert_eq!(
        (
            w.next.probe_successes,
            w.next.probe_owner.clone(),
            w.next.probe_lease_until_ms
        ),
        (1, None, None),
        "holder_success_counts_and_frees_the_permit"
    );

    let before = mine(1, 2);
    let w = write(outcome(&before, Outcome::Success));
    check_write(&before, &w, S::Closed, R::Recovered);
    assert_eq!(
        (w.next.trips, w.next.probe_successes, w.next.closed_at_ms),
        (0, 0, Some(NOW))
    );
    assert_eq!(
        (
            w.next.opened_at_ms,
            w.next.open_until_ms,
            w.next.probe_owner.clone()
        ),
        (None, None, None)
    );

    let before = mine(1, 2);
    let w = write(outcome(&before, Outcome::Failure));
    check_write(&before, &w, S::Open, R::ProbeFailed);
    // Third trip: 10 s × 2² = 40 s, capped at 25 s.
    assert_eq!(
        (w.next.trips, w.next.open_until_ms, w.next.probe_successes),
        (3, Some(NOW + 25_000), 0)
    );
    assert_eq!(w.next.opened_at_ms, Some(NOW));

    let before = mine(1, 1);
    let w = write(outcome(&before, Outcome::Ignored));
    check_write(&before, &w, S::HalfOpen, R::ProbeReleased);
    assert_eq!(
        (w.next.probe_successes, w.next.probe_owner.clone()),
        (1, None)
    );

    // The permit was taken over, in the same episode: the late outcome still counts.
    let taken_over = with_owner("other#1", 0, 1);
    let w = write(outcome(&taken_over, Outcome::Success));
    check_write(&taken_over, &w, S::HalfOpen, R::ProbeSucceeded);
    assert_eq!(
        (w.next.probe_successes, w.next.probe_owner.as_deref()),
        (1, Some("other#1")),
        "late_success_counts_and_leaves_the_new_holder_its_permit"
    );
    let w = write(outcome(&with_owner("other#1", 1, 1), Outcome::Success));
    assert_eq!(w.next.state, S::Closed, "late_success_can_close");
    let w = write(outcome(&taken_over, Outcome::Failure));
    check_write(&taken_over, &w, S::Open, R::ProbeFailed);
    assert_eq!(w.next.trips, 2, "late_failure_reopens_with_a_longer_break");
    let still_probing = shared(S::HalfOpen, |r| {
        r.probe_owner = Some("other#1".into());
        r.probe_lease_until_ms = Some(NOW + 60_000);
        r.opened_at_ms = EPISODE;
        r.trips = 1;
    });
    let w = write(outcome(&still_probing, Outcome::Failure));
    assert_eq!(
        w.next.open_until_ms,
        Some(NOW + 60_000),
        "late_failure_keeps_the_circuit_open_until_the_live_probe_lease_ends"
    );
    assert_eq!(
        outcome(&taken_over, Outcome::Ignored),
        ProbeDecision::Fenced,
        "late_ignored_outcome_has_nothing_to_release"
    );

    for o in [Outcome::Success, Outcome::Failure, Outcome::Ignored] {
        let other_episode = shared(S::HalfOpen, |r| {
            r.probe_owner = Some("me#7".into());
            r.opened_at_ms = Some(NOW - 1_000);
        });
        assert_eq!(
            outcome(&other_episode, o),
            ProbeDecision::Fenced,
            "an_outcome_from_an_ended_episode_is_fenced"
        );
        for state in [S::Closed, S::Open, S::ForcedOpen, S::ForcedClosed] {
            let s = shared(state, |r| {
                r.probe_owner = Some("me#7".into());
                r.opened_at_ms = EPISODE;
            });
            assert_eq!(outcome(&s, o), ProbeDecision::Fenced, "{state}");
        }
    }
}

#[test]
fn operator_table() {
    let c = config();
    let half_open = shared(S::HalfOpen, |r| {
        r.probe_owner = Some("x#1".into());
        r.probe_lease_until_ms = Some(NOW + 5);
        r.probe_successes = 1;
    });

    let w = machine::force(&ctx(&c), &half_open, S::ForcedOpen, Some(60_000), "deploy");
    check_write(&half_open, &w, S::ForcedOpen, R::ForcedOpen);
    assert_eq!(
        (w.next.override_until_ms, w.next.override_reason.as_deref()),
        (Some(NOW + 60_000), Some("deploy"))
    );
    assert_eq!(
        (w.next.probe_owner.clone(), w.next.probe_successes),
        (None, 0)
    );
    assert_eq!(w.transition.override_reason.as_deref(), Some("deploy"));
    assert_eq!(w.next.expires_at_ms, NOW + 60_000 + RECORD_TTL_MARGIN_MS);

    let w = machine::force(&ctx(&c), &half_open, S::ForcedClosed, None, "");
    check_write(&half_open, &w, S::ForcedClosed, R::ForcedClosed);
    assert_eq!(w.next.override_until_ms, None);
    assert!(
        w.next.expires_at_ms > NOW + 300 * 24 * 3600 * 1000,
        "open-ended overrides outlive the TTL"
    );

    let w = machine::reset(&ctx(&c), &half_open);
    check_write(&half_open, &w, S::Closed, R::Reset);
    assert_eq!(
        (
            w.next.closed_at_ms,
            w.next.trips,
            w.next.probe_owner.clone()
        ),
        (Some(NOW), 0, None)
    );

    let absent = Shared::loaded(None);
    let w = machine::reset(&ctx(&c), &absent);
    assert_eq!(
        (w.expected, w.next.version),
        (None, 1),
        "a first write expects no item"
    );
}

#[test]
fn reconcile_table() {
    let c = config();
    let none = LocalChanges::default();
    let local_open = {
        let mut r = Record::absent(1);
        r.state = S::Open;
        r.opened_at_ms = Some(NOW - 1_000);
        r.open_until_ms = Some(NOW + 9_000);
        r.trips = 1;
        r.failure_count = 3;
        r
    };
    let stored_closed = |closed_at: Option<u64>| shared(S::Closed, |r| r.closed_at_ms = closed_at);

    let before = stored_closed(Some(NOW - 50_000));
    let w = machine::reconcile(&ctx(&c), &before, &local_open, none)
        .expect("local_trip_during_outage_is_written");
    check_write(&before, &w, S::Open, R::Reconciled);
    assert_eq!(
        (
            w.next.opened_at_ms,
            w.next.open_until_ms,
            w.next.failure_count
        ),
        (Some(NOW - 1_000), Some(NOW + 9_000), 3)
    );

    assert!(
        machine::reconcile(&ctx(&c), &Shared::loaded(None), &local_open, none).is_some(),
        "absent_record_takes_the_local_trip"
    );
    assert!(
        machine::reconcile(&ctx(&c), &stored_closed(Some(NOW - 500)), &local_open, none).is_none(),
        "closed_after_the_local_trip_wins"
    );
    assert!(
        machine::reconcile(&ctx(&c), &shared(S::Open, |_| {}), &local_open, none).is_none(),
        "shared_open_wins"
    );
    let mut expired = local_open.clone();
    expired.open_until_ms = Some(NOW);
    assert!(
        machine::reconcile(&ctx(&c), &stored_closed(None), &expired, none).is_none(),
        "expired_local_trip_is_dropped"
    );
    let mut local_closed = local_open.clone();
    local_closed.state = S::Closed;
    local_closed.opened_at_ms = None;
    local_closed.closed_at_ms = Some(NOW - 200);
    assert!(
        machine::reconcile(&ctx(&c), &stored_closed(None), &local_closed, none).is_none(),
        "local_closed_adopts_shared"
    );

    // This environment's probes closed the circuit while the store was down.
    let closed_episode = LocalChanges {
        closed_episode: Some(NOW - 30_000),
    };
    let stored_half_open = shared(S::HalfOpen, |r| {
        r.opened_at_ms = Some(NOW - 30_000);
        r.probe_owner = Some("me#3".into());
        r.probe_lease_until_ms = Some(NOW + 20_000);
        r.trips = 1;
    });
    let w = machine::reconcile(&ctx(&c), &stored_half_open, &local_closed, closed_episode)
        .expect("local_close_of_the_stored_episode_is_written");
    check_write(&stored_half_open, &w, S::Closed, R::Reconciled);
    assert_eq!(
        (
            w.next.closed_at_ms,
            w.next.probe_owner.clone(),
            w.next.trips
        ),
        (Some(NOW - 200), None, 0),
        "closed when this environment closed it, its stale permit gone"
    );
    let reopened_elsewhere = shared(S::Open, |r| r.opened_at_ms = Some(NOW - 5_000));
    assert!(
        machine::reconcile(&ctx(&c), &reopened_elsewhere, &local_closed, closed_episode).is_none(),
        "a_newer_open_elsewhere_wins_over_a_local_close"
    );
    assert!(
        machine::reconcile(
            &ctx(&c),
            &stored_closed(Some(NOW - 100)),
            &local_closed,
            closed_episode
        )
        .is_none(),
        "a_close_elsewhere_needs_nothing"
    );
}

#[test]
fn an_item_without_our_version_is_swapped_against_no_version_and_upgraded() {
    let c = config();
    // What the store gives for an item the Powertools breaker wrote: version 0.
    let mut legacy = Record::absent(0);
    legacy.state = S::Open;
    legacy.opened_at_ms = Some(NOW - 60_000);
    let legacy = Shared::written(legacy);
    assert_eq!(legacy.expected, None);
    let w = write_of(machine::acquire(&ctx(&c), &legacy, None, ME));
    assert_eq!((w.expected, w.next.version), (None, 1));
    assert_eq!(w.next.state, S::HalfOpen);
}

#[test]
fn counts_failure_table() {
    let closed = |closed_at| {
        let mut r = Record::absent(1);
        r.closed_at_ms = closed_at;
        r
    };
    assert!(machine::counts_failure(&closed(None), 5));
    assert!(
        machine::counts_failure(&closed(Some(5)), 5),
        "a call started at the close counts"
    );
    assert!(
        !machine::counts_failure(&closed(Some(6)), 5),
        "a call started before the last close does not"
    );
    for state in [S::Open, S::HalfOpen, S::ForcedOpen, S::ForcedClosed] {
        let mut r = closed(None);
        r.state = state;
        assert!(!machine::counts_failure(&r, 5), "{state}");
    }
}

#[test]
fn window_forgets_failures_before_a_close() {
    let policy = FailurePolicy::ConsecutiveFailures(3);
    let mut w = Window::default();
    for t in [10, 20, 30, 40] {
        w.record_failure(t, policy, t == 40);
    }
    assert_eq!(
        w.count(),
        3,
        "a consecutive window keeps only the last threshold failures"
    );
    assert!(w.tripped(policy));
    w.forget_before(Some(25));
    assert_eq!(w.count(), 2);
    w.record_success();
    assert!(w.is_empty());
}

#[test]
fn break_grows_by_the_multiplier_up_to_the_cap_with_bounded_jitter() {
    let c = config();
    let breaks: Vec<u64> = (1..=4)
        .map(|trips| machine::break_ms(&c, trips, 0))
        .collect();
    assert_eq!(breaks, vec![10_000, 20_000, 25_000, 25_000]);
    let fixed = Config::default();
    assert_eq!(
        machine::break_ms(&fixed, 9, 0),
        30_000,
        "multiplier 1.0 keeps the seed's fixed break"
    );
    assert_eq!(machine::break_ms(&fixed, u32::MAX, 0), 30_000);
    let huge = Config {
        backoff_multiplier: 1e6,
        max_recovery_timeout_ms: Some(fleetbreaker_core::config::MAX_DURATION_MS),
        ..Config::default()
    };
    assert_eq!(
        machine::break_ms(&huge, 1000, 0),
        fleetbreaker_core::config::MAX_DURATION_MS,
        "no overflow"
    );
    let uncapped = Config {
        backoff_multiplier: 2.0,
        ..Config::default()
    };
    assert_eq!(
        machine::break_ms(&uncapped, 20, 0),
        fleetbreaker_core::config::DEFAULT_MAX_RECOVERY_TIMEOUT_MS,
        "a growing break without a cap stops at the default cap, not a year away"
    );

    let jittery = Config {
        recovery_jitter: 0.5,
        ..Config::default()
    };
    let draws: Vec<u64> = (0..200)
        .map(|seed| machine::break_ms(&jittery, 1, seed))
        .collect();
    assert!(draws.iter().all(|&b| (30_000..=45_000).contains(&b)));
    assert!(
        draws
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 50,
        "jitter spreads the breaks"
    );
    assert_eq!(
        machine::break_ms(&jittery, 1, 42),
        machine::break_ms(&jittery, 1, 42),
        "pure: same seed, same break"
    );
}

#[test]
fn info_reports_the_wait_of_each_state() {
    let c = config();
    let window = Window::default();
    let info = |s: Shared| {
        machine::info(
            &ctx(&c),
            &s.record,
            (window.count(), window.slow_count()),
            false,
        )
        .retry_after_ms
    };
    assert_eq!(info(shared(S::Closed, |_| {})), None);
    assert_eq!(
        info(shared(S::Open, |r| r.open_until_ms = Some(NOW + 70))),
        Some(70)
    );
    assert_eq!(
        info(shared(S::Open, |r| r.open_until_ms = Some(NOW - 70))),
        Some(0)
    );
    assert_eq!(
        info(shared(S::HalfOpen, |r| {
            r.probe_owner = Some("x#1".into());
            r.probe_lease_until_ms = Some(NOW + 9);
        })),
        Some(9)
    );
    assert_eq!(info(shared(S::HalfOpen, |_| {})), Some(0));
    assert_eq!(
        info(shared(S::ForcedOpen, |r| r.override_until_ms = Some(NOW + 3))),
        Some(3)
    );
    assert_eq!(info(shared(S::ForcedOpen, |_| {})), None);
    assert_eq!(info(shared(S::ForcedClosed, |_| {})), None);
}

#[test]
fn tokens_match_only_their_own_call() {
    let t = Token {
        environment: "env-1",
        permit_id: 12,
    };
    assert_eq!(t.to_string(), "env-1#12");
    assert!(t.matches("env-1#12"));
    for other in [
        "env-1#1",
        "env-1#123",
        "env-10#12",
        "env-1",
        "env-1#",
        "#12",
        "env-1#12x",
    ] {
        assert!(!t.matches(other), "{other}");
    }
}

//! What every store must do with window counters: concurrent adds all count, shards add up,
//! environments form a set, windows and circuits stay apart, and a read of many shards works.

use std::sync::Arc;

use fleetbreaker::{Store, WindowCounts, WindowDelta};

const START: u64 = 1_700_000_000_000;
const EXPIRES: u64 = START + 60_000;

fn delta(calls: u64, failures: u64, slow_calls: u64, environment: Option<&str>) -> WindowDelta {
    WindowDelta {
        calls,
        failures,
        slow_calls,
        environment: environment.map(str::to_string),
    }
}

/// Runs the contract on `store` (a store shared by several callers, as a fleet shares it).
/// `stores` are handles on the same storage for the concurrent adders (for SQLite, one
/// connection each); each adder runs on its own task of a multi-thread runtime.
pub async fn window_counters_contract(stores: Vec<Arc<dyn Store>>) {
    let store = stores[0].clone();
    let nothing = store.read_windows("payments", &[START], 4).await.unwrap();
    assert_eq!(nothing, vec![WindowCounts::default()], "no report: zeros");

    // Eight adders, 25 reports each, over three shards.
    let adders = (0..8).map(|task: u32| {
        let store = stores[task as usize % stores.len()].clone();
        tokio::spawn(async move {
            let environment = format!("env-{task}");
            let with = task.is_multiple_of(2).then_some(environment.as_str());
            for _ in 0..25 {
                store
                    .add_to_window("payments", START, task % 3, &delta(2, 1, 1, with), EXPIRES)
                    .await
                    .unwrap();
            }
        })
    });
    for adder in adders.collect::<Vec<_>>() {
        adder.await.unwrap();
    }
    let want = WindowCounts {
        calls: 400,
        failures: 200,
        slow_calls: 200,
        environments: ["env-0", "env-2", "env-4", "env-6"]
            .map(String::from)
            .to_vec(),
    };
    let read = store.read_windows("payments", &[START], 3).await.unwrap();
    assert_eq!(read, vec![want.clone()], "every add counts, shards add up");

    // Only the shards asked for: shard 0 took tasks 0, 3 and 6.
    let shard0 = store.read_windows("payments", &[START], 1).await.unwrap();
    assert_eq!((shard0[0].calls, shard0[0].failures), (150, 75));

    // Another window and another circuit stay apart; windows come back in the order asked.
    store
        .add_to_window(
            "payments",
            START + 10_000,
            0,
            &delta(7, 0, 0, None),
            EXPIRES,
        )
        .await
        .unwrap();
    store
        .add_to_window("orders", START, 0, &delta(5, 5, 0, Some("env-9")), EXPIRES)
        .await
        .unwrap();
    let both = store
        .read_windows("payments", &[START + 10_000, START], 3)
        .await
        .unwrap();
    assert_eq!(both[0].calls, 7);
    assert!(both[0].environments.is_empty());
    assert_eq!(both[1], want);

    // A read of more shards than one request carries (DynamoDB takes 100 keys at a time).
    let wide = store
        .read_windows("payments", &[START, START + 10_000, START + 20_000], 40)
        .await
        .unwrap();
    assert_eq!(
        wide.iter().map(|w| w.calls).collect::<Vec<_>>(),
        vec![400, 7, 0]
    );
}

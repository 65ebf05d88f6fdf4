//! The operator's commands.

use std::time::Duration;

use fleetbreaker::{
    Breaker, Clock, Environment, Record, StoreError, SystemClock, WINDOW_SHARDS, window_starts,
};

use crate::{OperatorStore, StoreArgs};

/// `2026-11-28T07:05:09.123Z` for epoch milliseconds.
pub fn iso(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    let rest = ms % 86_400_000;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// `in 12.3 s` / `4.0 s ago`.
pub fn relative(ms: u64, now: u64) -> String {
    let seconds = |d: u64| {
        if d >= 3_600_000 {
            format!("{:.1} h", d as f64 / 3_600_000.0)
        } else if d >= 60_000 {
            format!("{:.1} min", d as f64 / 60_000.0)
        } else {
            format!("{:.1} s", d as f64 / 1000.0)
        }
    };
    if ms >= now {
        format!("in {}", seconds(ms - now))
    } else {
        format!("{} ago", seconds(now - ms))
    }
}

fn when(ms: Option<u64>, now: u64) -> String {
    match ms {
        Some(t) => format!("{} ({})", iso(t), relative(t, now)),
        None => "-".into(),
    }
}

fn not_found(name: &str, store: &OperatorStore) -> String {
    format!(
        "circuit '{name}' has no record in the {} (a circuit that was never written is closed; \
         check the name, or `status` to list the circuits)",
        store.describe()
    )
}

pub fn describe_record(name: &str, r: &Record, now: u64) -> String {
    let mut lines = vec![
        format!("circuit          {}", printable(name)),
        format!("state            {}", r.state),
        format!("version          {}", r.version),
        format!("opened at        {}", when(r.opened_at_ms, now)),
        format!("open until       {}", when(r.open_until_ms, now)),
        format!("trips            {}", r.trips),
    ];
    if let Some(owner) = &r.probe_owner {
        lines.push(format!(
            "probe held by    {owner}, lease until {}",
            when(r.probe_lease_until_ms, now)
        ));
    }
    lines.push(format!("probe successes  {}", r.probe_successes));
    lines.push(format!("closed at        {}", when(r.closed_at_ms, now)));
    lines.push(format!(
        "failure count    {} ({} slow calls)",
        r.failure_count, r.slow_call_count
    ));
    lines.push(format!(
        "updated          {} by {}",
        when(Some(r.updated_at_ms), now),
        r.updated_by
    ));
    if let Some(reason) = &r.override_reason {
        lines.push(format!(
            "override         {reason:?}, until {}",
            match r.override_until_ms {
                Some(t) => when(Some(t), now),
                None => "changed".into(),
            }
        ));
    }
    lines.push(format!(
        "expires (TTL)    {}",
        when(Some(r.expires_at_ms), now)
    ));
    lines.join("\n")
}

/// A circuit name as it can be printed: names written by other tools may hold control
/// characters, which must not reach a terminal raw.
pub fn printable(name: &str) -> String {
    if name.chars().any(char::is_control) {
        name.escape_debug().to_string()
    } else {
        name.to_string()
    }
}

async fn load(store: &OperatorStore, name: &str) -> Result<Option<Record>, String> {
    store.as_store().load(name).await.map_err(|e| match e {
        StoreError::Corrupt(c) => format!(
            "the record of '{}' is not valid: {}",
            printable(name),
            c.detail
        ),
        other => other.to_string(),
    })
}

/// Whether `name` has an item: a valid record, or a corrupt one (which the operator's
/// commands replace: they are the way out of it).
async fn exists(store: &OperatorStore, name: &str) -> Result<bool, String> {
    match store.as_store().load(name).await {
        Ok(record) => Ok(record.is_some()),
        Err(StoreError::Corrupt(c)) => {
            eprintln!(
                "note: the record of '{}' is not valid ({}); it is replaced",
                printable(name),
                c.detail
            );
            Ok(true)
        }
        Err(other) => Err(other.to_string()),
    }
}

/// The fleet's counters of `name` for this window and the one before (windows are aligned to
/// the circuit's last close, as the breaker aligns them), as lines; none when nobody reported
/// to either (a healthy fleet writes none).
async fn describe_windows(
    store: &OperatorStore,
    name: &str,
    closed_at_ms: Option<u64>,
    window: Duration,
    now: u64,
) -> Result<Vec<String>, String> {
    let length = (window.as_millis() as u64).max(1);
    let (start, previous) = window_starts(closed_at_ms, length, now);
    let starts: Vec<u64> = std::iter::once(start).chain(previous).collect();
    let counts = store
        .as_store()
        .read_windows(name, &starts, WINDOW_SHARDS)
        .await
        .map_err(|e| e.to_string())?;
    if counts
        .iter()
        .all(|c| c.calls == 0 && c.failures == 0 && c.environments.is_empty())
    {
        return Ok(Vec::new());
    }
    let label = ["window", "previous window"];
    Ok(counts
        .iter()
        .zip(starts.iter().copied())
        .zip(label)
        .map(|((c, start), label)| {
            format!(
                "{label:<16} {} ({window:?}): {} calls, {} failures, {} slow, {} environments reporting{}",
                iso(start),
                c.calls,
                c.failures,
                c.slow_calls,
                c.environments.len(),
                if c.environments.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.environments.join(", "))
                }
            )
        })
        .collect())
}

pub async fn status(args: &StoreArgs, name: Option<&str>, window: Duration) -> Result<(), String> {
    let store = OperatorStore::open(args).await?;
    let now = SystemClock.now_ms();
    if let Some(name) = name {
        let record = load(&store, name).await?;
        let closed_at_ms = record.as_ref().and_then(|r| r.closed_at_ms);
        let windows = describe_windows(&store, name, closed_at_ms, window, now).await?;
        match record {
            Some(r) => println!("{}", describe_record(name, &r, now)),
            // Environments may be counting toward `minimum_environments` before any trip.
            None if !windows.is_empty() => {
                println!("circuit          {}", printable(name));
                println!("state            CLOSED (no record)");
            }
            None => return Err(not_found(name, &store)),
        }
        for line in windows {
            println!("{line}");
        }
        return Ok(());
    }
    let listing = match &store {
        OperatorStore::Dynamo(s) => s.list().await.map_err(|e| e.to_string())?,
        OperatorStore::Sqlite(s) => s.list().await.map_err(|e| e.to_string())?,
    };
    if listing.is_empty() {
        println!("no circuits in the {}", store.describe());
        return Ok(());
    }
    println!(
        "{:<32} {:<14} {:>8} {:<22} UPDATED BY",
        "CIRCUIT", "STATE", "VERSION", "OPEN UNTIL"
    );
    for (name, record) in listing {
        match record {
            Ok(r) => println!(
                "{:<32} {:<14} {:>8} {:<22} {}",
                printable(&name),
                r.state.as_str(),
                r.version,
                r.open_until_ms
                    .map(|t| relative(t, now))
                    .unwrap_or_else(|| "-".into()),
                r.updated_by
            ),
            Err(c) => println!(
                "{:<32} {:<14} {:>8} {}",
                printable(&name),
                "CORRUPT",
                c.version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "?".into()),
                c.detail
            ),
        }
    }
    Ok(())
}

fn operator_breaker(store: &OperatorStore, name: &str) -> Result<Breaker, String> {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let id: String = format!("operator-{user}")
        .chars()
        .map(|c| if c == '#' { '_' } else { c })
        .collect();
    let env = Environment::builder(store.as_store())
        .id(id)
        .build()
        .map_err(|e| e.to_string())?;
    Breaker::builder(name)
        .environment(&env)
        .build()
        .map_err(|e| e.to_string())
}

pub async fn force(
    args: &StoreArgs,
    name: &str,
    open: bool,
    duration: Option<Duration>,
    reason: &str,
) -> Result<(), String> {
    let store = OperatorStore::open(args).await?;
    let present = exists(&store, name).await?;
    if open && !present {
        eprintln!("note: circuit '{name}' had no record; it is created forced open");
    } else if !open && !present {
        return Err(not_found(name, &store));
    }
    let breaker = operator_breaker(&store, name)?;
    let result = if open {
        breaker.force_open(duration, reason).await
    } else {
        breaker.force_closed(duration, reason).await
    };
    result.map_err(|e| e.to_string())?;
    show(&store, name).await
}

pub async fn reset(args: &StoreArgs, name: &str) -> Result<(), String> {
    let store = OperatorStore::open(args).await?;
    if !exists(&store, name).await? {
        return Err(not_found(name, &store));
    }
    operator_breaker(&store, name)?
        .reset()
        .await
        .map_err(|e| e.to_string())?;
    show(&store, name).await
}

async fn show(store: &OperatorStore, name: &str) -> Result<(), String> {
    let record = load(store, name)
        .await?
        .ok_or_else(|| not_found(name, store))?;
    println!("{}", describe_record(name, &record, SystemClock.now_ms()));
    Ok(())
}

pub async fn watch(
    args: &StoreArgs,
    name: &str,
    interval: Duration,
    count: Option<u64>,
) -> Result<(), String> {
    use std::io::Write;
    let store = OperatorStore::open(args).await?;
    println!(
        "watching circuit '{name}' in the {} every {interval:?}",
        store.describe()
    );
    // None: not read yet; Some(None): no record; Some(Some(v)): version v.
    let mut last: Option<Option<u64>> = None;
    let mut changes = 0;
    loop {
        let now = SystemClock.now_ms();
        match load(&store, name).await {
            Ok(current) => {
                let version = current.as_ref().map(|r| r.version);
                if last != Some(version) {
                    match &current {
                        Some(r) => println!(
                            "{}  {:<13} version {:<5} by {}{}",
                            iso(now),
                            r.state.as_str(),
                            r.version,
                            r.updated_by,
                            r.override_reason
                                .as_ref()
                                .map(|x| format!(" ({x})"))
                                .unwrap_or_default()
                        ),
                        None => println!("{}  no record (closed)", iso(now)),
                    }
                    std::io::stdout().flush().ok();
                    if last.is_some() {
                        changes += 1;
                    }
                    last = Some(version);
                }
            }
            Err(e) => eprintln!("{}  cannot read: {e}", iso(now)),
        }
        if count.is_some_and(|c| changes >= c) {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}

pub async fn create_table(args: &StoreArgs) -> Result<(), String> {
    match OperatorStore::open(args).await? {
        OperatorStore::Dynamo(s) => {
            s.create_table().await.map_err(|e| e.to_string())?;
            println!(
                "created table '{}' with TTL on 'expiration'",
                s.table_name()
            );
            Ok(())
        }
        OperatorStore::Sqlite(s) => {
            println!(
                "SQLite file {} is ready (tables are created on open)",
                s.path().display()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative(12_300, 0), "in 12.3 s");
        assert_eq!(relative(0, 4_000), "4.0 s ago");
        assert_eq!(relative(0, 600_000), "10.0 min ago");
    }
}

//! Delivering events to hooks, on a thread where hooks may run.
//!
//! A hook may call any breaker, sync or async. So hooks never run while a breaker holds a
//! lock, and never on a thread of the I/O runtime (a nested call that waits on the store
//! needs those threads). A call hands its events back with its result ([`Events`]), and the
//! host delivers them where it chooses: the Rust API in the caller's task, the Python binding
//! on the caller's thread or its event loop, the Node binding on the JavaScript thread.
//! Events nobody delivers (their call finished in the background, after its caller went
//! away) are delivered on a thread of their own, `fleetbreaker-events`.

use std::sync::mpsc;

use fleetbreaker_core::{Event, StoreError, TransitionReason};

use crate::environment::Environment;
use crate::fork::{ForkLocal, Scope};

/// Events a call produced, to deliver to the environment's hooks. Dropped undelivered, they
/// are delivered on the `fleetbreaker-events` thread.
#[must_use = "deliver the events, or drop them to have them delivered in the background"]
pub struct Events {
    env: Option<Environment>,
    list: Vec<Event>,
}

impl Events {
    pub(crate) fn new(env: Environment, list: Vec<Event>) -> Events {
        Events {
            env: Some(env),
            list,
        }
    }

    /// No events: nothing to deliver.
    pub fn none() -> Events {
        Events {
            env: None,
            list: Vec::new(),
        }
    }

    /// Whether there is nothing to deliver.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The events, oldest first.
    pub fn as_slice(&self) -> &[Event] {
        &self.list
    }

    /// Runs the hooks on this thread, now. Call it with no lock held that a hook's own breaker
    /// call could need.
    pub fn deliver(mut self) {
        if let Some(env) = self.env.take() {
            env.deliver(&std::mem::take(&mut self.list));
        }
    }

    /// Adds `other`'s events after these.
    pub fn extend(&mut self, mut other: Events) {
        if self.env.is_none() {
            self.env = other.env.take();
        }
        self.list.append(&mut other.list);
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        if self.list.is_empty() {
            return;
        }
        if let Some(env) = self.env.take() {
            let list = std::mem::take(&mut self.list);
            if let Err(mpsc::SendError((env, list))) = events_thread().send((env, list)) {
                // The thread could not be started: deliver here rather than lose them.
                env.deliver(&list);
            }
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.list).finish()
    }
}

/// The one log line of an event, in every language (the packages log it through their own
/// loggers, named `fleetbreaker`): its level and text.
pub fn log_line(event: &Event) -> (log::Level, String) {
    match event {
        Event::Transition(t) => (
            log::Level::Info,
            format!(
                "circuit '{}': {} -> {} ({}), version {}{}{}",
                t.circuit,
                t.from_state,
                t.to_state,
                t.reason,
                t.version,
                if t.local_only { ", local only" } else { "" },
                if t.reason == TransitionReason::Tripped && t.slow_call_count > 0 {
                    format!(
                        ", {} of {} failures slow calls",
                        t.slow_call_count, t.failure_count
                    )
                } else {
                    String::new()
                }
            ),
        ),
        Event::CorruptRecord(f) => (
            log::Level::Warn,
            format!(
                "circuit '{}': {}; treating it as absent until the next transition replaces it",
                f.circuit, f.error
            ),
        ),
        Event::StoreDegraded(f) => (
            // A missing table or permission needs a person; an outage passes.
            match f.error {
                StoreError::Misconfigured(_) => log::Level::Error,
                _ => log::Level::Warn,
            },
            format!(
                "circuit '{}': {}; protecting locally until the store answers again",
                f.circuit, f.error
            ),
        ),
        Event::StoreRecovered(c) => (
            log::Level::Info,
            format!("circuit '{c}': the store answers again"),
        ),
    }
}

type Parcel = (Environment, Vec<Event>);

static EVENTS_THREAD: ForkLocal<mpsc::Sender<Parcel>> = ForkLocal::new(Scope::Process);

fn events_thread() -> &'static mpsc::Sender<Parcel> {
    EVENTS_THREAD.get_or_init(|| {
        let (send, receive) = mpsc::channel::<Parcel>();
        let started = std::thread::Builder::new()
            .name("fleetbreaker-events".into())
            .spawn(move || {
                for (env, list) in receive {
                    env.deliver(&list);
                }
            });
        if let Err(e) = started {
            log::error!(target: "fleetbreaker", "cannot start the events thread: {e}");
        }
        send
    })
}

//! For bindings (Python, Node) that drive breakers without an async runtime of their own: one
//! background runtime for store I/O, and a first poll on the caller's thread. Most calls need
//! no I/O and finish in that poll, with no thread hop; the rest continue on the runtime.
//!
//! The runtime belongs to one process: a forked child builds its own on first use and never
//! touches the parent's (whose threads it does not have, and whose epoll instance it shares).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::fork::{ForkLocal, Scope};

/// A boxed future a binding can poll here and hand to the runtime if it waits.
pub type BoxedFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

static RUNTIME: ForkLocal<tokio::runtime::Runtime> = ForkLocal::new(Scope::Process);

/// This process's background runtime for store I/O (the DynamoDB client needs tokio).
pub fn io_runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fleetbreaker-io")
            .enable_all()
            .build()
            .expect("the fleetbreaker I/O runtime")
    })
}

/// Polls `future` once on this thread, inside the runtime's context (where store clients find
/// their reactor and timers). `Pending` means it waits on I/O: spawn it on [`io_runtime`].
pub fn poll_once<T>(future: &mut BoxedFuture<T>) -> Poll<T> {
    let _entered = io_runtime().enter();
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

/// Polls `future` once here ([`poll_once`]): its value if it needed no I/O, else the rest of
/// it, to finish on [`io_runtime`] with [`Waiting::then`]. The one way both bindings run the
/// host's futures.
pub fn poll_here<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> Result<T, Waiting<T>> {
    let mut future: BoxedFuture<T> = Box::pin(future);
    match poll_once(&mut future) {
        Poll::Ready(value) => Ok(value),
        Poll::Pending => Err(Waiting(future)),
    }
}

/// A future that waits on I/O (from [`poll_here`]).
#[must_use = "a waiting future does nothing until `then` runs it"]
pub struct Waiting<T>(BoxedFuture<T>);

impl<T: Send + 'static> Waiting<T> {
    /// Finishes the future on [`io_runtime`] and hands its value to `done` there.
    pub fn then(self, done: impl FnOnce(T) + Send + 'static) {
        let future = self.0;
        drop(io_runtime().spawn(async move { done(future.await) }));
    }
}

/// Finishes `future` in the background: on the runtime of the caller's task if there is one,
/// else on [`io_runtime`]. For work that must complete although nobody waits for it (a
/// component call whose caller went away, the release of an abandoned probe permit).
pub(crate) fn spawn_detached(future: impl Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn(future)),
        Err(_) => drop(io_runtime().spawn(future)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_that_needs_no_io_finishes_in_the_first_poll() {
        assert!(matches!(poll_here(async { 7 }), Ok(7)));
    }

    #[test]
    fn a_future_that_waits_finishes_on_the_runtime_and_hands_its_value_over() {
        let waits = async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            11
        };
        let Err(waiting) = poll_here(waits) else {
            panic!("a sleeping future finished in its first poll");
        };
        let (send, receive) = std::sync::mpsc::sync_channel(1);
        waiting.then(move |value| send.send(value).unwrap());
        let value = receive.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(value, Ok(11));
    }
}

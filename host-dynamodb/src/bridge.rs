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

/// Finishes `future` in the background: on the runtime of the caller's task if there is one,
/// else on [`io_runtime`]. For work that must complete although nobody waits for it (a
/// component call whose caller went away, the release of an abandoned probe permit).
pub(crate) fn spawn_detached(future: impl Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn(future)),
        Err(_) => drop(io_runtime().spawn(future)),
    }
}

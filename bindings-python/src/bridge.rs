//! Runs the host's futures for Python without blocking anyone needlessly: a future is polled
//! once on the calling thread (most calls need no I/O and finish there, with no thread hop);
//! only if it waits on the store does it move to a background runtime, while a sync caller
//! waits with the GIL released, or an async caller gets an asyncio future.

use std::future::Future;
use std::task::Poll;

use fleetbreaker::bridge::{BoxedFuture, io_runtime, poll_once};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// Runs `future` for a sync caller: inline if it does not wait, else on the runtime while this
/// thread waits without the GIL.
pub fn block<T: Send + 'static>(
    py: Python<'_>,
    future: impl Future<Output = T> + Send + 'static,
) -> T {
    let mut future: BoxedFuture<T> = Box::pin(future);
    if let Poll::Ready(value) = poll_once(&mut future) {
        return value;
    }
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    io_runtime().spawn(async move {
        let _ = send.send(future.await);
    });
    py.detach(move || receive.recv().expect("a fleetbreaker task panicked"))
}

/// Runs `future` for an async caller: returns its value at once if it does not wait, else an
/// asyncio future of `loop` that the runtime resolves (through the event loop's thread).
pub fn start<T: Send + 'static>(
    py: Python<'_>,
    event_loop: Bound<'_, PyAny>,
    future: impl Future<Output = T> + Send + 'static,
    convert: fn(Python<'_>, T) -> PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let mut future: BoxedFuture<T> = Box::pin(future);
    if let Poll::Ready(value) = poll_once(&mut future) {
        return convert(py, value);
    }
    let waiter = event_loop.call_method0("create_future")?.unbind();
    let handed = waiter.clone_ref(py);
    let event_loop = event_loop.unbind();
    io_runtime().spawn(async move {
        let value = future.await;
        Python::attach(|py| {
            let outcome = convert(py, value);
            let resolve = resolver(py);
            let (ok, payload) = match outcome {
                Ok(v) => (true, v),
                Err(e) => (false, e.into_value(py).into_any()),
            };
            // The loop may be closed by now; there is nobody left to tell then.
            let _ =
                event_loop.call_method1(py, "call_soon_threadsafe", (resolve, handed, ok, payload));
        });
    });
    Ok(waiter)
}

/// `fleetbreaker._aio.resolve(future, ok, payload)`: sets the result or exception unless the
/// awaiting task was cancelled meanwhile.
fn resolver(py: Python<'_>) -> Bound<'_, PyAny> {
    static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    RESOLVE
        .get_or_init(py, || {
            py.import("fleetbreaker._aio")
                .and_then(|m| m.getattr("resolve"))
                .expect("fleetbreaker._aio.resolve")
                .unbind()
        })
        .bind(py)
        .clone()
}

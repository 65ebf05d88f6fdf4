//! Runs the host's futures for Python without blocking anyone needlessly: a future is polled
//! once on the calling thread (most calls need no I/O and finish there, with no thread hop);
//! only if it waits on the store does it move to a background runtime, while a sync caller
//! waits with the GIL released, or an async caller gets an asyncio future.
//!
//! Hooks run where a hook may call any breaker: a sync call delivers its events on the caller's
//! thread when it returns; an async call, on the event loop's thread before the awaiting task
//! resumes. Never on a thread of the I/O runtime, which a hook's own breaker call may need.

use std::future::Future;
use std::sync::Mutex;

use fleetbreaker::bridge::poll_here;
use fleetbreaker::{Delivery, Events};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// Runs `future` for a sync caller: inline if it does not wait, else on the runtime while this
/// thread waits without the GIL. Delivers its events on this thread, then returns its value.
pub fn block<T: Send + 'static>(
    py: Python<'_>,
    future: impl Future<Output = Delivery<T>> + Send + 'static,
) -> T {
    let delivery = poll_here(future).unwrap_or_else(|waiting| {
        let (send, receive) = std::sync::mpsc::sync_channel(1);
        waiting.then(move |delivery| drop(send.send(delivery)));
        py.detach(move || receive.recv().expect("a fleetbreaker task panicked"))
    });
    delivery.deliver()
}

/// [`block`] for a future that emits no events (store administration).
pub fn block_plain<T: Send + 'static>(
    py: Python<'_>,
    future: impl Future<Output = T> + Send + 'static,
) -> T {
    block(py, async move {
        Delivery {
            value: future.await,
            events: Events::none(),
        }
    })
}

/// Events handed to the event loop with a result (`fleetbreaker._aio.resolve` delivers them).
#[pyclass(module = "fleetbreaker._native", frozen)]
pub struct PendingEvents(Mutex<Option<Events>>);

#[pymethods]
impl PendingEvents {
    /// Runs the hooks now, on this thread.
    fn deliver(&self) {
        if let Some(events) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            events.deliver();
        }
    }
}

/// Runs `future` for its caller: a sync caller (no `event_loop`) waits for it with [`block`];
/// an async one gets its value at once if it does not wait (its events delivered here, on the
/// loop's thread), else an asyncio future of `event_loop` that the runtime resolves through
/// the loop, which first delivers the events.
pub fn call<T: Send + 'static>(
    py: Python<'_>,
    event_loop: Option<Bound<'_, PyAny>>,
    future: impl Future<Output = Delivery<T>> + Send + 'static,
    convert: fn(Python<'_>, T) -> PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let Some(event_loop) = event_loop else {
        return convert(py, block(py, future));
    };
    let waiting = match poll_here(future) {
        Ok(delivery) => return convert(py, delivery.deliver()),
        Err(waiting) => waiting,
    };
    let waiter = event_loop.call_method0("create_future")?.unbind();
    let handed = waiter.clone_ref(py);
    let event_loop = event_loop.unbind();
    waiting.then(move |Delivery { value, events }| {
        Python::attach(|py| {
            let outcome = convert(py, value);
            let resolve = resolver(py);
            let (ok, payload) = match outcome {
                Ok(v) => (true, v),
                Err(e) => (false, e.into_value(py).into_any()),
            };
            let events = match Py::new(py, PendingEvents(Mutex::new(Some(events)))) {
                Ok(events) => events.into_any(),
                Err(_) => py.None(),
            };
            // If the loop is closed, nobody awaits the result; the events are then delivered
            // on the events thread when the Python object holding them is freed.
            let _ = event_loop.call_method1(
                py,
                "call_soon_threadsafe",
                (resolve, handed, ok, payload, events),
            );
        });
    });
    Ok(waiter)
}

/// `fleetbreaker._aio.resolve(future, ok, payload, events)`: delivers the events, then sets the
/// result or exception unless the awaiting task was cancelled meanwhile.
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

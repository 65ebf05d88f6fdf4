//! The one place where the host's errors become Python exceptions (the classes live in
//! `fleetbreaker.exceptions`, so they keep the Powertools behaviour).

use fleetbreaker::Error;
use fleetbreaker::embed::Misuse;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = MODULE.get_or_try_init(py, || {
        py.import("fleetbreaker.exceptions").map(Bound::unbind)
    })?;
    module.bind(py).getattr(name)
}

fn raise<'py>(py: Python<'py>, name: &str, args: impl pyo3::call::PyCallArgs<'py>) -> PyErr {
    match class(py, name).and_then(|c| c.call1(args)) {
        Ok(instance) => PyErr::from_value(instance),
        Err(e) => e,
    }
}

pub fn to_py(py: Python<'_>, error: Error) -> PyErr {
    match error {
        Error::Config(e) => {
            let err = raise(py, "CircuitBreakerConfigError", (e.to_string(),));
            let _ = err.value(py).setattr("field", e.field);
            err
        }
        Error::Store(e) => {
            let kind = e.kind();
            let err = raise(py, "CircuitBreakerPersistenceError", (e.to_string(),));
            let _ = err.value(py).setattr("kind", kind);
            err
        }
        // A fault of the component, or (a safety net: rejections are returned as values) one.
        other => raise(py, "CircuitBreakerError", (other.to_string(),)),
    }
}

/// A helper used on the wrong store, or with an unknown argument: Python's own argument errors.
pub fn misuse(m: Misuse) -> PyErr {
    match m {
        Misuse::UnknownFault(_) => pyo3::exceptions::PyValueError::new_err(m.to_string()),
        _ => pyo3::exceptions::PyTypeError::new_err(m.to_string()),
    }
}

/// Maps a host result for Python.
pub fn check<T>(py: Python<'_>, result: Result<T, Error>) -> PyResult<T> {
    result.map_err(|e| to_py(py, e))
}

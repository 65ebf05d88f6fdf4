//! Python values to and from the host's [`Value`]: the configuration and names are checked
//! in Rust (`fleetbreaker::embed`), the same way as for Node.

use fleetbreaker::Error;
use fleetbreaker::embed::{self, Casing, Value};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use crate::errors::check;

/// What a Python value is, for the host's checks (which say what was wrong with it).
pub(crate) fn value_of(obj: &Bound<'_, PyAny>) -> Value {
    if obj.is_none() {
        Value::Null
    } else if let Ok(b) = obj.cast::<PyBool>() {
        Value::Bool(b.is_true())
    } else if obj.is_instance_of::<PyInt>() {
        match obj.extract::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Float(obj.extract::<f64>().unwrap_or(f64::INFINITY)),
        }
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        Value::Float(f.value())
    } else if let Ok(s) = obj.cast::<PyString>() {
        s.to_cow()
            .map_or(Value::BadText, |s| Value::Text(s.into_owned()))
    } else {
        Value::Other(
            obj.get_type()
                .name()
                .map_or_else(|_| "object".to_string(), |n| n.to_string()),
        )
    }
}

fn to_py(py: Python<'_>, value: Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, b).to_owned().into_any().unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Text(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::BadText | Value::Other(_) => py.None(),
    })
}

/// Named values as a dict.
pub(crate) fn fields_dict<'py>(
    py: Python<'py>,
    fields: Vec<(&'static str, Value)>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (field, value) in fields {
        dict.set_item(field, to_py(py, value)?)?;
    }
    Ok(dict)
}

/// A dict of options, by name, as the host's checks take them.
pub(crate) fn fields_of(fields: &Bound<'_, PyDict>) -> PyResult<Vec<(String, Value)>> {
    fields
        .iter()
        .map(|(key, value)| Ok((key.extract::<String>()?, value_of(&value))))
        .collect()
}

/// A circuit's configuration, checked: what `CircuitBreakerConfig` holds.
#[pyclass(module = "fleetbreaker._native", frozen)]
pub struct Settings {
    pub inner: embed::Settings,
}

#[pymethods]
impl Settings {
    /// Checks `fields` (snake_case names; an absent field takes its default); raises
    /// `CircuitBreakerConfigError` naming the field and the value.
    #[new]
    fn new(py: Python<'_>, fields: &Bound<'_, PyDict>) -> PyResult<Settings> {
        let parsed = embed::Settings::parse(Casing::Snake, fields_of(fields)?);
        let inner = check(py, parsed.map_err(Error::Config))?;
        Ok(Settings { inner })
    }

    /// Every field's name and checked value (durations in seconds, as floats).
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        fields_dict(py, self.inner.values())
    }
}

/// Checks a circuit name; raises `CircuitBreakerConfigError` naming `name`.
#[pyfunction]
pub fn check_name(py: Python<'_>, name: &Bound<'_, PyAny>) -> PyResult<String> {
    check(py, embed::check_name(value_of(name)).map_err(Error::Config))
}

/// The error for a second, different configuration of circuit `name` in one environment.
#[pyfunction]
pub fn config_conflict(py: Python<'_>, name: &str) -> PyErr {
    crate::errors::to_py(py, Error::Config(embed::config_conflict(name)))
}

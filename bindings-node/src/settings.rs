//! JavaScript values to and from the host's [`Value`]: the configuration and names are checked
//! in Rust (`fleetbreaker::embed`), the same way as for Python.

use fleetbreaker::embed::{self, Casing, Value};
use fleetbreaker::{ConfigError, Error};
use napi::bindgen_prelude::{JsObjectValue, Null, Object, Unknown};
use napi::{Env, JsString, ValueType};
use napi_derive::napi;

use crate::errors::to_napi;

/// Integers a JavaScript number holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// What a JavaScript value is, for the host's checks; `None` for `undefined` (absent).
pub(crate) fn value_of(v: &Unknown<'_>) -> napi::Result<Option<Value>> {
    Ok(Some(match v.get_type()? {
        ValueType::Undefined => return Ok(None),
        ValueType::Null => Value::Null,
        ValueType::Boolean => Value::Bool(unsafe { v.cast::<bool>()? }),
        ValueType::Number => {
            let n = unsafe { v.cast::<f64>()? };
            if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER {
                Value::Int(n as i64)
            } else {
                Value::Float(n)
            }
        }
        ValueType::String => {
            let units = unsafe { v.cast::<JsString>()? }.into_utf16()?;
            // The buffer ends with the NUL napi writes after the string.
            let units = units.as_slice().split_last().map_or(&[][..], |(_, s)| s);
            String::from_utf16(units).map_or(Value::BadText, Value::Text)
        }
        ValueType::Function => Value::Other("function".into()),
        ValueType::Symbol => Value::Other("symbol".into()),
        ValueType::BigInt => Value::Other("bigint".into()),
        _ => Value::Other("object".into()),
    }))
}

/// An object's properties, as the host's checks take them (`undefined` ones are absent); a
/// value that is not an object is refused as `field`.
pub(crate) fn fields_of(
    env: &Env,
    object: &Unknown<'_>,
    field: &str,
) -> napi::Result<Vec<(String, Value)>> {
    let mut fields = Vec::new();
    match object.get_type()? {
        ValueType::Undefined | ValueType::Null => {}
        ValueType::Object => {
            let object = unsafe { object.cast::<Object>()? };
            for key in Object::keys(&object)? {
                let value = object.get_named_property::<Unknown>(&key)?;
                if let Some(value) = value_of(&value)? {
                    fields.push((key, value));
                }
            }
        }
        _ => {
            let shown = value_of(object)?.unwrap_or(Value::Null);
            let refusal = ConfigError {
                field: field.into(),
                message: format!("must be an object, got {shown}"),
            };
            return Err(to_napi(env, Error::Config(refusal)));
        }
    }
    Ok(fields)
}

/// A circuit's configuration, checked: what a breaker's `config` shows.
#[napi]
pub struct NativeSettings {
    pub(crate) inner: embed::Settings,
}

#[napi]
impl NativeSettings {
    /// Checks `config` (camelCase names, seconds; `undefined` or absent: the default); throws
    /// an `ERR_CIRCUIT_CONFIG` error naming the field and the value.
    #[napi(factory)]
    pub fn parse(env: &Env, config: Unknown<'_>) -> napi::Result<NativeSettings> {
        let refuse = |e: ConfigError| to_napi(env, Error::Config(e));
        let fields = fields_of(env, &config, "config")?;
        let inner = embed::Settings::parse(Casing::Camel, fields).map_err(refuse)?;
        Ok(NativeSettings { inner })
    }

    /// Every field (camelCase) and its checked value; durations in seconds.
    #[napi]
    pub fn values<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        to_object(env, self.inner.values())
    }

    /// Whether `other` is the same configuration.
    #[napi]
    pub fn equals(&self, other: &NativeSettings) -> bool {
        self.inner == other.inner
    }
}

/// An object of `fields`, each named in camelCase.
pub(crate) fn to_object<'env>(
    env: &'env Env,
    fields: Vec<(&'static str, Value)>,
) -> napi::Result<Object<'env>> {
    let mut object = Object::new(env)?;
    for (name, value) in fields {
        let name = Casing::Camel.spell(name);
        match value {
            Value::Bool(b) => object.set_named_property(&name, b)?,
            Value::Int(i) => object.set_named_property(&name, i as f64)?,
            Value::Float(f) => object.set_named_property(&name, f)?,
            Value::Text(s) => object.set_named_property(&name, s)?,
            Value::Null | Value::BadText | Value::Other(_) => {
                object.set_named_property(&name, Null)?
            }
        }
    }
    Ok(object)
}

/// Checks a circuit name; throws an `ERR_CIRCUIT_CONFIG` error naming `name`.
#[napi]
pub fn check_name(env: &Env, name: Unknown<'_>) -> napi::Result<String> {
    let value = value_of(&name)?.unwrap_or(Value::Null);
    embed::check_name(value).map_err(|e| to_napi(env, Error::Config(e)))
}

/// Throws the error for a second, different configuration of circuit `name` in one environment.
#[napi]
pub fn config_conflict(env: &Env, name: String) -> napi::Result<()> {
    Err(to_napi(env, Error::Config(embed::config_conflict(&name))))
}

//! The one place where the host's errors become JavaScript errors. Each carries its `code` as
//! a property, set here (`ERR_CIRCUIT_CONFIG` with `field`, `ERR_CIRCUIT_STORE` with `kind`,
//! `ERR_CIRCUIT_INTERNAL`); `lib/errors.js` picks the error class by that code.

use fleetbreaker::Error;
use napi::bindgen_prelude::{JsObjectValue, JsValue};
use napi::{Env, Status};

pub fn to_napi(env: &Env, error: Error) -> napi::Error {
    built(env, error).unwrap_or_else(|failed| failed)
}

fn built(env: &Env, error: Error) -> napi::Result<napi::Error> {
    let code = match &error {
        Error::Config(_) => "ERR_CIRCUIT_CONFIG",
        Error::Store(_) => "ERR_CIRCUIT_STORE",
        Error::Component(_) | Error::Open(_) => "ERR_CIRCUIT_INTERNAL",
    };
    let message = error.to_string();
    let mut object = env.create_error(napi::Error::new(Status::GenericFailure, message))?;
    object.set_named_property("code", code)?;
    match error {
        Error::Config(e) => object.set_named_property("field", e.field)?,
        Error::Store(e) => object.set_named_property("kind", e.kind())?,
        Error::Component(_) | Error::Open(_) => {}
    }
    Ok(napi::Error::from(object.to_unknown()))
}

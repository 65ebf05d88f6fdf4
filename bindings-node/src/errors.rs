//! The one place where the host's errors become napi errors. The message starts with a code
//! the JavaScript layer (`lib/errors.js`) turns into its own error classes:
//! `[ERR_CIRCUIT_CONFIG:field]`, `[ERR_CIRCUIT_STORE:kind]`, `[ERR_CIRCUIT_INTERNAL]`.

use fleetbreaker::Error;
use napi::Status;

pub fn to_napi(error: Error) -> napi::Error {
    let message = match &error {
        Error::Config(e) => format!("[ERR_CIRCUIT_CONFIG:{}] {}", e.field, e.message),
        Error::Store(e) => format!("[ERR_CIRCUIT_STORE:{}] {e}", e.kind()),
        Error::Component(m) => format!("[ERR_CIRCUIT_INTERNAL] breaker component: {m}"),
        Error::Open(i) => format!("[ERR_CIRCUIT_INTERNAL] circuit '{}' is {}", i.name, i.state),
    };
    napi::Error::new(Status::GenericFailure, message)
}

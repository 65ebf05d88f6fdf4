//! The crate's one error type.

use std::fmt;

use fleetbreaker_core::{CircuitInfo, ConfigError, StoreError};

/// What can go wrong when using a breaker.
#[derive(Clone, Debug)]
pub enum Error {
    /// The circuit rejected the call; carries what the caller may want to know (state,
    /// `retry_after_ms`, ...).
    Open(Box<CircuitInfo>),
    /// A name or a configuration was refused; names the field.
    Config(ConfigError),
    /// An operator action could not reach the store. Protected calls never see this.
    Store(StoreError),
    /// The breaker component could not be loaded or run (a packaging or internal fault).
    Component(String),
}

impl Error {
    /// The circuit info of an [`Error::Open`].
    pub fn circuit(&self) -> Option<&CircuitInfo> {
        match self {
            Error::Open(info) => Some(info),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open(info) => {
                write!(f, "circuit '{}' is {}", info.name, info.state)?;
                if let Some(ms) = info.retry_after_ms {
                    write!(f, "; retry after {ms} ms")?;
                }
                Ok(())
            }
            Error::Config(e) => e.fmt(f),
            Error::Store(e) => e.fmt(f),
            Error::Component(m) => write!(f, "breaker component: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        Error::Store(e)
    }
}

impl From<wasmtime::Error> for Error {
    fn from(e: wasmtime::Error) -> Error {
        Error::Component(format!("{e:?}"))
    }
}

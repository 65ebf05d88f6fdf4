//! The breaker component and what runs it: the generated bindings, the host's imports (store,
//! clock, events), the engine's settings (shared with the build script that precompiles the
//! component) and the process's one runtime.

pub(crate) mod bindings;
pub(crate) mod engine_config;
pub mod host;
pub(crate) mod runtime;

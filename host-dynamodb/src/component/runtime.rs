//! The process's one engine and the breaker component, loaded once from the native code the
//! build script precompiled.

use std::sync::OnceLock;

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::Error;
use crate::component::bindings::FleetbreakerPre;
use crate::component::engine_config::engine_config;
use crate::component::host::{HostCtx, add_to_linker};

static PRECOMPILED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fleetbreaker.cwasm"));
static PORTABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fleetbreaker.wasm"));
static WIT_PACKAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fleetbreaker-wit.wasm"));
static BUILT_BY: &str = include_str!(concat!(env!("OUT_DIR"), "/engine.txt"));

/// The breaker component as portable WebAssembly, for other runtimes and for inspection.
pub fn component_wasm() -> &'static [u8] {
    PORTABLE
}

/// The WIT package `fleetbreaker:breaker`, encoded as WebAssembly (what `wasm-tools component
/// wit --wasm` makes of `wit/`): for embedders that generate their own bindings.
pub fn wit_package() -> &'static [u8] {
    WIT_PACKAGE
}

/// The engine and the component, ready to instantiate.
pub(crate) struct Runtime {
    pub(crate) pre: FleetbreakerPre<HostCtx>,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The loaded runtime; the first call loads it (about a fifth of a millisecond).
pub(crate) fn runtime() -> Result<&'static Runtime, Error> {
    RUNTIME
        .get_or_init(load)
        .as_ref()
        .map_err(|e| Error::Component(e.clone()))
}

fn load() -> Result<Runtime, String> {
    let engine = Engine::new(&engine_config()).map_err(|e| format!("creating the engine: {e}"))?;
    let component = deserialize(&engine, PRECOMPILED)?;
    let mut linker = Linker::new(&engine);
    add_to_linker(&mut linker, |ctx| ctx).map_err(|e| format!("linking the imports: {e}"))?;
    let pre = linker
        .instantiate_pre(&component)
        .and_then(FleetbreakerPre::new)
        .map_err(|e| format!("preparing the component: {e:?}"))?;
    Ok(Runtime { pre })
}

/// Loads precompiled native code, or explains clearly why this engine refuses it. With the
/// wasmtime version pinned exactly and one function configuring both engines, a refusal can
/// only be a build fault, so the message names both sides.
pub(crate) fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<Component, String> {
    // SAFETY: the bytes are this crate's own build output (`include_bytes!` of what the build
    // script's wasmtime precompiled), never input from outside; wasmtime still checks that
    // they match this engine's version, target and settings, and refuses them otherwise.
    unsafe { Component::deserialize(engine, bytes) }.map_err(|e| {
        format!(
            "the precompiled breaker component does not match this engine: it was built by \
             {BUILT_BY}; this is wasmtime 48.0.8 running on {}-{} with the runtime's engine \
             settings ({e})",
            std::env::consts::ARCH,
            std::env::consts::OS,
        )
    })
}

#[doc(hidden)]
pub fn precompiled_component() -> &'static [u8] {
    PRECOMPILED
}

/// Loads the embedded precompiled component into `engine`; for tests of the guard.
#[doc(hidden)]
pub fn check_precompiled(engine: &Engine) -> Result<(), String> {
    deserialize(engine, PRECOMPILED).map(drop)
}

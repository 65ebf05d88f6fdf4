//! The generated bindings of the WIT package, and the translation between their types and the
//! crate's public ones. Nothing generated leaves this module.

wasmtime::component::bindgen!({
    path: "../core/wit",
    world: "fleetbreaker",
    imports: { "fleetbreaker:breaker/store": async },
    exports: { default: async },
});

pub(crate) use self::fleetbreaker::breaker::types as w;

fleetbreaker_core::wit_conversions!(w);

// One engine configuration for both sides: the build script precompiles the component with it
// (plus a baseline target), and the runtime loads the artifact with it. A precompiled artifact
// only loads into an engine with the same settings, so they must come from one place.

/// The engine settings shared by precompilation and loading.
pub fn engine_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    // On by default, and it doubles or triples the cost of every call into the component;
    // the breaker uses no component-model concurrency.
    config.concurrency_support(false);
    // The breaker uses no GC types; the runtime is built without the `gc` feature.
    config.gc_support(false);
    config
}

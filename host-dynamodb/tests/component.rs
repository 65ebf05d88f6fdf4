//! The built component: what it imports, and that the precompiled artifact loads.

use wasmparser::{Parser, Payload};

/// The component's top-level imports, by name.
fn component_imports(bytes: &[u8]) -> Vec<String> {
    let mut imports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("the component parses") {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    imports.push(import.unwrap().name.0.to_string());
                }
            }
            _ => {}
        }
    }
    imports
}

#[test]
fn component_imports_only_fleetbreaker_interfaces() {
    let imports = component_imports(fleetbreaker::component_wasm());
    assert!(
        !imports.is_empty(),
        "the component imports its store, clock and events"
    );
    let foreign: Vec<&String> = imports
        .iter()
        .filter(|name| !name.starts_with("fleetbreaker:breaker/"))
        .collect();
    assert!(
        foreign.is_empty(),
        "the component may import only fleetbreaker:breaker/*, found {foreign:?}"
    );
    for wanted in ["store", "clock", "events"] {
        assert!(
            imports
                .iter()
                .any(|n| n.starts_with(&format!("fleetbreaker:breaker/{wanted}@"))),
            "missing import {wanted}: {imports:?}"
        );
    }
    assert!(
        !imports.iter().any(|n| n.contains("wasi")),
        "no WASI: {imports:?}"
    );
}

#[test]
fn import_check_sees_wasi_when_present() {
    // The check above must be able to fail: a component importing WASI is reported.
    let with_wasi =
        wat::parse_str(r#"(component (import "wasi:cli/environment@0.2.0" (instance)))"#).unwrap();
    assert_eq!(
        component_imports(&with_wasi),
        vec!["wasi:cli/environment@0.2.0".to_string()]
    );
}

#[test]
fn precompiled_component_is_native_code_for_this_engine() {
    let native = fleetbreaker::precompiled_component();
    assert_eq!(
        wasmtime::Engine::detect_precompiled(native),
        Some(wasmtime::Precompiled::Component),
        "the crate embeds a precompiled component, not WebAssembly to compile"
    );
    // Building a breaker loads it; this fails if the engine refused it.
    fleetbreaker::Breaker::builder("load-check")
        .store(fleetbreaker::MemoryStore::new())
        .build()
        .expect("the precompiled component loads into the runtime engine");
}

#[test]
fn component_sizes_are_reported() {
    let wasm = fleetbreaker::component_wasm().len();
    let native = fleetbreaker::precompiled_component().len();
    println!("component: {wasm} bytes of WebAssembly, {native} bytes precompiled");
    assert!(wasm > 1_000 && native > wasm);
}

#[test]
fn an_engine_with_other_settings_refuses_the_artifact_with_a_clear_error() {
    let mut config = wasmtime::Config::new();
    config.concurrency_support(false).signals_based_traps(false);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let err = fleetbreaker::check_precompiled(&engine).unwrap_err();
    assert!(err.contains("does not match this engine"), "{err}");
    assert!(err.contains("built by wasmtime 48.0.8"), "{err}");
}

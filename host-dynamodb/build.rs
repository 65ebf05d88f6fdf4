//! Builds the breaker component and precompiles it, so that the library loads native code at
//! run time instead of compiling WebAssembly:
//!
//! 1. a nested `cargo build` of `fleetbreaker-core` for `wasm32-unknown-unknown`;
//! 2. `wit-component` turns the core module into a component;
//! 3. a build-time wasmtime (with Cranelift) precompiles it for a baseline CPU of the target,
//!    with the same engine settings the runtime uses (`src/component/engine_config.rs`).
//!
//! Outputs in `OUT_DIR`: `fleetbreaker.wasm` (portable) and `fleetbreaker.cwasm` (native),
//! `engine.txt`, which describes the engine that precompiled it, and `fleetbreaker-wit.wasm`,
//! the WIT package encoded as WebAssembly (the CLI's `component` command writes it out).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "src/component/engine_config.rs"]
mod engine_config;

const GUEST_TARGET: &str = "wasm32-unknown-unknown";
const GUEST_PROFILE: &str = "guest";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let (core_dir, core_rel) = locate_core(&manifest_dir);
    // `core/wit` links to the top-level `wit/`, so that a source package of the core (the
    // Python sdist) carries the WIT package with it.
    let wit_dir = core_dir.join("wit");
    // Watched by paths relative to this package: clones of the repository that share one
    // target directory share this script's run, and an absolute path would watch only the
    // clone that ran it last. The WIT package is watched through its real place, as cargo
    // does not look inside a directory behind a link.
    let wit_rel = if core_rel == "core" {
        "core/wit"
    } else {
        "../wit"
    };
    for path in [
        format!("{core_rel}/src"),
        format!("{core_rel}/Cargo.toml"),
        wit_rel.to_string(),
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-changed=src/component/engine_config.rs");
    println!("cargo:rerun-if-env-changed=FLEETBREAKER_GUEST_WASM");

    let module = match env::var_os("FLEETBREAKER_GUEST_WASM") {
        // A prebuilt core module (for packaging pipelines that build the guest once).
        Some(path) => std::fs::read(&path)
            .unwrap_or_else(|e| panic!("cannot read FLEETBREAKER_GUEST_WASM={path:?}: {e}")),
        None => build_guest(&core_dir, &out_dir),
    };

    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|e| e.validate(true).encode())
        .unwrap_or_else(|e| panic!("encoding the breaker component failed: {e:?}"));
    std::fs::write(out_dir.join("fleetbreaker.wasm"), &component).unwrap();

    // The WIT package in its binary form, for embedders that generate their own bindings.
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(&wit_dir)
        .unwrap_or_else(|e| panic!("reading the WIT package in {}: {e:?}", wit_dir.display()));
    let wit = wit_component::encode(&resolve, package)
        .unwrap_or_else(|e| panic!("encoding the WIT package failed: {e:?}"));
    std::fs::write(out_dir.join("fleetbreaker-wit.wasm"), wit).unwrap();

    let target = env::var("TARGET").unwrap();
    let mut config = engine_config::engine_config();
    // An explicit target turns off detection of this machine's CPU features: the artifact
    // must run on any CPU of the architecture (the package is built here, run on Lambda).
    config
        .target(&target)
        .unwrap_or_else(|e| panic!("wasmtime cannot target {target}: {e}"));
    let engine = wasmtime::Engine::new(&config).unwrap();
    let native = engine
        .precompile_component(&component)
        .unwrap_or_else(|e| panic!("precompiling the breaker component failed: {e:?}"));
    std::fs::write(out_dir.join("fleetbreaker.cwasm"), &native).unwrap();
    std::fs::write(
        out_dir.join("engine.txt"),
        format!("wasmtime 48.0.8 (Cranelift) for {target}, baseline CPU features"),
    )
    .unwrap();
}

/// The core crate: beside this crate in the repository, or vendored into it by packaging;
/// with its path relative to this package.
fn locate_core(manifest_dir: &Path) -> (PathBuf, &'static str) {
    for relative in ["../core", "core"] {
        let candidate = manifest_dir.join(relative);
        if candidate.join("Cargo.toml").exists() {
            return (candidate.canonicalize().unwrap(), relative);
        }
    }
    panic!(
        "cannot find the fleetbreaker-core sources next to {}",
        manifest_dir.display()
    );
}

/// Builds the core as a WebAssembly module with a nested cargo.
fn build_guest(core_dir: &Path, out_dir: &Path) -> Vec<u8> {
    // <target>/<profile>/build/<pkg>/out -> <target>/<profile>/wasm-guest. Outside OUT_DIR,
    // whose hash changes with features, so the guest is not rebuilt cold for every flavour.
    let guest_target_dir = out_dir
        .ancestors()
        .nth(3)
        .map(|profile_dir| profile_dir.join("wasm-guest"))
        .unwrap_or_else(|| out_dir.join("wasm-guest"));
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(core_dir.join("Cargo.toml"))
        .args([
            "--lib",
            "--target",
            GUEST_TARGET,
            "--profile",
            GUEST_PROFILE,
        ])
        .arg("--target-dir")
        .arg(&guest_target_dir);
    // The outer build's settings are for the host, not for the guest.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_LTO",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for the guest: {e}"));
    if !status.success() {
        panic!(
            "building the breaker guest failed ({status}); is the target installed? \
             run `rustup target add {GUEST_TARGET}`"
        );
    }
    let wasm = guest_target_dir
        .join(GUEST_TARGET)
        .join(GUEST_PROFILE)
        .join("fleetbreaker_core.wasm");
    std::fs::read(&wasm).unwrap_or_else(|e| panic!("cannot read {}: {e}", wasm.display()))
}

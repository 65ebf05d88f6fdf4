# Shared by the scripts: where builds go, the toolchain, and timed phases.

# One target directory outside the clone, shared by every build of the project (workspace,
# guest, bindings), so a fresh clone on a machine that built before starts warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fleetbreaker/target}"

# Runs "$@" as a named phase and prints how long it took.
phase() {
    local name="$1"
    shift
    local start=$SECONDS
    echo "==> $name"
    "$@"
    echo "<== $name: $((SECONDS - start)) s"
}

# The breaker component is built for wasm32-unknown-unknown by the host's build script.
ensure_toolchain() {
    if ! command -v cargo >/dev/null; then
        echo "cargo not found: install Rust with rustup (https://rustup.rs)" >&2
        return 1
    fi
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
        rustup target add wasm32-unknown-unknown
    fi
}

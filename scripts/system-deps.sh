#!/usr/bin/env bash
# Install the Debian packages the test suite drives for real (promtool, ...),
# only when the command is missing. Needs root (CI and dev machines are root).
set -euo pipefail
# command -> Debian package
declare -A NEED=(
  [promtool]=prometheus
  [sshd]=openssh-server
  [rpmbuild]=rpm
  [rpmlint]=rpmlint
  [systemd-analyze]=systemd
  [chromium]=chromium
  [ip]=iproute2
  [cmake]=cmake   # scripts/build-llama-server.sh
  [g++]=g++
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
if ((${#missing[@]})); then
  echo "system-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Claude Code CLI for tests/clients, into a project-local npm prefix (never global).
# The version is pinned so CI tests what was tested here; a second run only checks the binary.
CLAUDE_CODE_VERSION=2.1.197
NPM_PREFIX="$(cd "$(dirname "$0")/.." && pwd)/.cache/npm"
CLAUDE_BIN="$NPM_PREFIX/node_modules/.bin/claude"
if ! "$CLAUDE_BIN" --version 2>/dev/null | grep -q "^$CLAUDE_CODE_VERSION "; then
  command -v npm >/dev/null 2>&1 || {
    echo "system-deps: npm is needed for the Claude Code CLI" >&2; exit 1; }
  echo "system-deps: installing @anthropic-ai/claude-code@$CLAUDE_CODE_VERSION into $NPM_PREFIX"
  mkdir -p "$NPM_PREFIX"
  npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"
  # npm versions that hold back install scripts leave a placeholder: run the copy step.
  "$CLAUDE_BIN" --version >/dev/null 2>&1 ||
    (cd "$NPM_PREFIX/node_modules/@anthropic-ai/claude-code" && node install.cjs)
  "$CLAUDE_BIN" --version >/dev/null
fi

# The Codex CLI for tests/clients, into the same prefix and pinned the same way. Its
# native binary comes in an optional per-platform package (@openai/codex-linux-x64, ...)
# that npm picks. `--version` runs with a throwaway CODEX_HOME so ~/.codex is never touched.
CODEX_VERSION=0.171.0
CODEX_BIN="$NPM_PREFIX/node_modules/.bin/codex"
codex_version() {
  local home; home="$(mktemp -d)"
  CODEX_HOME="$home" "$CODEX_BIN" --version 2>/dev/null || true
  rm -rf "$home"
}
if [ "$(codex_version)" != "codex-cli $CODEX_VERSION" ]; then
  command -v npm >/dev/null 2>&1 || {
    echo "system-deps: npm is needed for the Codex CLI" >&2; exit 1; }
  echo "system-deps: installing @openai/codex@$CODEX_VERSION into $NPM_PREFIX"
  mkdir -p "$NPM_PREFIX"
  npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --loglevel=error \
    "@openai/codex@$CODEX_VERSION"
  [ "$(codex_version)" = "codex-cli $CODEX_VERSION" ] || {
    echo "system-deps: $CODEX_BIN does not run" >&2; exit 1; }
fi

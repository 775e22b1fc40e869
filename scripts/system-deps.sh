#!/usr/bin/env bash
# Install the Debian packages the test suite drives for real (promtool, ...),
# only when the command is missing. Needs root (CI and dev machines are root).
set -euo pipefail
# command -> Debian package
declare -A NEED=(
  [promtool]=prometheus
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

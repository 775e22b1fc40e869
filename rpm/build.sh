#!/usr/bin/env bash
# Build the SRPM and the noarch RPMs from this checkout: rpm/build.sh [OUTDIR]
# (default build/rpm). Results land in OUTDIR/SRPMS and OUTDIR/RPMS/noarch.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$repo/build/rpm}")
python=${PYTHON:-$repo/.venv/bin/python}
version=$("$python" -c 'import helexa; print(helexa.__version__)')
rm -rf "$out"
mkdir -p "$out/SOURCES"
"$python" -m pip wheel --no-deps --no-build-isolation --quiet -w "$out/SOURCES" "$repo" 2>/dev/null
cp "$repo"/rpm/helexa-{gateway,neuron}.{service,xml} "$repo"/rpm/helexa.sysusers \
   "$repo"/rpm/{fleet,models,neuron}.toml "$out/SOURCES/"
# BuildRequires are checked against the rpm database, which is empty on a non-RPM
# distribution (the Debian CI machine): there, skip the check.
nodeps=()
command -v dnf >/dev/null 2>&1 || nodeps=(--nodeps)
# (Without python3-packaging, rpm's python3dist() generator prints a harmless traceback
# and adds nothing: the spec's explicit Requires are what the packages carry.)
rpmbuild -ba "${nodeps[@]}" --quiet --define "_topdir $out" --define "helexa_version $version" \
  "$repo/rpm/helexa.spec"

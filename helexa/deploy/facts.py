"""Host facts: one probe script run over SSH, and pure parsers over its output.

The probe prints every check as a section `@@helexa-probe NAME RC` followed by what
the command printed, so one round trip gathers everything and each parser is a
plain function over captured text (unit-tested on real command output).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from helexa.deploy.layout import NEURON_UNIT, RPM_PACKAGE, HostLayout, InstallMethod

MARKER = "@@helexa-probe"
NOT_FOUND = 127  # the shell's exit status for a missing command
NVIDIA_QUERY = (
    "nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version "
    "--format=csv,noheader,nounits"
)
_SHA256_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
_UNIT_STATE = re.compile(r"^[a-z][a-z-]*$")


@dataclass(frozen=True)
class ProbeResult:
    exit_status: int
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@dataclass(frozen=True)
class OsRelease:
    id: str
    version_id: str
    id_like: tuple[str, ...] = ()
    pretty_name: str = ""

    def is_like(self, *families: str) -> bool:
        return self.id in families or any(f in self.id_like for f in families)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    memory_mb: int
    compute_capability: str
    driver: str


@dataclass(frozen=True)
class HostFacts:
    os: OsRelease
    arch: str
    python: tuple[int, int, int] | None
    systemd: bool
    gpus: tuple[GpuInfo, ...] = ()
    gpu_error: str | None = None  # nvidia-smi exists but failed (driver trouble)
    rpm_version: str | None = None
    pip_version: str | None = None
    file_hashes: Mapping[str, str] = field(default_factory=dict)  # path -> sha256
    unit_enabled: str | None = None  # systemctl is-enabled; None = no systemctl
    unit_active: str | None = None
    disk_free_mb: int | None = None
    supervised_pid: int | None = None  # the fallback supervisor, when alive
    service_user_exists: bool = False
    restart_pending: bool = False  # an earlier apply changed things and did not restart
    # The interpreter's real files and every directory above them: (mode, owner, path).
    python_paths: tuple[tuple[int, str, str], ...] = ()

    def python_blocked_for(self, user: str) -> str | None:
        """Why `user` cannot run the interpreter (a path others may not enter), or None.

        Judged from "other" permission bits (the service user is usually created by the
        install, so it is in no group yet); root and the owner of a path pass.
        """
        if user == "root":
            return None
        for mode, owner, path in self.python_paths:
            if owner != user and not mode & 0o001:
                return f"{path} is mode {mode:o} (owner {owner}): other users cannot enter it"
        return None

    def installed_version(self, install: InstallMethod) -> str | None:
        return self.rpm_version if install == "rpm" else self.pip_version

    @property
    def running(self) -> bool:
        return self.unit_active == "active" if self.systemd else self.supervised_pid is not None


# -- the probe --------------------------------------------------------------------------


def probe_script(layout: HostLayout, managed_files: Iterable[PurePosixPath]) -> str:
    """The shell script whose output `parse_probe_output` reads (POSIX sh, no bashisms)."""
    q = shlex.quote
    files = " ".join(q(str(p)) for p in managed_files) or "/dev/null"
    pidfile = q(str(layout.pidfile))
    supervised = f'pid=$(cat {pidfile}) && kill -0 "$pid" && echo "$pid"'
    lines = [
        "probe() {",
        '  name=$1; shift; out=$("$@" 2>&1); rc=$?',
        f'  printf \'{MARKER} %s %d\\n%s\\n\' "$name" "$rc" "$out"',
        "}",
        "probe os cat /etc/os-release",
        "probe arch uname -m",
        f"probe python {q(layout.python)} --version",
        f"probe pypaths sh -c {q(_PYTHON_PATHS.format(python=q(layout.python)))}",
        "probe systemd test -d /run/systemd/system",
        f"probe gpus {NVIDIA_QUERY}",
        f"probe rpm rpm -q --qf '%{{VERSION}}\\n' {RPM_PACKAGE}",
        f"probe pip {q(str(layout.venv_python))} -m pip show helexa",
        f"probe sha256 sha256sum {files}",
        f"probe enabled systemctl is-enabled {NEURON_UNIT}",
        f"probe active systemctl is-active {NEURON_UNIT}",
        f'd={q(str(layout.prefix))}; while [ ! -e "$d" ]; do d=$(dirname "$d"); done',
        'probe disk df -Pk "$d"',
        f"probe supervised sh -c {q(supervised)}",
        f"probe user id -u {q(layout.user)}",
        f"probe pending test -e {q(str(layout.restart_marker))}",
    ]
    return "\n".join(lines) + "\n"


# The interpreter (and, for a venv's python, the one it was made from), real paths, then
# `stat` of each and of every directory up to /: what the service user has to get through.
_PYTHON_PATHS = (
    "{python} -c 'import os, sys; "
    "print(os.path.realpath(sys.executable)); "
    'print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))\' | '
    "sort -u | while read -r p; do "
    'while :; do stat -c "%a %U %n" "$p"; [ "$p" = / ] && break; p=$(dirname "$p"); done; '
    "done"
)


def parse_python_paths(text: str) -> tuple[tuple[int, str, str], ...]:
    """`stat -c "%a %U %n"` lines -> (mode, owner, path), each path once."""
    seen: dict[str, tuple[int, str, str]] = {}
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0].isdigit():
            seen.setdefault(parts[2], (int(parts[0], 8), parts[1], parts[2]))
    return tuple(seen.values())


def parse_probe_output(text: str) -> dict[str, ProbeResult]:
    """Sections of the probe output by name (output without the trailing newline)."""
    sections: dict[str, ProbeResult] = {}
    name: str | None = None
    status = 0
    body: list[str] = []
    for line in text.splitlines():
        if line.startswith(MARKER + " "):
            if name is not None:
                sections[name] = ProbeResult(status, "\n".join(body))
            _, name, rc = line.split(" ", 2)
            status, body = int(rc), []
        elif name is not None:
            body.append(line)
    if name is not None:
        sections[name] = ProbeResult(status, "\n".join(body))
    return sections


def host_facts(sections: Mapping[str, ProbeResult]) -> HostFacts:
    """All facts from the probe sections; a missing section reads as a failed probe."""

    def get(name: str) -> ProbeResult:
        return sections.get(name, ProbeResult(NOT_FOUND, ""))

    systemd = get("systemd").ok
    gpus, gpu_error = parse_nvidia_smi(get("gpus"))
    user = get("user")
    return HostFacts(
        os=parse_os_release(get("os").output),
        arch=get("arch").output.strip() or "unknown",
        python=parse_python_version(get("python").output) if get("python").ok else None,
        systemd=systemd,
        gpus=gpus,
        gpu_error=gpu_error,
        rpm_version=parse_rpm_query(get("rpm")),
        pip_version=parse_pip_show(get("pip")),
        file_hashes=parse_sha256sum(get("sha256").output),
        unit_enabled=parse_unit_state(get("enabled")) if systemd else None,
        unit_active=parse_unit_state(get("active")) if systemd else None,
        disk_free_mb=parse_df_free_mb(get("disk").output) if get("disk").ok else None,
        supervised_pid=int(get("supervised").output) if _is_pid(get("supervised")) else None,
        service_user_exists=user.ok and user.output.strip().isdigit(),
        restart_pending=get("pending").ok,
        python_paths=parse_python_paths(get("pypaths").output) if get("pypaths").ok else (),
    )


# -- parsers, one per command -----------------------------------------------------------


def parse_os_release(text: str) -> OsRelease:
    """/etc/os-release (KEY=value, values optionally quoted)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        try:
            words = shlex.split(raw)
        except ValueError:
            words = [raw]
        values[key] = " ".join(words)
    return OsRelease(
        id=values.get("ID", "unknown").lower(),
        version_id=values.get("VERSION_ID", ""),
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
        pretty_name=values.get("PRETTY_NAME", ""),
    )


def parse_python_version(text: str) -> tuple[int, int, int] | None:
    """`python3 --version` ("Python 3.11.2"); None when it is not a version."""
    match = re.search(r"Python (\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def parse_nvidia_smi(result: ProbeResult) -> tuple[tuple[GpuInfo, ...], str | None]:
    """(GPUs, error). No nvidia-smi = no GPUs and no error; a failing one is an error."""
    if result.exit_status == NOT_FOUND or "not found" in result.output:
        return (), None
    if not result.ok:
        return (), result.output.strip() or f"nvidia-smi exited {result.exit_status}"
    gpus = []
    for line in result.output.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4:
            continue
        name, memory, capability, driver = fields
        gpus.append(
            GpuInfo(
                name=name,
                memory_mb=int(memory) if memory.isdigit() else 0,
                compute_capability=capability,
                driver=driver,
            )
        )
    return tuple(gpus), None


def parse_rpm_query(result: ProbeResult) -> str | None:
    """`rpm -q --qf '%{VERSION}\\n' helexa-neuron`: the version, or None if not installed."""
    if not result.ok:
        return None  # "package helexa-neuron is not installed", or no rpm at all
    version = result.output.strip().splitlines()
    return version[0] if version else None


def parse_pip_show(result: ProbeResult) -> str | None:
    """`pip show helexa`: the `Version:` line, or None when absent / no venv."""
    if not result.ok:
        return None
    for line in result.output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Version":
            return value.strip() or None
    return None


def parse_sha256sum(text: str) -> dict[str, str]:
    """`sha256sum FILE...`: path -> digest for the files that exist (errors skipped)."""
    hashes: dict[str, str] = {}
    for line in text.splitlines():
        match = _SHA256_LINE.match(line)
        if match:
            hashes[match.group(2)] = match.group(1)
    return hashes


def parse_unit_state(result: ProbeResult) -> str | None:
    """`systemctl is-enabled|is-active UNIT`: the state word ("enabled", "inactive", ...).

    Older systemd prints "Failed to get unit file state ..." for an unknown unit:
    read as "not-found". No systemctl at all: None.
    """
    if result.exit_status == NOT_FOUND:
        return None
    lines = [line.strip() for line in result.output.splitlines() if line.strip()]
    if lines and _UNIT_STATE.match(lines[-1]):
        return lines[-1]
    return "not-found"


def parse_df_free_mb(text: str) -> int | None:
    """`df -Pk PATH`: available MiB on that filesystem."""
    lines = text.strip().splitlines()
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    return int(fields[3]) // 1024 if len(fields) >= 4 and fields[3].isdigit() else None


def _is_pid(result: ProbeResult) -> bool:
    return result.ok and result.output.strip().isdigit()

"""Pure parsers over captured command output, and the probe run for real over SSH."""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
import uuid
from pathlib import Path, PurePosixPath

from helexa.deploy.facts import (
    GpuInfo,
    ProbeResult,
    host_facts,
    parse_df_free_mb,
    parse_nvidia_smi,
    parse_os_release,
    parse_pip_show,
    parse_probe_output,
    parse_python_paths,
    parse_python_version,
    parse_rpm_query,
    parse_sha256sum,
    parse_unit_state,
    probe_script,
)
from helexa.deploy.layout import HostLayout
from helexa.deploy.ssh import connect
from tests.deploy.sshd import Sshd

FEDORA_OS_RELEASE = """\
NAME="Fedora Linux"
VERSION="40 (Server Edition)"
ID=fedora
VERSION_ID=40
PRETTY_NAME="Fedora Linux 40 (Server Edition)"
# a comment
SUPPORT_END=2025-05-13
"""
ROCKY_OS_RELEASE = (
    'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'
)
NVIDIA_SMI_TWO_GPUS = (
    "NVIDIA GeForce RTX 4090, 24564, 8.9, 550.54.14\n"
    "NVIDIA GeForce RTX 3060, 12288, 8.6, 550.54.14\n"
)
NVIDIA_SMI_NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running."
)
PIP_SHOW = "Name: helexa\nVersion: 0.1.0\nSummary: Run open-weight LLMs\nLocation: /opt/x\n"
SHA256SUM = (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  /etc/helexa/neuron.toml\n"
    "sha256sum: /etc/systemd/system/helexa-neuron.service: No such file or directory\n"
)
DF = (
    "Filesystem     1024-blocks      Used Available Capacity Mounted on\n"
    "/dev/nvme0n1p3   976762584 412345678 564416906      43% /\n"
)


def test_os_release_fedora_and_rhel_family() -> None:
    fedora = parse_os_release(FEDORA_OS_RELEASE)
    assert (fedora.id, fedora.version_id, fedora.id_like) == ("fedora", "40", ())
    assert fedora.pretty_name == "Fedora Linux 40 (Server Edition)"
    rocky = parse_os_release(ROCKY_OS_RELEASE)
    assert (rocky.id, rocky.version_id) == ("rocky", "9.4")
    assert rocky.is_like("rhel") and not rocky.is_like("debian")
    assert parse_os_release("").id == "unknown"


def test_os_release_of_this_machine() -> None:
    local = parse_os_release(Path("/etc/os-release").read_text())
    assert local.id == platform.freedesktop_os_release()["ID"]


def test_python_version() -> None:
    assert parse_python_version("Python 3.11.2\n") == (3, 11, 2)
    assert parse_python_version("Python 3.12") == (3, 12, 0)
    assert parse_python_version("sh: 1: python3: not found") is None


def test_nvidia_smi_gpus_absence_and_failure() -> None:
    gpus, error = parse_nvidia_smi(ProbeResult(0, NVIDIA_SMI_TWO_GPUS))
    assert error is None
    assert gpus == (
        GpuInfo("NVIDIA GeForce RTX 4090", 24564, "8.9", "550.54.14"),
        GpuInfo("NVIDIA GeForce RTX 3060", 12288, "8.6", "550.54.14"),
    )
    assert parse_nvidia_smi(ProbeResult(127, "sh: 1: nvidia-smi: not found")) == ((), None)
    gpus, error = parse_nvidia_smi(ProbeResult(9, NVIDIA_SMI_NO_DRIVER))
    assert gpus == () and error is not None and "NVIDIA driver" in error
    odd, _ = parse_nvidia_smi(ProbeResult(0, "NVIDIA A100, [N/A], 8.0, 535.1\n"))
    assert odd[0].memory_mb == 0


def test_installed_versions() -> None:
    assert parse_rpm_query(ProbeResult(0, "0.1.0\n")) == "0.1.0"
    assert parse_rpm_query(ProbeResult(1, "package helexa-neuron is not installed")) is None
    assert parse_pip_show(ProbeResult(0, PIP_SHOW)) == "0.1.0"
    assert parse_pip_show(ProbeResult(1, "WARNING: Package(s) not found: helexa")) is None
    assert parse_pip_show(ProbeResult(127, "sh: /opt/helexa/bin/pip: not found")) is None


def test_sha256sum_skips_missing_files() -> None:
    assert parse_sha256sum(SHA256SUM) == {
        "/etc/helexa/neuron.toml": hashlib.sha256(b"").hexdigest()
    }


def test_unit_states() -> None:
    assert parse_unit_state(ProbeResult(0, "enabled")) == "enabled"
    assert parse_unit_state(ProbeResult(3, "inactive")) == "inactive"
    assert parse_unit_state(ProbeResult(4, "not-found")) == "not-found"
    old = "Failed to get unit file state for helexa-neuron.service: No such file or directory"
    assert parse_unit_state(ProbeResult(1, old)) == "not-found"
    assert parse_unit_state(ProbeResult(127, "sh: systemctl: not found")) is None


def test_df_free_mb() -> None:
    assert parse_df_free_mb(DF) == 564416906 // 1024
    assert parse_df_free_mb("df: /nope: No such file or directory") is None


def test_probe_output_sections_and_facts() -> None:
    text = (
        "@@helexa-probe os 0\nID=fedora\nVERSION_ID=40\n"
        "@@helexa-probe systemd 0\n\n"
        "@@helexa-probe enabled 0\nenabled\n"
        "@@helexa-probe active 3\ninactive\n"
        "@@helexa-probe supervised 1\n\n"
    )
    sections = parse_probe_output(text)
    assert sections["active"] == ProbeResult(3, "inactive")
    facts = host_facts(sections)
    assert (facts.os.id, facts.systemd, facts.unit_enabled, facts.unit_active) == (
        "fedora",
        True,
        "enabled",
        "inactive",
    )
    assert facts.running is False and facts.python is None and facts.gpus == ()
    assert facts.restart_pending is False  # no `pending` section: nothing recorded
    recorded = host_facts(parse_probe_output(text + "@@helexa-probe pending 0\n\n"))
    assert recorded.restart_pending is True


def _facts_seen_locally() -> tuple[object, ...]:
    python = subprocess.run(["python3", "--version"], capture_output=True, text=True).stdout
    return (
        parse_os_release(Path("/etc/os-release").read_text()),
        platform.machine(),
        parse_python_version(python),
        Path("/run/systemd/system").is_dir(),
    )


async def test_probe_over_ssh_gathers_this_hosts_facts(sshd: Sshd, tmp_path: Path) -> None:
    managed = tmp_path / "neuron.toml"
    managed.write_text("x = 1\n")
    layout = HostLayout(
        prefix=PurePosixPath(tmp_path / "opt"), state_dir=PurePosixPath(tmp_path), user="root"
    )
    script = probe_script(layout, [PurePosixPath(managed), PurePosixPath(tmp_path / "absent")])
    async with await connect(sshd.target(accept_new_host_key=True)) as host:
        result = await host.run(script, step="facts", check=False)
    facts = host_facts(parse_probe_output(result.stdout))
    local = _facts_seen_locally()
    assert (facts.os, facts.arch, facts.python, facts.systemd) == local
    if shutil.which("nvidia-smi") is None:  # what this machine has, not what it is assumed to
        assert facts.gpus == () and facts.gpu_error is None
    else:
        assert facts.gpus or facts.gpu_error
    assert facts.file_hashes == {str(managed): hashlib.sha256(b"x = 1\n").hexdigest()}
    assert facts.pip_version is None and facts.supervised_pid is None
    assert facts.disk_free_mb is not None and facts.disk_free_mb > 0
    assert facts.service_user_exists is True  # the layout's user, "root", exists everywhere
    absent = HostLayout(user=f"helexa-absent-{uuid.uuid4().hex[:8]}")
    async with await connect(sshd.target()) as host:
        result = await host.run(probe_script(absent, []), step="facts", check=False)
    assert host_facts(parse_probe_output(result.stdout)).service_user_exists is False


def test_python_paths_and_who_can_run_them() -> None:
    stat_lines = (
        "755 root /root/.pyenv/versions/3.11.7/bin/python3.11\n"
        "700 root /root\n"
        "755 root /\n"
        "755 root /\n"
    )
    paths = parse_python_paths(stat_lines + "stat: cannot stat 'x': No such file\n")
    assert paths == (
        (0o755, "root", "/root/.pyenv/versions/3.11.7/bin/python3.11"),
        (0o700, "root", "/root"),
        (0o755, "root", "/"),
    )
    sections = {"pypaths": ProbeResult(0, stat_lines)}
    facts = host_facts(sections)
    assert facts.python_blocked_for("helexa") == (
        "/root is mode 700 (owner root): other users cannot enter it"
    )
    assert facts.python_blocked_for("root") is None
    system = host_facts({"pypaths": ProbeResult(0, "755 root /usr/bin/python3.11\n755 root /\n")})
    assert system.python_blocked_for("helexa") is None

"""Test doubles for a managed host's pieces that are real but local: a wheel of this
repository, a venv for `install = "pip"` that resolves dependencies offline, and a
host layout under a temp directory."""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path, PurePosixPath

from helexa.deploy.hostapply import stop_supervisor_command
from helexa.deploy.layout import HostLayout

REPO = Path(__file__).resolve().parents[2]


def build_wheel(out: Path) -> Path:
    """`pip wheel --no-deps .` of this repository (no build isolation: offline)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("helexa-*.whl")
    return wheel


def offline_venv(prefix: Path) -> None:
    """A venv whose imports fall through to this venv's packages, minus helexa itself.

    Bootstrap then installs the pushed wheel into it and pip finds every dependency
    already satisfied, so nothing is downloaded.
    """
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(prefix)], check=True)
    farm = prefix / "deps"
    farm.mkdir()
    for source in site.getsitepackages():
        for entry in Path(source).iterdir():
            if entry.name.startswith(("helexa", "__editable__", "_helexa", "__pycache__")):
                continue
            if not (farm / entry.name).exists():
                (farm / entry.name).symlink_to(entry)
    (site_dir,) = (prefix / "lib").glob("python3*/site-packages")
    (site_dir / "helexa-test-deps.pth").write_text(f"{farm}\n")


def temp_layout(root: Path) -> HostLayout:
    return HostLayout(
        prefix=PurePosixPath(root / "opt" / "helexa"),
        config_dir=PurePosixPath(root / "etc" / "helexa"),
        state_dir=PurePosixPath(root / "var" / "lib" / "helexa"),
        unit_dir=PurePosixPath(root / "etc" / "systemd" / "system"),
        user="root",
    )


def stop_supervised_neuron(layout: HostLayout) -> None:
    subprocess.run(["sh", "-c", stop_supervisor_command(layout)], check=False, timeout=90)

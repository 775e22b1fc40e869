"""Where helexa lives on a managed host. Every path is overridable (tests use a temp root)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

InstallMethod = Literal["rpm", "pip"]

NEURON_UNIT = "helexa-neuron.service"
RPM_PACKAGE = "helexa-neuron"

# The standard places (FHS); dataclass defaults below refer to these.
PREFIX = PurePosixPath("/opt/helexa")
CONFIG_DIR = PurePosixPath("/etc/helexa")
STATE_DIR = PurePosixPath("/var/lib/helexa")
UNIT_DIR = PurePosixPath("/etc/systemd/system")


@dataclass(frozen=True)
class HostLayout:
    prefix: PurePosixPath = PREFIX  # the pip venv
    config_dir: PurePosixPath = CONFIG_DIR
    state_dir: PurePosixPath = STATE_DIR  # HF cache, pidfile, log
    unit_dir: PurePosixPath = UNIT_DIR
    user: str = "helexa"  # the neuron's service user
    python: str = "python3"  # creates the venv for install = "pip"

    def helexa_bin(self, install: InstallMethod) -> PurePosixPath:
        if install == "rpm":
            return PurePosixPath("/usr/bin/helexa")
        return self.prefix / "bin" / "helexa"

    @property
    def venv_python(self) -> PurePosixPath:
        """pip runs as `venv_python -m pip` (works for venvs made without pip too)."""
        return self.prefix / "bin" / "python"

    @property
    def neuron_toml(self) -> PurePosixPath:
        return self.config_dir / "neuron.toml"

    @property
    def unit_path(self) -> PurePosixPath:
        return self.unit_dir / NEURON_UNIT

    @property
    def cache_dir(self) -> PurePosixPath:
        return self.state_dir / "hf"

    @property
    def wheel_dir(self) -> PurePosixPath:
        return self.state_dir / "wheels"

    # The fallback without systemd: a supervisor script, its pidfile and log.
    @property
    def supervisor_script(self) -> PurePosixPath:
        return self.prefix / "bin" / "helexa-neuron-supervise"

    @property
    def pidfile(self) -> PurePosixPath:
        return self.state_dir / "neuron.pid"

    @property
    def logfile(self) -> PurePosixPath:
        return self.state_dir / "neuron.log"

    @property
    def restart_marker(self) -> PurePosixPath:
        """Present while a restart is owed: written before an apply's first change, removed
        after the restart, so a restart lost to a failed apply is still planned next time."""
        return self.state_dir / "restart-pending"

"""Where things go on a host, standard and relocated."""

from __future__ import annotations

from pathlib import PurePosixPath

from helexa.deploy.layout import HostLayout


def test_standard_layout() -> None:
    layout = HostLayout()
    assert str(layout.neuron_toml) == "/etc/helexa/neuron.toml"
    assert str(layout.unit_path) == "/etc/systemd/system/helexa-neuron.service"
    assert str(layout.cache_dir) == "/var/lib/helexa/hf"
    assert str(layout.helexa_bin("rpm")) == "/usr/bin/helexa"
    assert str(layout.helexa_bin("pip")) == "/opt/helexa/bin/helexa"
    assert str(layout.venv_python) == "/opt/helexa/bin/python"


def test_relocated_layout() -> None:
    layout = HostLayout(prefix=PurePosixPath("/srv/hx"), state_dir=PurePosixPath("/srv/state"))
    assert str(layout.supervisor_script) == "/srv/hx/bin/helexa-neuron-supervise"
    assert str(layout.pidfile) == "/srv/state/neuron.pid"
    assert str(layout.wheel_dir) == "/srv/state/wheels"

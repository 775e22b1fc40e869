"""Rendered units, neuron.toml, sysusers and firewalld files: verified by the real tools."""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

import jinja2
import pytest

from helexa.config.fleet import NeuronEntry
from helexa.deploy import render
from helexa.deploy.layout import HostLayout
from helexa.deploy.render import NeuronTomlParams, ServiceParams
from helexa.neuron.config import load_neuron_config

GOLDEN = Path(__file__).parent / "golden"
RPM_DIR = Path(__file__).resolve().parents[2] / "rpm"
# Regenerate the goldens after a deliberate template change: HELEXA_UPDATE_GOLDEN=1 pytest ...
UPDATE = os.environ.get("HELEXA_UPDATE_GOLDEN") == "1"


def _fake_helexa(tmp_path: Path) -> PurePosixPath:
    """systemd-analyze verify insists the ExecStart binary exists and is executable."""
    binary = tmp_path / "bin" / "helexa"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    return PurePosixPath(binary)


def _verify(unit_text: str, name: str, tmp_path: Path) -> str:
    unit = tmp_path / name
    unit.write_text(unit_text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30
    )
    return done.stdout + done.stderr + ("" if done.returncode == 0 else f"rc={done.returncode}")


def _assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file"


@pytest.mark.parametrize("state_dir", ["/var/lib/helexa", "/srv/helexa-state"])
def test_neuron_unit_verifies_clean(tmp_path: Path, state_dir: str) -> None:
    params = ServiceParams(
        helexa_bin=_fake_helexa(tmp_path),
        config_path=PurePosixPath("/etc/helexa/neuron.toml"),
        config_dir=PurePosixPath("/etc/helexa"),
        state_dir=PurePosixPath(state_dir),
        user="helexa",
    )
    text = render.render_neuron_unit(params)
    assert _verify(text, "helexa-neuron.service", tmp_path) == ""
    # Hardening must not hide the GPUs or forbid the CUDA JIT.
    for banned in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "MemoryDenyWriteExecute"):
        assert banned not in text.replace("no PrivateDevices / DevicePolicy", "").replace(
            "no MemoryDenyWriteExecute", ""
        )
    assert "Restart=on-failure" in text and "StartLimitBurst=5" in text
    if state_dir == "/var/lib/helexa":
        assert "StateDirectory=helexa helexa/hf\n" in text
    else:
        assert f"ReadWritePaths={state_dir}\n" in text and "StateDirectory" not in text


def test_gateway_unit_verifies_clean(tmp_path: Path) -> None:
    params = ServiceParams(
        helexa_bin=_fake_helexa(tmp_path),
        config_path=PurePosixPath("/etc/helexa/fleet.toml"),
        config_dir=PurePosixPath("/etc/helexa"),
        state_dir=PurePosixPath("/var/lib/helexa"),
        user="helexa",
    )
    text = render.render_gateway_unit(params)
    assert _verify(text, "helexa-gateway.service", tmp_path) == ""
    assert "serve --fleet /etc/helexa/fleet.toml --models /etc/helexa/models.toml" in text


def test_rendered_neuron_toml_loads_with_the_neuron_loader(tmp_path: Path) -> None:
    entry = NeuronEntry(
        name="beast",
        endpoint="http://beast.internal:14141",
        ssh="root@beast.internal",
        token_file=Path('/etc/helexa/odd "name".token'),
    )
    layout = HostLayout(state_dir=PurePosixPath("/var/lib/helexa"))
    text = render.render_neuron_toml(NeuronTomlParams.from_entry(entry, layout))
    path = tmp_path / "neuron.toml"
    path.write_text(text)
    config = load_neuron_config(path)
    assert config.neuron.listen == "0.0.0.0:14141"
    assert config.neuron.name == "beast"
    assert config.neuron.token_file == Path('/etc/helexa/odd "name".token')
    assert config.neuron.cache_dir == Path("/var/lib/helexa/hf")
    local = entry.model_copy(update={"endpoint": "http://127.0.0.1:13131", "token_file": None})
    text = render.render_neuron_toml(NeuronTomlParams.from_entry(local, layout))
    path.write_text(text)
    config = load_neuron_config(path)
    assert (config.neuron.listen, config.neuron.token_file) == ("127.0.0.1:13131", None)


def test_a_missing_value_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(jinja2.UndefinedError, match="is undefined"):
        render._render("helexa-neuron.service.j2", {"user": "helexa"})


def test_supervisor_script_is_valid_sh(tmp_path: Path) -> None:
    params = ServiceParams.for_neuron(HostLayout(prefix=PurePosixPath("/opt/my helexa")), "pip")
    for as_root in (True, False):
        script = tmp_path / "supervise"
        script.write_text(render.render_supervisor(params, run_as_root=as_root))
        assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    assert "runuser -u helexa -- '/opt/my helexa/bin/helexa' neuron" in script.read_text()


def test_firewalld_services_and_sysusers(tmp_path: Path) -> None:
    ports = ET.fromstring(render.render_firewalld_gateway()).findall("port")
    assert [(p.get("protocol"), p.get("port")) for p in ports] == [
        ("tcp", "31313"),
        ("tcp", "31314"),
    ]
    neuron = ET.fromstring(render.render_firewalld_neuron(14141))
    assert neuron.findtext("short") == "helexa neuron"
    sysusers = tmp_path / "helexa.conf"
    sysusers.write_text(render.render_sysusers("helexa", PurePosixPath("/var/lib/helexa")))
    (tmp_path / "root" / "etc").mkdir(parents=True)
    done = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path / 'root'}", "--dry-run", str(sysusers)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "Creating user 'helexa'" in done.stderr
    assert "Would write /etc/passwd" in done.stderr


def test_goldens() -> None:
    layout = HostLayout()
    entry = NeuronEntry(
        name="beast",
        endpoint="http://beast.internal:13131",
        ssh="root@beast.internal",
        token_file=Path("/etc/helexa/fleet.token"),
    )
    params = ServiceParams.for_neuron(layout, "pip")
    _assert_golden("helexa-neuron.service", render.render_neuron_unit(params))
    _assert_golden(
        "neuron.toml", render.render_neuron_toml(NeuronTomlParams.from_entry(entry, layout))
    )
    _assert_golden("helexa-neuron-supervise", render.render_supervisor(params, run_as_root=False))


def test_templates_come_from_the_package_else_the_source_tree(tmp_path: Path) -> None:
    # This checkout has them at the top level (the wheel at helexa/templates: test_wheel.py).
    source = Path(render.__file__).resolve().parents[2]
    assert render.templates_dir() == source / "templates"
    package = tmp_path / "helexa"
    package.mkdir()
    (tmp_path / "templates").mkdir()
    assert render.templates_dir(package) == tmp_path / "templates"
    (package / "templates").mkdir()
    assert render.templates_dir(package) == package / "templates"


def test_no_templates_anywhere_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no templates/ in"):
        render.templates_dir(tmp_path / "helexa")


def test_rpm_sources_match_the_templates() -> None:
    """rpm/ carries rendered copies (Fedora-style Sources); they must not drift."""
    for name, text in render.packaged_files().items():
        assert (RPM_DIR / name).read_text() == text, (
            f"rpm/{name}: run python -m helexa.deploy.render --rpm rpm"
        )

"""Render the files helexa puts on a host (jinja2, StrictUndefined: a missing value is
an error, never an empty string). Pure: parameters in, text out.

`python -m helexa.deploy.render --rpm DIR` writes the files the RPM ships (rpm/ holds
them checked in; a test keeps them equal to what the templates render).

The templates live in the repository's top-level templates/; the wheel ships them as
helexa/templates (setup.py, pyproject's package-dir), so `templates_dir` looks in the
installed package first and in the source tree beside it second.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jinja2
import tomlkit

from helexa.config.fields import endpoint_host, is_loopback_host
from helexa.config.fleet import NEURON_PORT, NeuronEntry
from helexa.deploy.layout import HostLayout, InstallMethod

GATEWAY_PORT = 31313
METRICS_PORT = 31314

_PACKAGE = Path(__file__).resolve().parents[1]  # helexa/


def templates_dir(package: Path = _PACKAGE) -> Path:
    """helexa/templates in an installed wheel, else the source tree's templates/."""
    for candidate in (package / "templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no templates/ in {package} or {package.parent}")


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(templates_dir()),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # units, TOML and shell: escaping is done per format by the filters
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
# A TOML literal for any value (strings quoted and escaped the TOML way).
_ENV.filters["toml"] = lambda value: tomlkit.item(
    str(value) if isinstance(value, PurePosixPath) else value
).as_string()
_ENV.filters["sh"] = lambda value: shlex.quote(str(value))


@dataclass(frozen=True)
class ServiceParams:
    """What a unit (or the no-systemd supervisor) needs to run a helexa process."""

    helexa_bin: PurePosixPath
    config_path: PurePosixPath
    config_dir: PurePosixPath
    state_dir: PurePosixPath
    user: str
    start_timeout_s: int = 600
    stop_timeout_s: int = 90  # > the neuron's drain timeout, so draining finishes
    start_limit_interval_s: int = 600
    start_limit_burst: int = 5

    @classmethod
    def for_neuron(cls, layout: HostLayout, install: InstallMethod) -> ServiceParams:
        return cls(
            helexa_bin=layout.helexa_bin(install),
            config_path=layout.neuron_toml,
            config_dir=layout.config_dir,
            state_dir=layout.state_dir,
            user=layout.user,
        )

    @property
    def state_directory(self) -> str | None:
        """systemd's StateDirectory= (relative to /var/lib), or None outside /var/lib."""
        if self.state_dir.is_relative_to("/var/lib") and self.state_dir != PurePosixPath(
            "/var/lib"
        ):
            return str(self.state_dir.relative_to("/var/lib"))
        return None


@dataclass(frozen=True)
class NeuronTomlParams:
    listen: str
    name: str | None
    token_file: PurePosixPath | None
    cache_dir: PurePosixPath
    max_in_flight: int = 4
    max_queue: int = 16
    reserve_mb: int = 1024

    @classmethod
    def from_entry(cls, entry: NeuronEntry, layout: HostLayout) -> NeuronTomlParams:
        """A managed neuron listens on its endpoint's port: loopback-only when the
        endpoint is loopback, all interfaces otherwise."""
        host = endpoint_host(entry.endpoint)
        port = _endpoint_port(entry.endpoint)
        bind = "127.0.0.1" if is_loopback_host(host) else "0.0.0.0"
        return cls(
            listen=f"{bind}:{port}",
            name=entry.name,
            token_file=PurePosixPath(entry.token_file) if entry.token_file else None,
            cache_dir=layout.cache_dir,
        )


def _endpoint_port(endpoint: str) -> int:
    return urlsplit(endpoint).port or NEURON_PORT


def _render(template: str, values: Mapping[str, Any]) -> str:
    return _ENV.get_template(template).render(**values)


def _service_values(params: ServiceParams) -> dict[str, Any]:
    return {**asdict(params), "state_directory": params.state_directory}


def render_neuron_unit(params: ServiceParams) -> str:
    return _render("helexa-neuron.service.j2", _service_values(params))


def render_gateway_unit(params: ServiceParams) -> str:
    return _render("helexa-gateway.service.j2", _service_values(params))


def render_supervisor(params: ServiceParams, run_as_root: bool) -> str:
    """The no-systemd fallback script; it drops to the service user unless that is root."""
    run_prefix = "" if run_as_root else f"runuser -u {shlex.quote(params.user)} -- "
    return _render(
        "helexa-neuron-supervise.sh.j2", {**_service_values(params), "run_prefix": run_prefix}
    )


def render_neuron_toml(params: NeuronTomlParams) -> str:
    return _render("neuron.toml.j2", asdict(params))


def render_sysusers(user: str, state_dir: PurePosixPath) -> str:
    return _render("helexa.sysusers.j2", {"user": user, "state_dir": state_dir})


def render_firewalld_neuron(port: int = NEURON_PORT) -> str:
    return _render("firewalld-helexa-neuron.xml.j2", {"neuron_port": port})


def render_firewalld_gateway(port: int = GATEWAY_PORT, metrics_port: int = METRICS_PORT) -> str:
    return _render(
        "firewalld-helexa-gateway.xml.j2", {"gateway_port": port, "metrics_port": metrics_port}
    )


def packaged_files() -> dict[str, str]:
    """The files the RPM ships, by their name under rpm/ (standard layout)."""
    layout = HostLayout()
    neuron = ServiceParams.for_neuron(layout, "rpm")
    gateway = ServiceParams(
        helexa_bin=layout.helexa_bin("rpm"),
        config_path=layout.config_dir / "fleet.toml",
        config_dir=layout.config_dir,
        state_dir=layout.state_dir,
        user=layout.user,
    )
    default_neuron = NeuronTomlParams(
        listen=f"127.0.0.1:{NEURON_PORT}",  # no token yet: loopback until bootstrap/apply
        name=None,
        token_file=None,
        cache_dir=layout.cache_dir,
    )
    return {
        "helexa-neuron.service": render_neuron_unit(neuron),
        "helexa-gateway.service": render_gateway_unit(gateway),
        "helexa.sysusers": render_sysusers(layout.user, layout.state_dir),
        "helexa-neuron.xml": render_firewalld_neuron(),
        "helexa-gateway.xml": render_firewalld_gateway(),
        "neuron.toml": render_neuron_toml(default_neuron),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the files the RPM ships")
    parser.add_argument("--rpm", type=Path, required=True, metavar="DIR")
    args = parser.parse_args(argv)
    for name, text in packaged_files().items():
        (args.rpm / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

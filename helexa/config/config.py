"""load_config: find fleet.toml + models.toml, apply HELEXA_* overrides, check both."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from helexa.config.base import table_entries
from helexa.config.env import fleet_env_overrides
from helexa.config.fleet import FleetConfig
from helexa.config.keys import KEYS_FILE, KeysConfig
from helexa.config.loader import TomlSource, read_toml, validate
from helexa.config.models import FOREIGN_MODELS, KNOWN_NEURONS, ModelsConfig, ModelSpec
from helexa.errors import ConfigError, ConfigErrors

FLEET_FILE = "fleet.toml"
MODELS_FILE = "models.toml"
FLEET_ENV = "HELEXA_FLEET"
MODELS_ENV = "HELEXA_MODELS"
SYSTEM_DIR = Path("/etc/helexa")

T = TypeVar("T")


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    origin: str  # how it was found: "--fleet", "$HELEXA_FLEET", "current directory", ...


@dataclass(frozen=True)
class Config:
    """The desired state: both files, validated against each other."""

    fleet: FleetConfig
    models: ModelsConfig
    fleet_path: Path
    models_path: Path
    fleet_origin: str = ""
    models_origin: str = ""
    env_overrides: tuple[str, ...] = ()  # names of the HELEXA_* variables applied
    # Named keys (keys.toml); not part of the fingerprint: keys do not change a plan.
    keys: KeysConfig = field(default_factory=KeysConfig)
    keys_path: Path | None = None  # the keys file in effect, whether or not it exists yet

    def keep_alive(self, spec: ModelSpec) -> float:
        """Idle seconds before `spec` is unloaded: its own setting, else the fleet's."""
        return spec.keep_alive if spec.keep_alive is not None else self.fleet.eviction.keep_alive


def find_config_file(
    explicit: Path | str | None,
    filename: str,
    env_var: str,
    search_dirs: Sequence[Path] | None = None,
) -> ConfigFile:
    """The file to use: the flag, else $env_var, else the first of `search_dirs` holding it.

    `search_dirs` defaults to the current directory, then /etc/helexa.
    """
    if explicit is not None:
        return ConfigFile(Path(explicit), f"--{Path(filename).stem}")  # the flag's name
    from_env = os.environ.get(env_var)
    if from_env:
        return ConfigFile(Path(from_env), f"${env_var}")
    dirs = search_dirs if search_dirs is not None else (Path.cwd(), SYSTEM_DIR)
    for directory in dirs:
        candidate = directory / filename
        if candidate.is_file():
            origin = "current directory" if directory == Path.cwd() else str(directory)
            return ConfigFile(candidate, origin)
    looked = ", ".join(str(d) for d in dirs)
    flag = f"--{Path(filename).stem}"
    message = f"not found (looked in: {looked}; set ${env_var} or pass {flag})"
    raise ConfigErrors([ConfigError(message, file=filename)])


def load_config(
    fleet: Path | str | None = None,
    models: Path | str | None = None,
    *,
    search_dirs: Sequence[Path] | None = None,
) -> Config:
    """Read, override and validate both files; raises ConfigErrors with every problem."""
    errors: list[ConfigError] = []
    fleet_file = _found(fleet, FLEET_FILE, FLEET_ENV, search_dirs, errors)
    models_file = _found(models, MODELS_FILE, MODELS_ENV, search_dirs, errors)
    fleet_source = _read(fleet_file, errors)
    models_source = _read(models_file, errors)
    overrides = fleet_env_overrides()
    fleet_config: FleetConfig | None = None
    models_config: ModelsConfig | None = None
    if fleet_source is not None:
        fleet_config = _checked(lambda: validate(fleet_source, FleetConfig, overrides), errors)
    if models_source is not None:
        # models.toml is checked against fleet.toml's neurons (read raw, so a broken fleet
        # file does not also make every affinity look wrong).
        context = fleet_facts(fleet_source)
        models_config = _checked(
            lambda: validate(models_source, ModelsConfig, context=context), errors
        )
    keys_path: Path | None = None
    keys_config = KeysConfig()
    if fleet_config is not None and fleet_file is not None:
        keys_path = keys_file_path(fleet_config, fleet_file.path)
        keys_config = _checked(lambda: load_keys(keys_path, fleet_config), errors) or keys_config
    if errors or fleet_config is None or models_config is None:
        raise ConfigErrors(errors)
    assert fleet_file is not None and models_file is not None
    return Config(
        keys=keys_config,
        keys_path=keys_path,
        fleet=fleet_config,
        models=models_config,
        fleet_path=fleet_file.path.absolute(),
        models_path=models_file.path.absolute(),
        fleet_origin=fleet_file.origin,
        models_origin=models_file.origin,
        env_overrides=tuple(o.name for o in overrides.values()),
    )


def keys_file_path(fleet: FleetConfig, fleet_path: Path) -> Path:
    """Where the named keys live: `[gateway] keys_file`, else keys.toml beside fleet.toml."""
    configured = fleet.gateway.keys_file
    return (configured or fleet_path.parent / KEYS_FILE).absolute()


def load_keys(path: Path, fleet: FleetConfig) -> KeysConfig:
    """The keys file; a missing default file means no named keys, a missing named one errs."""
    if not path.exists() and fleet.gateway.keys_file is None:
        return KeysConfig()
    return validate(read_toml(path), KeysConfig)


def config_fingerprint(config: Config) -> str:
    """sha256 of the normalized desired state: the reconciler's "generation".

    Normalized = validated and defaulted, so comments, key order and spelling ("30m"
    vs 1800) do not change it; any change of meaning does.
    """
    desired = {"fleet": config.fleet.model_dump(), "models": config.models.model_dump()}
    # default=str covers Paths; json spells math.inf ("forever") as Infinity.
    blob = json.dumps(desired, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _found(
    explicit: Path | str | None,
    filename: str,
    env_var: str,
    search_dirs: Sequence[Path] | None,
    errors: list[ConfigError],
) -> ConfigFile | None:
    try:
        return find_config_file(explicit, filename, env_var, search_dirs)
    except ConfigErrors as exc:
        errors += exc.errors
        return None


def _read(found: ConfigFile | None, errors: list[ConfigError]) -> TomlSource | None:
    if found is None:
        return None
    return _checked(lambda: read_toml(found.path), errors)


def _checked(step: Callable[[], T], errors: list[ConfigError]) -> T | None:
    try:
        return step()
    except ConfigErrors as exc:
        errors += exc.errors
        return None


def fleet_facts(fleet_source: TomlSource | None) -> dict[str, set[str]]:
    """What models.toml is checked against: neuron names, models of "openai" neurons."""
    if fleet_source is None:
        return {}
    entries = [entry for _, entry in table_entries(fleet_source.data, "neurons")]
    names = {e["name"] for e in entries if isinstance(e.get("name"), str)}
    foreign = {
        model
        for e in entries
        if e.get("kind") == "openai" and isinstance(e.get("models"), list)
        for model in e["models"]
        if isinstance(model, str)
    }
    return {KNOWN_NEURONS: names, FOREIGN_MODELS: foreign}

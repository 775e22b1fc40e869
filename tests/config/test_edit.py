"""tomlkit edits: only the intended lines change; validated before an atomic write."""

from __future__ import annotations

import difflib
import shutil
import stat
from pathlib import Path

import pytest
import tomlkit

from helexa.config.edit import pin_model, unpin_model, upsert_neuron, write_atomic
from helexa.config.fleet import FleetConfig
from helexa.config.loader import load_toml
from helexa.config.models import ModelsConfig
from helexa.errors import ConfigErrors

# (tag, old lines, new lines) for each changed region, as difflib's opcodes see it.
Change = tuple[str, list[str], list[str]]


def changes(old: str, new: str) -> list[Change]:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    return [
        (tag, old_lines[i1:i2], new_lines[j1:j2])
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


@pytest.fixture
def models_file(tmp_path: Path, fixtures_dir: Path) -> Path:
    return Path(shutil.copy(fixtures_dir / "commented_models.toml", tmp_path / "models.toml"))


@pytest.fixture
def fleet_file(tmp_path: Path, fixtures_dir: Path) -> Path:
    return Path(shutil.copy(fixtures_dir / "commented_fleet.toml", tmp_path / "fleet.toml"))


@pytest.mark.parametrize(
    "relative",
    [
        "fleet.toml",
        "models.toml",
        "tests/config/fixtures/commented_models.toml",
        "tests/config/fixtures/commented_fleet.toml",
    ],
)
def test_tomlkit_round_trip_is_byte_identical(repo_root: Path, relative: str) -> None:
    text = (repo_root / relative).read_text(encoding="utf-8")
    assert tomlkit.parse(text).as_string() == text


def test_pin_changes_only_the_pin_value(models_file: Path) -> None:
    before = models_file.read_text()
    result = pin_model(models_file, "Qwen/Qwen3-8B")
    assert result.changed and result.summary == "pinned Qwen/Qwen3-8B (replicas = 1)"
    assert changes(before, models_file.read_text()) == [
        (
            "replace",
            ["pin = false   # flip with `helexa pin`"],
            ["pin = true    # flip with `helexa pin`"],  # the comment keeps its column
        )
    ]


def test_pin_with_replicas_adds_the_key_after_the_last_key(models_file: Path) -> None:
    before = models_file.read_text()
    pin_model(models_file, "helexa/medium", replicas=2)  # an alias names the model
    assert changes(before, models_file.read_text()) == [
        (
            "replace",
            ["pin = false   # flip with `helexa pin`"],
            ["pin = true    # flip with `helexa pin`"],
        ),
        ("insert", [], ["replicas = 2"]),
    ]
    lines = models_file.read_text().splitlines()
    assert lines[lines.index("replicas = 2") - 1].startswith("aliases = ")
    spec = load_toml(models_file, ModelsConfig).get("Qwen/Qwen3-8B")
    assert spec is not None and spec.pin and spec.replicas == 2
    assert spec.sampling.top_p == 0.8  # the sub-table still belongs to this model


def test_pin_an_unknown_id_is_an_error_without_add(models_file: Path) -> None:
    before = models_file.read_text()
    with pytest.raises(ConfigErrors) as info:
        pin_model(models_file, "Qwen/Qwen3-8b")
    message = str(info.value.errors[0])
    assert "did you mean 'Qwen/Qwen3-8B'?" in message and "--add" in message
    assert models_file.read_text() == before


def test_pin_add_with_a_path(models_file: Path, tmp_path: Path) -> None:
    pin_model(models_file, "local/thing", add=True, model_path=tmp_path)
    spec = load_toml(models_file, ModelsConfig).get("local/thing")
    assert spec is not None and spec.pin and spec.path == tmp_path
    with pytest.raises(ConfigErrors, match=r"already in models\.toml"):
        pin_model(models_file, "local/thing", add=True, model_path=tmp_path)


def test_pin_an_unknown_id_adds_an_entry(models_file: Path) -> None:
    before = models_file.read_text()
    pin_model(models_file, "meta-llama/Llama-3.2-1B", replicas=1, add=True)
    diff = changes(before, models_file.read_text())
    assert [tag for tag, _, _ in diff] == ["insert"]
    assert [line for line in diff[0][2] if line] == [
        "[[models]]",
        'id = "meta-llama/Llama-3.2-1B"',
        "pin = true",
        "replicas = 1",
    ]
    lines = models_file.read_text().splitlines()
    # The separator comment above [aliases] still introduces [aliases], not the new entry.
    assert lines[lines.index("[aliases]") - 1].startswith("# ----")
    models = load_toml(models_file, ModelsConfig)
    assert [m.id for m in models.models][-1] == "meta-llama/Llama-3.2-1B"
    assert models.alias_target("claude-x") == "Qwen/Qwen3-8B"  # [aliases] untouched


def test_unpin_changes_only_the_pin_value(models_file: Path) -> None:
    pin_model(models_file, "Qwen/Qwen3-8B")
    pinned = models_file.read_text()
    assert unpin_model(models_file, "Qwen/Qwen3-8B").changed
    assert changes(pinned, models_file.read_text()) == [
        (
            "replace",
            ["pin = true    # flip with `helexa pin`"],
            ["pin = false   # flip with `helexa pin`"],
        )
    ]


def test_unpin_what_is_not_pinned_changes_nothing(models_file: Path) -> None:
    before = models_file.read_bytes()
    result = unpin_model(models_file, "Qwen/Qwen3-0.6B")
    assert not result.changed and "not pinned" in result.summary
    assert models_file.read_bytes() == before


def test_unpin_an_unknown_model_is_an_error(models_file: Path) -> None:
    before = models_file.read_bytes()
    with pytest.raises(ConfigErrors) as caught:
        unpin_model(models_file, "ghost")
    assert str(caught.value) == f"{models_file}: models: no model 'ghost'"
    assert models_file.read_bytes() == before


def test_an_invalid_edit_is_not_written(models_file: Path) -> None:
    before = models_file.read_bytes()
    with pytest.raises(ConfigErrors) as caught:
        pin_model(models_file, "Qwen/Qwen3-8B", replicas=0)
    assert caught.value.errors[0].key == "models[0].replicas"
    assert models_file.read_bytes() == before


def test_an_invalid_file_is_not_edited(models_file: Path) -> None:
    models_file.write_text(models_file.read_text() + "\nbogus = 1\n")
    with pytest.raises(ConfigErrors, match="bogus"):
        pin_model(models_file, "Qwen/Qwen3-8B")


def test_add_neuron_only_inserts(fleet_file: Path) -> None:
    before = fleet_file.read_text()
    result = upsert_neuron(
        fleet_file,
        "shed",
        {"endpoint": "http://shed.internal:13131", "ssh": "root@shed.internal", "install": "pip"},
    )
    assert result.changed and result.summary == "added neuron shed"
    diff = changes(before, fleet_file.read_text())
    assert [tag for tag, _, _ in diff] == ["insert"]
    assert [line for line in diff[0][2] if line] == [
        "[[neurons]]",
        'name = "shed"',
        'endpoint = "http://shed.internal:13131"',
        'ssh = "root@shed.internal"',
        'install = "pip"',
    ]
    fleet = load_toml(fleet_file, FleetConfig)
    assert [n.name for n in fleet.neurons] == ["local", "beast", "shed"]
    assert fleet.reconcile.auto_apply == "off"  # the table after the array is intact


def test_update_neuron_changes_one_line_and_is_idempotent(fleet_file: Path) -> None:
    before = fleet_file.read_text()
    values = {"endpoint": "http://beast.internal:14141", "install": "rpm"}
    assert upsert_neuron(fleet_file, "beast", values).changed
    assert changes(before, fleet_file.read_text()) == [
        (
            "replace",
            ['endpoint = "http://beast.internal:13131"'],
            ['endpoint = "http://beast.internal:14141"'],
        )
    ]
    again = upsert_neuron(fleet_file, "beast", values)
    assert not again.changed and again.summary == "updated neuron beast"


def test_add_neuron_to_a_file_without_neurons(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('# mine\n[gateway]\nlisten = "127.0.0.1:31313"\n')
    upsert_neuron(path, "beast", {"endpoint": "http://beast.internal:13131"})
    assert path.read_text() == (
        '# mine\n[gateway]\nlisten = "127.0.0.1:31313"\n\n'
        '[[neurons]]\nname = "beast"\nendpoint = "http://beast.internal:13131"\n'
    )


def test_edits_keep_the_file_mode_and_leave_no_temp_files(models_file: Path) -> None:
    models_file.chmod(0o640)
    pin_model(models_file, "Qwen/Qwen3-8B")
    assert stat.S_IMODE(models_file.stat().st_mode) == 0o640
    assert sorted(p.name for p in models_file.parent.iterdir()) == ["models.toml"]


def test_edit_through_a_symlink_keeps_the_link(models_file: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.toml"
    link.symlink_to(models_file)
    pin_model(link, "Qwen/Qwen3-8B")
    assert link.is_symlink()
    assert "pin = true" in models_file.read_text()


def test_write_atomic_replaces_the_inode(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text("a = 1\n")
    path.chmod(0o600)
    inode = path.stat().st_ino
    write_atomic(path, "a = 2\n")
    assert path.read_text() == "a = 2\n"
    assert path.stat().st_ino != inode  # replaced whole (os.replace), not rewritten in place
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_pin_does_not_follow_patterns(models_file: Path) -> None:
    # "claude-opus" matches the "claude-*" pattern, but pinning names a concrete model.
    pin_model(models_file, "claude-opus", add=True)
    models = load_toml(models_file, ModelsConfig)
    added = models.get("claude-opus")
    assert added is not None and added.pin
    qwen = models.get("Qwen/Qwen3-8B")
    assert qwen is not None and not qwen.pin


def test_pin_after_an_entry_ending_in_a_sub_table_moves_its_trailer_below(
    tmp_path: Path,
) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        '[[models]]\nid = "a"\n\n[models.sampling]\ntemperature = 0.5\n\n'
        '# what follows: aliases\n\n[aliases]\n"x" = "a"\n'
    )
    pin_model(path, "b", add=True)
    text = path.read_text()
    assert text.index('id = "b"') < text.index("# what follows: aliases") < text.index("[aliases]")
    models = load_toml(path, ModelsConfig)
    assert models.get("a") is not None and models.get("a").sampling.temperature == 0.5  # type: ignore[union-attr]
    assert [m.id for m in models.models] == ["a", "b"]
    assert models.alias_target("x") == "a"

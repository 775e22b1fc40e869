"""Every `helexa ...` command shown in docs/getting-started.md parses with the real CLI.

Commands are taken from the shell code blocks (```sh), with backslash
continuations joined, comments dropped and `&&`/`;`/`|` chains split; each is
parsed by `helexa.cli.build_parser()`, never run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from helexa.cli import build_parser

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"
SHELL_BLOCK = re.compile(r"```(?:sh|bash|shell|console)\n(.*?)```", re.DOTALL)
# The journey the guide promises: each of these must be shown at least once.
JOURNEY = {"bootstrap", "config", "plan", "apply", "serve", "status"}


def helexa_commands(markdown: str) -> list[list[str]]:
    commands: list[list[str]] = []
    for block in SHELL_BLOCK.findall(markdown):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.removeprefix("$ "), comments=True)
            command: list[str] = []
            for word in [*words, ";"]:
                if word in ("&&", "||", ";", "|"):
                    if command[:1] == ["helexa"]:
                        commands.append(command[1:])
                    command = []
                else:
                    command.append(word)
    return commands


COMMANDS = helexa_commands(GUIDE.read_text(encoding="utf-8"))


def test_the_guide_shows_the_whole_journey() -> None:
    assert {argv[0] for argv in COMMANDS} >= JOURNEY


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(argv) for argv in COMMANDS])
def test_command_is_a_real_subcommand_with_real_flags(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`helexa {' '.join(argv)}` does not parse: {capsys.readouterr().err}")
    assert callable(getattr(args, "func", None)), f"`helexa {argv[0]}` needs a subcommand"


def test_parser_of_this_test_rejects_what_is_not_real() -> None:
    commands = helexa_commands("```sh\nhelexa plan --no-such-flag && helexa frobnicate\n```\n")
    assert commands == [["plan", "--no-such-flag"], ["frobnicate"]]
    for argv in commands:
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)

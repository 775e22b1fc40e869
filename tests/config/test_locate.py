from __future__ import annotations

import tomllib

from hypothesis import given
from hypothesis import strategies as st

from helexa.config.base import Loc
from helexa.config.locate import key_lines, line_of

DOCUMENT = '''\
# comment with = and [brackets]
title = "a # not a comment"

[gateway]
listen = "127.0.0.1:1"  # trailing
api_keys = [
  "k1",  # comment inside an array
  """multi
line [not a header]
""",
]
"quoted.key" = 1
dotted . key = { inline = [1,
  2] }

[[neurons]]
name = "a"

[[neurons]]
name = 'b'
[neurons.extra]
deep = 1

[[models]]
id = "m"
text = \'\'\'
[[models]]
\'\'\'
[models.sampling]
temperature = 0.5
'''


def test_the_fixture_is_valid_toml() -> None:
    tomllib.loads(DOCUMENT)


def test_every_key_and_header_is_located() -> None:
    lines = key_lines(DOCUMENT)
    assert lines[("title",)] == 2
    assert lines[("gateway",)] == 4
    assert lines[("gateway", "listen")] == 5
    assert lines[("gateway", "api_keys")] == 6
    assert lines[("gateway", "quoted.key")] == 12
    assert lines[("gateway", "dotted")] == 13
    assert lines[("gateway", "dotted", "key")] == 13


def test_arrays_of_tables_are_indexed() -> None:
    lines = key_lines(DOCUMENT)
    assert lines[("neurons", 0)] == 16
    assert lines[("neurons", 0, "name")] == 17
    assert lines[("neurons", 1, "name")] == 20
    assert lines[("neurons", 1, "extra", "deep")] == 22


def test_sub_tables_belong_to_the_latest_entry_and_strings_hide_headers() -> None:
    lines = key_lines(DOCUMENT)
    assert ("models", 1) not in lines  # the [[models]] inside a string is text
    assert lines[("models", 0, "text")] == 26
    assert lines[("models", 0, "sampling", "temperature")] == 30


def test_line_of_falls_back_to_the_nearest_written_ancestor() -> None:
    lines = key_lines(DOCUMENT)
    assert line_of(lines, ("neurons", 1, "endpoint")) == 19  # missing key: its table
    assert line_of(lines, ("gateway", "api_keys", 1)) == 6  # an element: its key
    assert line_of(lines, ("nowhere",)) is None


# -- property: any document built from these pieces is located exactly ----------------------

_KEYS = st.sampled_from(["a", "b-c", "d_e", '"quoted key"', '"dot.ted"', "'lit'"])
_VALUES = st.sampled_from(
    [
        "1",
        '"text # not a comment"',
        "'[not] a header'",
        '"""\nmulti\n[[x]]\n"""',
        "'''\nit's\n[[x]] = 1\n'''",
        '"escaped \\" [ quote"',
        "[1,\n  2, # c\n]",
        "{ x = 1, y = [2, 3] }",
        "true",
    ]
)
_FILLER = st.sampled_from(["", "\n", "# a comment\n", "  # indented comment = 1\n"])


@st.composite
def _documents(draw: st.DrawFn) -> tuple[str, dict[Loc, int]]:
    """A TOML text and the line each of its keys must be found on."""
    text = ""
    expected: dict[Loc, int] = {}

    def line_now() -> int:
        return text.count("\n") + 1

    for index in range(draw(st.integers(0, 3))):
        text += draw(_FILLER)
        expected[("entries", index)] = line_now()
        text += "[[entries]]  # header comment\n"
        keys = draw(st.lists(_KEYS, min_size=1, max_size=4, unique=True))
        for key in keys:
            text += draw(_FILLER)
            expected[("entries", index, tomllib.loads(f"{key} = 0").popitem()[0])] = line_now()
            text += f"{key} = {draw(_VALUES)}\n"
    return text, expected


@given(_documents())
def test_generated_documents_are_located(document: tuple[str, dict[Loc, int]]) -> None:
    text, expected = document
    tomllib.loads(text)  # the generator only builds valid TOML
    lines = key_lines(text)
    for loc, line in expected.items():
        assert lines[loc] == line, (loc, text)


@given(st.text(alphabet=st.sampled_from(list("ab =[]{}\"'#.,\n\\")), max_size=60))
def test_any_text_is_scanned_without_error_or_hang(text: str) -> None:
    # Only parsed files reach the scanner, but a loader must never spin on a surprise.
    key_lines(text)

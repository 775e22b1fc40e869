"""Where each key of a TOML document is written: {("neurons", 1, "endpoint"): 12, ...}.

Pydantic reports errors by location tuple; this maps those tuples back to line numbers.
It scans text that has already parsed (tomllib), so it only has to follow the lexical
structure: headers, dotted keys, and values to skip (strings, arrays, inline tables).
"""

from __future__ import annotations

import tomllib

from helexa.config.base import Loc

BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[Loc, int] = {}
        self.table: Loc = ()
        # Entries seen so far per array of tables, keyed by its resolved location.
        self.aot_counts: dict[Loc, int] = {}

    # -- low-level movement -------------------------------------------------------------

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        # NUL at the end: unlike "", it is not `in` every string of candidate characters.
        return self.text[index] if index < len(self.text) else "\0"

    def advance(self, count: int = 1) -> None:
        for _ in range(count):
            if self.peek() == "\n":
                self.line += 1
            self.pos += 1

    def skip_blank(self, newlines: bool) -> None:
        """Skip spaces, tabs, comments and (optionally) newlines."""
        while self.pos < len(self.text):
            char = self.peek()
            if char in " \t\r" or (newlines and char == "\n"):
                self.advance()
            elif char == "#":
                while self.pos < len(self.text) and self.peek() != "\n":
                    self.advance()
            else:
                return

    # -- lexical pieces -----------------------------------------------------------------

    def skip_string(self) -> None:
        quote = self.peek()
        if self.text.startswith(quote * 3, self.pos):
            end = self.text.find(quote * 3, self.pos + 3)
            if end < 0:  # unterminated: only in text that did not parse; stop at the end
                end = len(self.text)
            # A closing delimiter may be followed by up to two more quotes (content).
            while self.text.startswith(quote, end + 3):
                end += 1
            self.advance(end + 3 - self.pos)
            return
        self.advance()
        while self.pos < len(self.text) and self.peek() != quote:
            self.advance(2 if quote == '"' and self.peek() == "\\" else 1)
        self.advance()

    def read_key_part(self) -> str:
        start = self.pos
        if self.peek() in "\"'":
            self.skip_string()
            raw = self.text[start : self.pos]
            # Let the real parser decode escapes in quoted keys.
            try:
                return next(iter(tomllib.loads(f"{raw} = 0")))
            except tomllib.TOMLDecodeError:
                return raw.strip("\"'")
        while self.peek() in BARE_KEY_CHARS:
            self.advance()
        return self.text[start : self.pos]

    def read_dotted_key(self) -> list[str]:
        names = [self.read_key_part()]
        self.skip_blank(newlines=False)
        while self.peek() == ".":
            self.advance()
            self.skip_blank(newlines=False)
            names.append(self.read_key_part())
            self.skip_blank(newlines=False)
        return names

    def skip_value(self) -> None:
        """Skip one value, however many lines its arrays or strings span."""
        depth = 0
        while self.pos < len(self.text):
            char = self.peek()
            if char in "\"'":
                self.skip_string()
            elif char in "[{":
                depth += 1
                self.advance()
            elif char in "]}":
                depth -= 1
                self.advance()
            elif char == "#" or (char == "\n" and depth == 0):
                if depth == 0:
                    return
                self.skip_blank(newlines=True)
            else:
                self.advance()

    # -- structure ----------------------------------------------------------------------

    def resolve(self, names: list[str]) -> Loc:
        """A header's names as a location: arrays of tables mean their latest entry."""
        loc: Loc = ()
        for name in names:
            loc += (name,)
            if loc in self.aot_counts:
                loc += (self.aot_counts[loc] - 1,)
        return loc

    def header(self) -> None:
        is_array = self.text.startswith("[[", self.pos)
        self.advance(2 if is_array else 1)
        self.skip_blank(newlines=False)
        names = self.read_dotted_key()
        self.advance(2 if is_array else 1)
        if is_array:
            full = (*self.resolve(names[:-1]), names[-1])
            index = self.aot_counts.get(full, 0)
            self.aot_counts[full] = index + 1
            self.lines.setdefault(full, self.line)
            self.table = (*full, index)
        else:
            self.table = self.resolve(names)
        self.lines[self.table] = self.line

    def key_value(self) -> None:
        line = self.line
        names = self.read_dotted_key()
        for depth in range(1, len(names) + 1):
            self.lines.setdefault((*self.table, *names[:depth]), line)
        self.skip_blank(newlines=False)
        self.advance()  # "="
        self.skip_blank(newlines=False)
        self.skip_value()

    def run(self) -> dict[Loc, int]:
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return self.lines
            start = self.pos
            if self.peek() == "[":
                self.header()
            else:
                self.key_value()
            if self.pos == start:
                self.advance()  # never spin on text this scanner does not follow


def key_lines(text: str) -> dict[Loc, int]:
    """Line (1-based) of every key and table header in valid TOML `text`."""
    return _Scanner(text).run()


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of `loc`, or of its nearest written ancestor (a missing key -> its table)."""
    for depth in range(len(loc), 0, -1):
        line = lines.get(loc[:depth])
        if line is not None:
            return line
    return None

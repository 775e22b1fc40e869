"""Stop strings: streaming cuts exactly where `str.find` would, for any chunking."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from helexa.neuron.stops import StopMatcher, StopResult, find_stop


def stream(text: str, stops: list[str], cuts: list[int]) -> tuple[str, str | None, list[str]]:
    """Feed `text` split at `cuts`; return emitted text, matched stop, and each emission."""
    matcher = StopMatcher(stops)
    emitted: list[str] = []
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
    for start, end in itertools.pairwise(bounds):
        result = matcher.feed(text[start:end])
        emitted.append(result.text)
        if result.matched:
            break
    else:
        emitted.append(matcher.flush())
    return "".join(emitted), matcher.matched_stop, emitted


def reference(text: str, stops: list[str]) -> tuple[str, str | None]:
    hits = [(text.find(s), len(s), s) for s in stops if s and s in text]
    if not hits:
        return text, None
    index, _, stop = min(hits)
    return text[:index], stop


def test_stop_inside_one_chunk() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("hello STOP world") == StopResult("hello ", True)
    assert matcher.matched_stop == "STOP"
    assert matcher.feed("more") == StopResult("", True)
    assert matcher.flush() == ""


def test_stop_split_across_chunks_is_never_emitted() -> None:
    matcher = StopMatcher(["</end>"])
    assert matcher.feed("abc</") == StopResult("abc", False)
    assert matcher.feed("en") == StopResult("", False)
    assert matcher.feed("d>tail") == StopResult("", True)
    assert matcher.matched_stop == "</end>"


def test_false_start_is_released() -> None:
    matcher = StopMatcher(["</end>"])
    assert matcher.feed("a</en") == StopResult("a", False)
    assert matcher.feed("x") == StopResult("</enx", False)
    assert matcher.feed("</") == StopResult("", False)
    assert matcher.flush() == "</"
    assert not matcher.stopped


def test_longer_stop_starting_earlier_wins() -> None:
    # "bc" completes first, but "abcd" starts earlier: wait and cut before "a".
    matcher = StopMatcher(["abcd", "bc"])
    assert matcher.feed("xabc") == StopResult("x", False)
    assert matcher.feed("d") == StopResult("", True)
    assert matcher.matched_stop == "abcd"


def test_flush_cuts_at_a_held_stop() -> None:
    matcher = StopMatcher(["abcd", "bc"])
    assert matcher.feed("xabc") == StopResult("x", False)
    assert matcher.flush() == "a"
    assert matcher.matched_stop == "bc"


def test_no_stops_passes_everything_through() -> None:
    matcher = StopMatcher(["", ""])
    assert matcher.feed("abc") == StopResult("abc", False)
    assert matcher.flush() == ""


def test_find_stop_prefers_earliest_then_shortest() -> None:
    assert find_stop("xxabcab", ["cab", "ab", "abc"]) == (2, "ab")
    assert find_stop("xyz", ["a"]) is None


texts = st.text(alphabet="abc\n", max_size=30)
stop_lists = st.lists(st.text(alphabet="abc\n", min_size=1, max_size=4), max_size=4)
cut_lists = st.lists(st.integers(min_value=0, max_value=30), max_size=30)


@given(texts, stop_lists, cut_lists)
def test_any_chunking_matches_the_non_streaming_cut(
    text: str, stops: list[str], cuts: list[int]
) -> None:
    emitted, matched, _ = stream(text, stops, cuts)
    assert (emitted, matched) == reference(text, stops)


@given(texts, stop_lists, cut_lists)
def test_emitted_text_is_never_retracted(text: str, stops: list[str], cuts: list[int]) -> None:
    # Every emission is final: the prefix emitted so far is a prefix of the answer.
    _, _, pieces = stream(text, stops, cuts)
    expected, _ = reference(text, stops)
    so_far = ""
    for piece in pieces:
        so_far += piece
        assert expected.startswith(so_far)


@given(texts, stop_lists)
def test_one_character_at_a_time(text: str, stops: list[str]) -> None:
    emitted, matched, _ = stream(text, stops, list(range(len(text))))
    assert (emitted, matched) == reference(text, stops)

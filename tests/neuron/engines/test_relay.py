"""What the relay adds to a body before a server engine sees it (pure part)."""

from __future__ import annotations

from helexa.neuron.engines.relay import with_defaults


def test_sampling_defaults_fill_only_what_the_client_left_out() -> None:
    body = {"model": "m", "temperature": 0.2, "messages": []}
    defaults = {"temperature": 0.9, "top_k": 20, "stop": ["END"]}
    assert with_defaults(body, defaults, "command") == {
        "model": "m",
        "temperature": 0.2,
        "messages": [],
        "top_k": 20,
        "stop": ["END"],
    }
    assert body == {"model": "m", "temperature": 0.2, "messages": []}  # not modified


def test_a_max_completion_tokens_from_the_client_wins_over_a_default_max_tokens() -> None:
    assert with_defaults({"max_completion_tokens": 5}, {"max_tokens": 99}, "command") == {
        "max_completion_tokens": 5
    }


def test_repetition_penalty_takes_llama_cpp_s_name_there() -> None:
    assert with_defaults({}, {"repetition_penalty": 1.1}, "llama.cpp") == {"repeat_penalty": 1.1}
    assert with_defaults({}, {"repetition_penalty": 1.1}, "command") == {"repetition_penalty": 1.1}

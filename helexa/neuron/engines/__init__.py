"""Engines: who runs a loaded model.

    "transformers"  helexa's in-process torch engine (helexa/neuron/engine/), the default
    "llama.cpp"     llama.cpp's `llama-server`, started per model on a loopback port
    "command"       any OpenAI-compatible server, started from a command template

The registry sees one shape for all of them (registry.ServingModel): memory,
devices, context length, close(). The server engines are started by start.py,
watched by process.py (a crash marks the model failed), and requests to them
are relayed by relay.py. docs/neuron.md "Engines" says what each guarantees.
"""

from __future__ import annotations

from helexa.neuron.engines.served import ServedModel

__all__ = ["ServedModel"]

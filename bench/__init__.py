"""Side-by-side benchmarks: `python -m bench [--quick]` writes docs/benchmarks.md.

Each section is a module `bench/<name>.py` exposing `async def run(quick: bool) -> str`
that returns a markdown section; `bench/__main__.py` lists the sections to run
(neuron, coldload, gateway, translation, reconcile) and appends the hand-written
bench/analysis.md. Shared parts: loadgen.py (the one load generator), upstream.py
(stub upstream, minimal proxy), procs.py (contestant processes), litellm_proxy.py
(LiteLLM in its own venv), gateway_report.py (tables); profile.py profiles the
gateway under the same load (`python -m bench.profile`).
"""

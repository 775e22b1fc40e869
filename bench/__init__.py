"""Side-by-side benchmarks: `python -m bench [--quick]` writes docs/benchmarks.md.

Each section is a module `bench/<name>.py` exposing `async def run(quick: bool) -> str`
that returns a markdown section; `bench/__main__.py` lists the sections to run.
"""

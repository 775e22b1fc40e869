"""helexa.fleet: what the fleet is and how to talk to it, shared by the gateway and the reconciler.

- state.py: the observed fleet (plain dataclasses, fed by the poller) and the decision log.
- placement.py (pure): feasibility, footprints, ranking, eviction, keep_alive, defrag.
- poller.py / neuron_client.py / sessions.py: polling the neurons, load/unload calls, the
  aiohttp session they share.
- decisions.py: one grep-friendly line per decision.
"""

"""helexa.reconcile: desired state (the two files) minus observed state (the fleet) = a plan.

- desired.py / observed.py: the two inputs, each with its fingerprint.
- diff.py (pure): `diff(desired, observed) -> Plan`, simulating each action on a copy;
  besides models.toml's pins it plans the upkeep (idle unloads, defrag restarts).
- plan.py: Action / Plan data and their JSON; render.py: the text an operator reads.
- hosts.py: SSH-managed hosts (deploy's host plan) observed and applied within a plan.
- apply.py: runs a plan against the hosts and neurons; lock.py: one writer at a time.
- daemon.py + conditions.py: the loop inside `helexa serve` (wired to the gateway by
  helexa.serve.reconcile; this package imports nothing from the gateway).
"""

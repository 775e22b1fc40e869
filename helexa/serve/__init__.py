"""helexa.serve: `helexa serve`, the one place that wires the gateway, its metrics listener,
the local neurons (supervised children) and the reconcile daemon together."""

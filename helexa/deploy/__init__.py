"""helexa.deploy: SSH host operations, host facts, templates, bootstrap (docs/deploy.md).

ssh (connections) -> facts (probe + pure parsers) -> hostplan (desired state, pure
diff) -> hostapply (carry actions out); hostsync plans/applies one host, bootstrap
adds the health wait and the fleet.toml entry. render + the top-level templates/ make files.
"""

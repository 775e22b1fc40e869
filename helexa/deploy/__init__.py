"""helexa.deploy."""

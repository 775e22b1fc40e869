"""helexa.config."""

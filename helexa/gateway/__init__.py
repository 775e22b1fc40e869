"""helexa.gateway."""

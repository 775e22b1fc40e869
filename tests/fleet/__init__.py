"""helexa.fleet."""

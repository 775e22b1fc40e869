"""helexa.serve."""

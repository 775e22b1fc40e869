"""helexa.translate."""

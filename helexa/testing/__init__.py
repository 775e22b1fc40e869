"""helexa.testing."""

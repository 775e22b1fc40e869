"""helexa.reconcile."""

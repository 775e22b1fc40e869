"""The gateway's HTTP routes, one module per dialect or surface.

openai, anthropic and responses serve the three client dialects; admin, ui and
usage the operator's endpoints. Each module exports `ROUTES` for gateway.app.
"""

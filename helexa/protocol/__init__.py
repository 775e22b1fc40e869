"""Wire models only (pydantic): what crosses HTTP. No behaviour lives here."""

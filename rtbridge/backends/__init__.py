"""Transports: one module per backend, each importing its vendor SDK lazily."""

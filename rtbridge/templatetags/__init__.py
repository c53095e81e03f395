"""Template tags of rtbridge (``{% load rtbridge %}``)."""

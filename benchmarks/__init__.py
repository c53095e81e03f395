"""Reproducible benchmarks: ``python -m benchmarks`` runs them all; see RESULTS.md."""

"""The real-time todo demo behind ``rtbridge demo``: a Django project shipped in the package."""

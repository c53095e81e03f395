"""Helpers of the fan-out benchmark: load client, publisher, and the two servers' settings."""

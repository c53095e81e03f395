"""Loopback fake servers that speak the vendors' wire protocols (PubNub, Firebase RTDB)."""

"""Wire tests: vendor SDKs against real loopback servers (soketi, fake PubNub, fake Firebase)."""

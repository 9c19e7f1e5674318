"""Hostile input: attacks and generated junk against the HTTP API, over real HTTP."""

"""Fault matrix: every upstream failure injected through the simulator, over real HTTP."""

"""Benchmarks of the gateway against the naive way of calling Partner Center (``make bench``).

``python -m bench`` starts the simulator of Entra ID and Partner Center with realistic latencies
in a process of its own, drives one workload through the gateway in process, the gateway over
HTTP and a baseline that does what documentation samples do, and writes a table, JSON and a
chart to ``bench/results/``. Benchmarks print figures; they never assert timings.
"""

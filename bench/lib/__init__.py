"""The pieces of ``make bench`` (bench/run.py): helpers, the processes a run
starts (collector, bpftrace, ingest runner, private bus, PostgreSQL), the
workloads, and one module per section of issue 8."""

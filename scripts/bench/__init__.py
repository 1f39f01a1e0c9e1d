"""Benchmarks. ``python -m scripts.bench`` runs the comparison with peer task queues
(`scripts.bench.peers`); ``python -m scripts.bench.bench_<driver>`` runs one driver's own
benchmark against its raw client."""

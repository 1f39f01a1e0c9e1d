"""Prometheus metrics and HTTP health probes for AsyncTasQ workers."""

__all__: list[str] = []

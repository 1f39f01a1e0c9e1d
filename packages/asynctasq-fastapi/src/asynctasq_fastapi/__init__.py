"""AsyncTasQ for FastAPI: a lifespan and a dispatch dependency."""

__all__: list[str] = []

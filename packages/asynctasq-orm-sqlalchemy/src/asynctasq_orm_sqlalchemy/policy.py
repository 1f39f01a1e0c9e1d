"""The missing-row policy, shared by every ORM package (`asynctasq.serializer.model_refs`)."""

from asynctasq.serializer.model_refs import (
    ATTRIBUTE,
    OnMissing,
    missing,
    on_missing,
    set_default_on_missing,
)

__all__ = ["ATTRIBUTE", "OnMissing", "missing", "on_missing", "set_default_on_missing"]

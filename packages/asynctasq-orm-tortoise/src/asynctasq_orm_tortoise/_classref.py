"""Model class references: core's shared implementation (`asynctasq.serializer.model_refs`)."""

from asynctasq.serializer.model_refs import class_ref, malformed, resolve_class

__all__ = ["class_ref", "malformed", "resolve_class"]

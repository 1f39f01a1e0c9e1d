"""Masking secrets before anything is shown: core's `asynctasq.redaction`, under the names
the CLI's modules (and plugins written against them) import from here.
"""

from __future__ import annotations

from asynctasq.redaction import (
    MASK,
    is_secret_name,
    redact_setting,
    redact_settings,
    redact_text,
    redact_url,
)

__all__ = [
    "MASK",
    "is_secret_name",
    "redact_setting",
    "redact_settings",
    "redact_text",
    "redact_url",
]

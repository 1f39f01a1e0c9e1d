"""Stable import path for the sqs driver, which lives in the `asynctasq-sqs` package."""

from asynctasq.drivers._shim import require

SQSDriver = require("asynctasq_sqs", "SQSDriver", "asynctasq-sqs")

__all__ = ["SQSDriver"]

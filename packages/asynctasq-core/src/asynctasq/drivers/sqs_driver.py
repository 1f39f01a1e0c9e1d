"""Stable import path for the sqs driver, which lives in the `asynctasq-sqs` package."""

from typing import TYPE_CHECKING

from asynctasq.drivers._shim import require

if TYPE_CHECKING:
    # Type checkers see the real class (and users get its signature); at run time the shim
    # imports it, or says which package to install.
    from asynctasq_sqs import SQSDriver
else:
    SQSDriver = require("asynctasq_sqs", "SQSDriver", "asynctasq-sqs")

__all__ = ["SQSDriver"]

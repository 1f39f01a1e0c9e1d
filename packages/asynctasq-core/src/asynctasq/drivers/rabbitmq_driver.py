"""Stable import path for the rabbitmq driver, which lives in the `asynctasq-rabbitmq` package."""

from typing import TYPE_CHECKING

from asynctasq.drivers._shim import require

if TYPE_CHECKING:
    # Type checkers see the real class (and users get its signature); at run time the shim
    # imports it, or says which package to install.
    from asynctasq_rabbitmq import RabbitMQDriver
else:
    RabbitMQDriver = require("asynctasq_rabbitmq", "RabbitMQDriver", "asynctasq-rabbitmq")

__all__ = ["RabbitMQDriver"]

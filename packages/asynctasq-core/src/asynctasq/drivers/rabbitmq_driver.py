"""Stable import path for the rabbitmq driver, which lives in the `asynctasq-rabbitmq` package."""

from asynctasq.drivers._shim import require

RabbitMQDriver = require("asynctasq_rabbitmq", "RabbitMQDriver", "asynctasq-rabbitmq")

__all__ = ["RabbitMQDriver"]

"""AsyncTasQ driver for RabbitMQ (aio-pika).

Install with ``pip install asynctasq-rabbitmq``; select it with ``driver='rabbitmq'`` or use
`RabbitMQDriver` directly.
"""

from asynctasq_rabbitmq.delays import MAX_DELAY
from asynctasq_rabbitmq.driver import RabbitMQDriver

__all__ = ["MAX_DELAY", "RabbitMQDriver"]

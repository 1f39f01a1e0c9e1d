"""Amazon SQS driver for AsyncTasQ (standard queues, through aioboto3).

Use it by name (``driver="sqs"``, settings ``ASYNCTASQ_SQS_*``) or directly::

    from asynctasq_sqs import SQSDriver

    driver = SQSDriver(region_name="us-east-1", queue_name_prefix="prod-")
"""

from asynctasq_sqs.driver import SQSDriver
from asynctasq_sqs.errors import (
    BatchEntryError,
    MessageTooLargeError,
    QueueNotFoundError,
    SQSDriverError,
)

__all__ = [
    "BatchEntryError",
    "MessageTooLargeError",
    "QueueNotFoundError",
    "SQSDriver",
    "SQSDriverError",
]

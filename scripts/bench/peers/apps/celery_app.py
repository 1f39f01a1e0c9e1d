"""Celery on Redis or RabbitMQ: acks after the task ran, no results, one process.

Worker: ``celery -A celery_app worker --pool threads --concurrency 10 -Q Q`` without gossip,
mingle and heartbeat (the scaling run: ``--pool prefork --concurrency N``). ``fill N`` queues
N `counted` tasks (untimed).
"""

import sys

import common
from celery import Celery

app = Celery("celery_app", broker=common.URL)
app.conf.update(
    task_acks_late=True,
    task_ignore_result=True,
    task_default_queue=common.QUEUE,
    worker_send_task_events=False,
    worker_enable_remote_control=False,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    broker_transport_options={"confirm_publish": True},
)


@app.task
def noop():
    common.tick()


@app.task
def probe(sent):
    common.record_latency(sent)


@app.task
def counted():
    common.count()


if __name__ == "__main__":
    mode, n = sys.argv[1], int(sys.argv[2])
    if mode == "fill":
        for _ in range(n):
            counted.delay()
    elif mode == "enqueue":
        common.enqueue_sync(noop.delay, n)
    else:
        common.latency_sync(probe.delay, n)

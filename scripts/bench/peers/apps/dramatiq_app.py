"""Dramatiq on Redis or RabbitMQ (from the URL's scheme).

Worker: ``dramatiq dramatiq_app --processes 1 --threads 10 --queues Q``. ``fill N`` queues N
`counted` tasks for the scaling run (untimed).
"""

import sys

import common
import dramatiq

if common.URL.startswith("amqp"):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=common.URL, confirm_delivery=True)
else:
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=common.URL)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=common.QUEUE, max_retries=0)
def noop():
    common.tick()


@dramatiq.actor(queue_name=common.QUEUE, max_retries=0)
def probe(sent):
    common.record_latency(sent)


@dramatiq.actor(queue_name=common.QUEUE, max_retries=0)
def counted():
    common.count()


if __name__ == "__main__":
    mode, n = sys.argv[1], int(sys.argv[2])
    if mode == "fill":
        for _ in range(n):
            counted.send()
    elif mode == "enqueue":
        common.enqueue_sync(noop.send, n)
    else:
        common.latency_sync(probe.send, n)
    broker.close()

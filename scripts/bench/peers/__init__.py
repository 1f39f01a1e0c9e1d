"""The cross-framework comparison: AsyncTasQ's drivers against peer task queues.

* `contenders`: who runs, on which broker, installed how, started how;
* `venvs`: the peers' own virtual environments under ``.bench/peers/``;
* `brokers`: resetting Redis, PostgreSQL and RabbitMQ state between runs;
* `harness`: the common workload, measured the same way for everyone;
* `report`: the markdown table and the PNG charts;
* `apps/`: one small module per framework, run inside that framework's environment.
"""

#!/usr/bin/env bash
# Makes sure the local servers the tests use are up: PostgreSQL 5432, Redis 6379, MariaDB 3306,
# RabbitMQ 5672 on 127.0.0.1 (README.md says what each needs).
# Safe to run when they already are. Missing servers are reported, not fatal here:
# the test fixtures skip (or fail under CI=true) with the reason.
set -uo pipefail
up() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start() {
    local port=$1; shift
    up "$port" && return 0
    echo "services: starting $* (port $port)"
    "$@" >/dev/null 2>&1 || true
}
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    start 5432 pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
fi
if command -v redis-server >/dev/null 2>&1; then
    start 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
    # 64 MiB packets: the MySQL driver carries payloads of 16 MiB and more.
    start 3306 start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --max-allowed-packet=64M
fi
if command -v rabbitmq-server >/dev/null 2>&1; then
    start 5672 rabbitmq-server -detached
fi
# Wait for whatever was started to accept connections (RabbitMQ takes ~10 s).
for port in 5432 6379 3306 5672; do
    for _ in $(seq 1 60); do up "$port" && break; sleep 0.5; done
    up "$port" || echo "services: nothing listens on 127.0.0.1:$port"
done
exit 0

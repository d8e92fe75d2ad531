#!/usr/bin/env bash
# Start the services the runtime tests use, where they are down. The machine
# kind starts them before a session; a restarted machine may have lost one.
set -u
up() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
wait_for() { for _ in $(seq 1 60); do up "$1" && return 0; sleep 0.5; done; echo "service on port $1 did not start" >&2; return 1; }
if ! up 5432; then pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true; wait_for 5432; fi
if ! up 3306; then start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true; wait_for 3306; fi
if ! up 6379; then redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true; wait_for 6379; fi
if ! up 5672; then rabbitmq-server -detached || true; wait_for 5672; fi
exit 0

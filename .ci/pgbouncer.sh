#!/usr/bin/env bash
# Run PgBouncer in transaction mode on loopback in front of a PostgreSQL server, in the
# foreground (the caller stops it), its config, log and pid file in FOLDER (the caller
# removes it): nothing is written elsewhere. It also logs every login to stderr: the
# caller must read it or send it to a file (PgBouncer blocks, accepting no one, on a full
# pipe: tests/pgbouncer.py).
# Usage: bash .ci/pgbouncer.sh FOLDER LISTEN_PORT SERVER_HOST SERVER_PORT [POOL_SIZE]
# (POOL_SIZE: server connections per database and user, default 20).
# Debian's pgbouncer (1.18) does not follow prepared statements from one server connection
# to the next in transaction mode: clients using psycopg 3 turn them off
# (?prepare_threshold=none in optuna-pandalm's URLs).
set -euo pipefail
folder=$1 listen_port=$2 server_host=$3 server_port=$4 pool_size=${5:-20}
bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
cat > "$folder/pgbouncer.ini" <<INI
[databases]
* = host=$server_host port=$server_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen_port
unix_socket_dir =
auth_type = trust
auth_file = $folder/userlist.txt
admin_users = postgres
pool_mode = transaction
max_client_conn = 2000
default_pool_size = $pool_size
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = $folder/pgbouncer.log
pidfile = $folder/pgbouncer.pid
INI
echo '"postgres" ""' > "$folder/userlist.txt"
if [ "$(id -u)" = 0 ]; then  # PgBouncer refuses to run as root
  chown -R postgres "$folder"
  exec "$bin" -u postgres "$folder/pgbouncer.ini"
fi
exec "$bin" "$folder/pgbouncer.ini"

#!/usr/bin/env bash
# Throw-away PostgreSQL and Redis servers on loopback ports for the backend tests.
#
#   scripts/servers.sh start            installs what is missing (apt), starts both, prints env
#                                       (servers already running in the directory are reused
#                                       only if this script and its settings are unchanged)
#   scripts/servers.sh stop             stops both and deletes their data
#   scripts/servers.sh env              prints DISKSTORE_TEST_POSTGRES=... and DISKSTORE_TEST_REDIS=...
#   scripts/servers.sh restart-postgres stops and starts PostgreSQL (data kept; for failure tests)
#   scripts/servers.sh restart-redis    the same for Redis
#   scripts/servers.sh stop-postgres | start-postgres   (connection-refused tests)
#   scripts/servers.sh crash-postgres   stops PostgreSQL at once (`-m immediate`: no
#                                       checkpoint; the next start recovers from the WAL)
#   scripts/servers.sh start-redis | stop-redis | kill-redis   (kill-redis: SIGKILL)
#
# Environment: DISKSTORE_SERVERS_DIR, DISKSTORE_PG_PORT, DISKSTORE_REDIS_PORT,
# DISKSTORE_REDIS_TLS_PORT choose where (the failure tests start private servers this
# way; DISKSTORE_TLS_DIR reuses certificates made before); DISKSTORE_REDIS_APPENDONLY=1
# makes Redis log every write (`appendfsync always`); DISKSTORE_PG_OPTIONS adds server
# settings (`-c name=value …`, e.g. `-c ssl=off`).
#
# PostgreSQL: a fresh cluster in $DISKSTORE_SERVERS_DIR/pg on 127.0.0.1:$PG_PORT, database
# `diskstore_test`; user `postgres` is trusted, user `diskstore_pw` needs the password `secret`
# (scram-sha-256), so that a wrong password can be tested; user `diskstore_tls` may only
# connect over TLS, user `diskstore_cert` only over TLS with a client certificate of the
# test CA (pg_hba `cert`, i.e. clientcert=verify-full), user `diskstore_plain` only in
# plain text. Redis: no persistence; a TLS port
# ($REDIS_TLS_PORT) beside the plain one, which checks a client certificate when one is
# given (`tls-auth-clients optional`).
# TLS: a throw-away CA, a server certificate for 127.0.0.1/localhost and a client
# certificate (CN diskstore_cert) in $DIR/tls (openssl), and a client certificate of
# another CA that nothing trusts (other-client.*); PostgreSQL runs with ssl=on on its one
# port (it takes plain and TLS connections).
set -euo pipefail

DIR=${DISKSTORE_SERVERS_DIR:-/tmp/diskstore-servers}
PG_PORT=${DISKSTORE_PG_PORT:-55432}
REDIS_PORT=${DISKSTORE_REDIS_PORT:-56379}
REDIS_TLS_PORT=${DISKSTORE_REDIS_TLS_PORT:-56380}
REDIS_PERSIST=(--save '' --appendonly no)
if [ "${DISKSTORE_REDIS_APPENDONLY:-0}" = 1 ]; then
    REDIS_PERSIST=(--save '' --appendonly yes --appendfsync always)
fi
TLS_DIR=${DISKSTORE_TLS_DIR:-$DIR/tls}  # another run's certificates may be shared
PG_DATA=$DIR/pg
PG_USER=postgres

pg_bin() {
    local dir
    for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return
        fi
    done
    return 1
}

install_missing() {
    local need=()
    pg_bin >/dev/null || need+=(postgresql-15)
    command -v redis-server >/dev/null || need+=(redis-server)
    command -v openssl >/dev/null || need+=(openssl)
    if [ ${#need[@]} -gt 0 ]; then
        echo "servers.sh: installing ${need[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq "${need[@]}" >&2 || {
            # Debian releases without postgresql-15 carry another major version.
            apt-get install -y -qq postgresql redis-server >&2
        }
    fi
}

# A throw-away CA, a server and a client certificate signed by it, and a client
# certificate of an untrusted CA (kept until `stop`).
tls_certs() {
    [ -f "$TLS_DIR/client.pem" ] && return
    mkdir -p "$TLS_DIR"
    (
        cd "$TLS_DIR"
        # issue NAME CN EXTENSIONS CA: NAME.pem and NAME.key, signed by CA.pem/CA.key.
        issue() {
            openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
            printf '%b' "$3" >"$1.ext"
            openssl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -CAcreateserial -days 2 \
                -extfile "$1.ext" -out "$1.pem" 2>/dev/null
            rm -f "$1.csr" "$1.ext"
        }
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=diskstore test CA" \
            -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=untrusted CA" \
            -keyout other-ca.key -out other-ca.pem 2>/dev/null
        local leaf='basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n'
        issue server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1\n${leaf}extendedKeyUsage=serverAuth\n" ca
        issue client diskstore_cert "${leaf}extendedKeyUsage=clientAuth\n" ca
        issue other-client diskstore_cert "${leaf}extendedKeyUsage=clientAuth\n" other-ca
        rm -f ca.srl other-ca.srl ca.key other-ca.key other-ca.pem
        chmod 600 server.key
        chmod 600 client.key other-client.key  # libpq refuses keys others can read
        [ "$(id -u)" = 0 ] && chown "$PG_USER" server.key server.pem
        chmod 755 .
    )
}

# Runs a PostgreSQL tool as the owner of the cluster (the `postgres` user when we are root).
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

pg_start() {
    local bin
    bin=$(pg_bin)
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    tls_certs
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
        mkdir -p "$PG_DATA"
        [ "$(id -u)" = 0 ] && chown "$PG_USER" "$PG_DATA"
        as_pg "$bin/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
        cat >"$PG_DATA/pg_hba.conf" <<'EOF'
host all diskstore_pw 127.0.0.1/32 scram-sha-256
hostssl all diskstore_tls 127.0.0.1/32 trust
hostnossl all diskstore_tls 127.0.0.1/32 reject
hostssl all diskstore_cert 127.0.0.1/32 cert
host all diskstore_cert 127.0.0.1/32 reject
hostssl all diskstore_plain 127.0.0.1/32 reject
host all all 127.0.0.1/32 trust
local all all trust
EOF
        [ "$(id -u)" = 0 ] && chown "$PG_USER" "$PG_DATA/pg_hba.conf"
        local fresh=1
    fi
    if ! as_pg "$bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
        as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 start \
            -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_DATA -c fsync=off -c max_connections=200 -c ssl=on -c ssl_cert_file=$TLS_DIR/server.pem -c ssl_key_file=$TLS_DIR/server.key -c ssl_ca_file=$TLS_DIR/ca.pem ${DISKSTORE_PG_OPTIONS:-}" >/dev/null
    fi
    if [ "${fresh:-0}" = 1 ]; then
        as_pg "$bin/psql" -q -h "$PG_DATA" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
            -c "CREATE DATABASE diskstore_test" \
            -c "CREATE ROLE diskstore_pw LOGIN PASSWORD 'secret'" \
            -c "CREATE ROLE diskstore_tls LOGIN" \
            -c "CREATE ROLE diskstore_cert LOGIN" \
            -c "CREATE ROLE diskstore_plain LOGIN" \
            -c "GRANT ALL ON DATABASE diskstore_test TO diskstore_pw, diskstore_tls, diskstore_cert, diskstore_plain" >/dev/null
        as_pg "$bin/psql" -q -h "$PG_DATA" -p "$PG_PORT" -U postgres -d diskstore_test -v ON_ERROR_STOP=1 \
            -c "GRANT ALL ON SCHEMA public TO diskstore_pw, diskstore_tls, diskstore_cert, diskstore_plain" >/dev/null
    fi
}

# pg_stop [MODE]: `fast` (sessions ended, a clean shutdown) or `immediate` (a crash).
pg_stop() {
    local bin
    bin=$(pg_bin) || return 0
    if [ -f "$PG_DATA/PG_VERSION" ]; then
        as_pg "$bin/pg_ctl" -D "$PG_DATA" -m "${1:-fast}" -w stop >/dev/null 2>&1 || true
    fi
}

redis_start() {
    mkdir -p "$DIR/redis"
    tls_certs
    if ! redis_up; then
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 "${REDIS_PERSIST[@]}" \
            --tls-port "$REDIS_TLS_PORT" --tls-cert-file "$TLS_DIR/server.pem" \
            --tls-key-file "$TLS_DIR/server.key" --tls-ca-cert-file "$TLS_DIR/ca.pem" \
            --tls-auth-clients optional \
            --dir "$DIR/redis" --daemonize yes --pidfile "$DIR/redis/redis.pid" \
            --logfile "$DIR/redis/redis.log" >/dev/null
        for _ in $(seq 100); do
            redis_up && return
            sleep 0.1
        done
        echo "servers.sh: redis-server did not start (see $DIR/redis/redis.log)" >&2
        return 1
    fi
}

redis_up() {
    (exec 3<>/dev/tcp/127.0.0.1/"$REDIS_PORT") 2>/dev/null
}

# redis_stop [SIGNAL]: TERM (a clean shutdown) or KILL (a crash).
redis_stop() {
    local pidfile=$DIR/redis/redis.pid
    if [ -f "$pidfile" ]; then
        local pid
        pid=$(cat "$pidfile")
        kill "-${1:-TERM}" "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        rm -f "$pidfile"
    fi
}

print_env() {
    # The plain URLs say sslmode=disable: the backend tests and benchmarks stay in plain text.
    echo "DISKSTORE_TEST_POSTGRES='postgresql://postgres@127.0.0.1:$PG_PORT/diskstore_test?sslmode=disable'"
    echo "DISKSTORE_TEST_REDIS=redis://127.0.0.1:$REDIS_PORT/0"
    echo "DISKSTORE_TEST_TLS_CA=$TLS_DIR/ca.pem"
    echo "DISKSTORE_TEST_POSTGRES_TLS='postgresql://diskstore_tls@127.0.0.1:$PG_PORT/diskstore_test?sslmode=verify-full&sslrootcert=$TLS_DIR/ca.pem'"
    echo "DISKSTORE_TEST_REDIS_TLS='rediss://127.0.0.1:$REDIS_TLS_PORT/0?ssl_ca_certs=$TLS_DIR/ca.pem'"
    # A user admitted only with a client certificate of the test CA.
    echo "DISKSTORE_TEST_POSTGRES_CERT='postgresql://diskstore_cert@127.0.0.1:$PG_PORT/diskstore_test?sslmode=verify-full&sslrootcert=$TLS_DIR/ca.pem&sslcert=$TLS_DIR/client.pem&sslkey=$TLS_DIR/client.key'"
}

# What the servers in $DIR were made with: this script and the settings it reads. `start`
# reuses running servers only when they match, so servers left by an older version of this
# script (without a user or certificate the tests now need) are not silently reused.
layout_stamp() {
    {
        cat "${BASH_SOURCE[0]}"
        echo "$PG_PORT $REDIS_PORT $REDIS_TLS_PORT $TLS_DIR ${REDIS_PERSIST[*]} ${DISKSTORE_PG_OPTIONS:-}"
    } | sha256sum | cut -d' ' -f1
}

fresh_if_stale() {
    local stamp
    stamp=$(layout_stamp)
    if [ -d "$DIR" ] && [ "$(cat "$DIR/.layout" 2>/dev/null)" != "$stamp" ]; then
        pg_stop
        redis_stop
        rm -rf "$DIR"
    fi
    mkdir -p "$DIR"
    echo "$stamp" >"$DIR/.layout"
}

case "${1:-}" in
    start)
        install_missing
        fresh_if_stale
        pg_start
        redis_start
        print_env
        ;;
    stop)
        pg_stop
        redis_stop
        rm -rf "$DIR"
        ;;
    env) print_env ;;
    restart-postgres)
        pg_stop
        pg_start
        ;;
    stop-postgres) pg_stop ;;
    crash-postgres) pg_stop immediate ;;
    start-postgres) pg_start ;;
    restart-redis)
        redis_stop
        redis_start
        ;;
    start-redis) redis_start ;;
    stop-redis) redis_stop ;;
    kill-redis) redis_stop KILL ;;
    *)
        echo "usage: $0 start|stop|env|restart-postgres|stop-postgres|crash-postgres|start-postgres|restart-redis|start-redis|stop-redis|kill-redis" >&2
        exit 2
        ;;
esac

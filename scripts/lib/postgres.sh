# Shared by scripts/test and scripts/demo: starts a throwaway PostgreSQL
# cluster from the installed server binaries on a free loopback port, exports
# DATABASE_URL for it, and removes it when the calling script exits.
# Source this file; call start_throwaway_cluster.

find_pg_binary() {
    local name=$1 candidate
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    for candidate in /usr/lib/postgresql/*/bin/"$name" /usr/local/pgsql/bin/"$name"; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

free_port() {
    local port
    for port in $(seq 55432 55632); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

start_throwaway_cluster() {
    local initdb pg_ctl port
    PG_RUN_AS=()
    initdb=$(find_pg_binary initdb) || {
        echo "error: DATABASE_URL is not set and PostgreSQL's server binaries (initdb, pg_ctl) are not installed." >&2
        echo "Set DATABASE_URL to a PostgreSQL 13+ server whose role may create databases, or install PostgreSQL (Debian: apt-get install postgresql)." >&2
        exit 1
    }
    pg_ctl=$(find_pg_binary pg_ctl)
    port=$(free_port) || { echo "error: no free port in 55432-55632 for a throwaway PostgreSQL" >&2; exit 1; }

    PG_TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/axiquota-pg.XXXXXX")
    # PostgreSQL refuses to run as root, so root runs it as the postgres user.
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || { echo "error: running as root needs a 'postgres' system user to start PostgreSQL" >&2; exit 1; }
        chown postgres "$PG_TEST_DIR"
        PG_RUN_AS=(runuser -u postgres --)
    fi

    run_postgres_binary "$initdb" -D "$PG_TEST_DIR/data" -U postgres --auth=trust --encoding=UTF8 --no-sync >"$PG_TEST_DIR/initdb.log" 2>&1 || {
        cat "$PG_TEST_DIR/initdb.log" >&2
        exit 1
    }
    run_postgres_binary "$pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$PG_TEST_DIR' -c fsync=off -c max_connections=200" \
        start >/dev/null || {
        cat "$PG_TEST_DIR/server.log" >&2
        exit 1
    }
    PG_CTL=$pg_ctl
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "started a throwaway PostgreSQL on 127.0.0.1:$port" >&2
}

# Runs a PostgreSQL binary as PG_RUN_AS, from / rather than the caller's
# directory, which the postgres user may not be allowed to enter.
run_postgres_binary() {
    (cd / && "${PG_RUN_AS[@]}" "$@")
}

stop_throwaway_cluster() {
    if [ -n "${PG_TEST_DIR:-}" ] && [ -d "$PG_TEST_DIR" ]; then
        run_postgres_binary "$PG_CTL" -D "$PG_TEST_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_TEST_DIR"
    fi
}


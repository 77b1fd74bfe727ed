#!/usr/bin/env bash
# MCP round-trip benchmark: what a `tools/call` through Portcullis's MCP proxy adds over calling
# the MCP server directly. The server is the test fixture (tests/python/mcp_fixture_server.py,
# the official MCP Python SDK, Streamable HTTP with JSON responses); the call is `echo` with a
# short text. Both paths get the same wrk load in one session each: one connection (latency,
# not throughput), BENCH_MCP_DURATION seconds after a warm-up. The proxy runs with its defaults
# (the embedded policy bundle, the detectors) and is pinned to one core, wrk and the server to
# the other. Results: bench/out/mcp.md.
#
#   bench/mcp.sh          build (release) if needed, run, print the table
#   bench/mcp.sh --check  syntax and files only
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
DURATION=${BENCH_MCP_DURATION:-10}
CONNECTIONS=${BENCH_MCP_CONNECTIONS:-1}
PORT_BASE=${BENCH_MCP_PORT_BASE:-28600}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
OUT_DIR=${BENCH_OUT:-$BENCH_DIR/out}
PYTHON=${BENCH_MCP_PYTHON:-$ROOT/.venv/bin/python}
PORTCULLIS_BIN=${BENCH_PORTCULLIS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/portcullis}
SERVER=$ROOT/tests/python/mcp_fixture_server.py
LUA=$BENCH_DIR/post.lua

log() { printf 'bench-mcp: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

if [[ ${1:-} == --check ]]; then
    bash -n "$0"
    for f in "$LUA" "$SERVER"; do [[ -f $f ]] || die "missing $f"; done
    log "--check ok"
    exit 0
fi

command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
command -v taskset >/dev/null || die "taskset is not installed (util-linux)"
[[ -x $PYTHON ]] || die "no Python with the mcp SDK at $PYTHON (scripts/test creates .venv)"
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release --locked -p portcullis-cli)
fi
[[ -x $PORTCULLIS_BIN ]] || die "no binary at $PORTCULLIS_BIN"

SERVER_PORT=$PORT_BASE
PROXY_PORT=$((PORT_BASE + 1))
RUN_DIR=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT

wait_port() {
    local port=$1 i
    for ((i = 0; i < 200; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    die "nothing listens on $port after 10 s"
}

taskset -c "$LOAD_CPU" "$PYTHON" "$SERVER" --transport http --port "$SERVER_PORT" --json-response \
    >"$RUN_DIR/server.log" 2>&1 &
PIDS+=($!)
cat >"$RUN_DIR/portcullis.yaml" <<YAML
mcp:
  servers:
    - name: bench
      url: http://127.0.0.1:$SERVER_PORT/mcp
YAML
taskset -c "$PROXY_CPU" "$PORTCULLIS_BIN" serve --config "$RUN_DIR/portcullis.yaml" \
    --listen "127.0.0.1:$PROXY_PORT" --log-level warn >"$RUN_DIR/portcullis.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$SERVER_PORT"
wait_port "$PROXY_PORT"

# initialize + notifications/initialized; prints the session id.
open_session() {
    local url=$1 headers="$RUN_DIR/headers" id
    curl -sS -o /dev/null -D "$headers" -X POST "$url" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        --data '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}'
    id=$(awk 'tolower($1) == "mcp-session-id:" {print $2}' "$headers" | tr -d '\r')
    [[ -n $id ]] || die "no session id from $url"
    curl -sS -o /dev/null -X POST "$url" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: $id" \
        -H 'MCP-Protocol-Version: 2025-11-25' \
        --data '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    printf '%s' "$id"
}

BODY=$RUN_DIR/call.json
printf '%s' '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"Summarise the open tickets for the operations team."}}}' >"$BODY"

declare -A RESULT
measure() {
    local name=$1 url=$2 session out
    session=$(open_session "$url")
    # The answer must be a result, not an error, before it is timed.
    curl -sS -X POST "$url" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: $session" \
        -H 'MCP-Protocol-Version: 2025-11-25' --data-binary "@$BODY" | grep -q '"result"' ||
        die "$name: tools/call did not return a result"
    taskset -c "$LOAD_CPU" wrk -t 1 -c "$CONNECTIONS" -d 2s -s "$LUA" "$url" -- "$BODY" same "$session" >/dev/null
    [[ $name == portcullis ]] && ticks_before=$(cpu_ticks)
    out=$(taskset -c "$LOAD_CPU" wrk -t 1 -c "$CONNECTIONS" -d "${DURATION}s" --latency -s "$LUA" "$url" -- "$BODY" same "$session")
    [[ $name == portcullis ]] && ticks_after=$(cpu_ticks)
    RESULT[$name]=$(grep BENCH_RESULT <<<"$out")
    log "$name: ${RESULT[$name]}"
}

field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"${RESULT[$1]}"; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$PROXY_PID/stat"; }
ticks_before=0
ticks_after=0
measure direct "http://127.0.0.1:$SERVER_PORT/mcp"
measure portcullis "http://127.0.0.1:$PROXY_PORT/mcp/bench"

mkdir -p "$OUT_DIR"
{
    printf '## MCP tools/call round trip\n\n'
    printf -- '- date: %s; commit: %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    printf -- '- wrk -t 1 -c %s, %s s after a 2 s warm-up; proxy on cpu %s, wrk and the server on cpu %s\n\n' "$CONNECTIONS" "$DURATION" "$PROXY_CPU" "$LOAD_CPU"
    printf '| path | calls/s | p50 ms | p90 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|\n'
    for name in direct portcullis; do
        requests=$(field "$name" requests)
        duration=$(field "$name" duration_us)
        errors=$(($(field "$name" status) + $(field "$name" read) + $(field "$name" write) + $(field "$name" timeout) + $(field "$name" connect)))
        awk -v n="$name" -v r="$requests" -v d="$duration" -v p50="$(field "$name" p50_us)" \
            -v p90="$(field "$name" p90_us)" -v p99="$(field "$name" p99_us)" -v e="$errors" \
            'BEGIN { printf "| %s | %.0f | %.3f | %.3f | %.3f | %d |\n", n, r / (d / 1e6), p50 / 1000, p90 / 1000, p99 / 1000, e }'
    done
    awk -v a="$(field direct p50_us)" -v b="$(field portcullis p50_us)" \
        -v c="$(field direct p99_us)" -v d="$(field portcullis p99_us)" \
        -v t="$((ticks_after - ticks_before))" -v hz="$(getconf CLK_TCK)" -v n="$(field portcullis requests)" \
        'BEGIN { printf "\nAdded by Portcullis: p50 %+.3f ms, p99 %+.3f ms; proxy CPU %.1f µs per call.\n", (b - a) / 1000, (d - c) / 1000, t / hz * 1e6 / n }'
} | tee "$OUT_DIR/mcp.md"

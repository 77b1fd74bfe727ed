#!/usr/bin/env bash
# Load benchmark: the gateway overhead of Portcullis against nginx and the LiteLLM proxy,
# each proxying the same mock LLM upstream on one pinned core. What it measures, the knobs
# and the caveats are in bench/README.md; the method is in docs/benchmarks.md.
#
#   bench/run.sh           install what is missing, build, run, print the table
#   bench/run.sh --check   cheap CI check: syntax and files only, no build, no load
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
LUA_SCRIPT=$BENCH_DIR/post.lua
SHELL_LIBS=("$BENCH_DIR/lib/body.sh" "$BENCH_DIR/lib/litellm.sh")
HELPER_SCRIPTS=("${SHELL_LIBS[@]}" "$BENCH_DIR/lib/report.awk" "$BENCH_DIR/litellm-constraints.txt")

CONNECTIONS=${BENCH_CONNECTIONS:-32}
# A second, lighter run per target (0: none) for p99 below saturation; see bench/README.md.
LIGHT_CONNECTIONS=${BENCH_LIGHT_CONNECTIONS:-4}
WRK_THREADS=${BENCH_THREADS:-1}
DURATION=${BENCH_DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${BENCH_WARMUP:-2}
WARMUP=${WARMUP%s}
SCENARIOS=${BENCH_SCENARIOS:-json sse}
TARGETS=${BENCH_TARGETS:-direct nginx portcullis litellm}
STREAM_CHUNKS=${BENCH_STREAM_CHUNKS:-50}
PORT_BASE=${BENCH_PORT_BASE:-28400}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
OUT_DIR=${BENCH_OUT:-$BENCH_DIR/out}
QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PORTCULLIS_BIN=${BENCH_PORTCULLIS_BIN:-$TARGET_DIR/release/portcullis}
MOCK_BIN=${BENCH_MOCK_BIN:-$TARGET_DIR/release/portcullis-mock-upstream}
# 1.82.6 is the version verified here, and the last release before the two compromised
# uploads (1.82.7, 1.82.8; since removed from PyPI) that run.sh refuses.
LITELLM_VERSION=${BENCH_LITELLM_VERSION:-1.82.6}
LITELLM_VENV=${BENCH_LITELLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis-bench/litellm-$LITELLM_VERSION}
LITELLM_CONSTRAINTS=${BENCH_LITELLM_CONSTRAINTS-$BENCH_DIR/litellm-constraints.txt}

MOCK_PORT=$PORT_BASE
NGINX_PORT=$((PORT_BASE + 1))
PORTCULLIS_PORT=$((PORT_BASE + 2))
LITELLM_PORT=$((PORT_BASE + 3))
# `on`: the gateway's defaults, guard included; `off`: a generated config with guard.enabled: false;
# `nocache`: the guard on without its scan cache (guard.scan_cache_bytes: 0).
PORTCULLIS_GUARD=${BENCH_PORTCULLIS_GUARD:-on}
# `on`: the default audit log (one record per decision to the embedded SQLite store, in the run's
# directory); `off`: audit.enabled: false, to tell the audit log's cost from the guard's.
PORTCULLIS_AUDIT=${BENCH_PORTCULLIS_AUDIT:-on}
# `on`: callers authenticate with an API key (post.lua sends it) and every request passes a
# requests-per-minute and a token-per-minute rule in memory (limits far above the load), to
# measure authentication and the limit phase; `off` (default): anonymous, no rules.
PORTCULLIS_ACCESS=${BENCH_PORTCULLIS_ACCESS:-off}
# `same`: every request is the same bytes; `unique-turn`: the last user message ends with a
# per-request number, as in a conversation where each request brings a new turn.
BODY_MODE=${BENCH_BODY:-same}
CHAT_PATH=/v1/chat/completions
# A run fails when more than 1 request in this many ends in an error (0.1 %).
ERROR_BUDGET_DIVISOR=1000

# shellcheck source-path=SCRIPTDIR source=lib/body.sh
source "$BENCH_DIR/lib/body.sh"
# shellcheck source-path=SCRIPTDIR source=lib/litellm.sh
source "$BENCH_DIR/lib/litellm.sh"

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
    printf 'bench: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    echo "Environment knobs: see bench/README.md (BENCH_CONNECTIONS, BENCH_DURATION, ...)."
}

# --- processes ----------------------------------------------------------------------

# Every process this script starts is listed here, so the EXIT trap can stop it.
STARTED_PIDS=()
RUN_DIR=""

# True while PID runs; an exited child that is not yet reaped (a zombie) does not count.
is_running() {
    local stat
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    [[ ${stat##*) } != Z* ]]
}

# Asks PID to stop, waits up to 5 s, then kills it, and reaps it.
stop_pid() {
    local pid=$1 _
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        is_running "$pid" || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

forget_pid() {
    local pid=$1 kept=() p
    for p in "${STARTED_PIDS[@]}"; do
        [[ $p == "$pid" ]] || kept+=("$p")
    done
    STARTED_PIDS=("${kept[@]}")
}

cleanup() {
    local status=$? pid
    for pid in "${STARTED_PIDS[@]}"; do
        stop_pid "$pid"
    done
    if [[ -n $RUN_DIR && -d $RUN_DIR ]]; then
        if ((status == 0)); then
            rm -rf "$RUN_DIR"
        else
            log "kept logs and configs of the failed run in $RUN_DIR"
        fi
    fi
    exit "$status"
}

# Polls COMMAND every 0.1 s for up to SECONDS until it succeeds; WHAT names it in the
# failure message.
wait_up_to() {
    local seconds=$1 what=$2 _
    shift 2
    for _ in $(seq 1 $((seconds * 10))); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    die "timed out after $seconds s waiting for $what"
}

wait_until() { wait_up_to 20 "$@"; }

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

require_free_port() {
    port_is_free "$1" || die "port 127.0.0.1:$1 is in use; set BENCH_PORT_BASE to a free range"
}

http_status_is() {
    local want=$1 url=$2
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null) == "$want" ]]
}

http_answers() {
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null) != 000 ]]
}

# Sum of utime+stime (clock ticks) of the given processes, all threads included.
cpu_ticks() {
    local total=0 pid stat fields
    for pid in "$@"; do
        read -r stat <"/proc/$pid/stat"
        # The command name may hold spaces; the fields after it start at ") ".
        read -r -a fields <<<"${stat##*) }"
        # fields[0] is field 3 (state), so utime (14) and stime (15) are 11 and 12.
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# CPU ticks of ROOT and every process below it: utime+stime of each live process plus
# cutime+cstime, the time of the children it has reaped, so a worker that exits during the
# run still counts. For nginx that is master + worker, for LiteLLM every process it starts.
tree_cpu_ticks() {
    local root=$1 dir stat fields pid up total=0
    local -A parent_of=() ticks=()
    for dir in /proc/[0-9]*; do
        { read -r stat <"$dir/stat"; } 2>/dev/null || continue
        read -r -a fields <<<"${stat##*) }"
        pid=${dir#/proc/}
        parent_of[$pid]=${fields[1]}
        # fields[13] and [14] are cutime (16) and cstime (17).
        ticks[$pid]=$((fields[11] + fields[12] + fields[13] + fields[14]))
    done
    [[ -n ${ticks[$root]:-} ]] || die "proxy process $root is gone; see $RUN_DIR"
    for pid in "${!ticks[@]}"; do
        up=$pid
        while [[ $up != "$root" && $up -gt 1 ]]; do up=${parent_of[$up]:-0}; done
        [[ $up == "$root" ]] && total=$((total + ticks[$pid]))
    done
    echo "$total"
}

peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

children_of() {
    local parent=$1 stat fields dir
    for dir in /proc/[0-9]*; do
        { read -r stat <"$dir/stat"; } 2>/dev/null || continue
        read -r -a fields <<<"${stat##*) }"
        [[ ${fields[1]} == "$parent" ]] && echo "${dir#/proc/}"
    done
    return 0
}

# --- prerequisites ------------------------------------------------------------------

find_nginx() {
    command -v nginx 2>/dev/null && return 0
    [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx && return 0
    return 1
}

install_prerequisites() {
    local missing=() sudo=()
    find_nginx >/dev/null || missing+=(nginx)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v taskset >/dev/null || missing+=(util-linux)
    command -v curl >/dev/null || missing+=(curl)
    command -v getconf >/dev/null || missing+=(libc-bin)
    if target_selected litellm && ! litellm_is_installed; then
        "${BENCH_PYTHON:-python3}" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3 python3-venv)
    fi
    ((${#missing[@]} == 0)) && return 0
    [[ ${BENCH_SKIP_INSTALL:-0} == 1 ]] && die "missing ${missing[*]} and BENCH_SKIP_INSTALL=1"
    command -v apt-get >/dev/null || die "missing ${missing[*]}; install them (Debian packages)"
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "missing ${missing[*]}; run as root or install them"
        sudo=(sudo)
    fi
    log "installing ${missing[*]} with apt-get"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

target_selected() { [[ " $TARGETS " == *" $1 "* ]]; }

build_binaries() {
    if [[ ${BENCH_SKIP_BUILD:-0} == 1 ]]; then
        log "BENCH_SKIP_BUILD=1: using $PORTCULLIS_BIN and $MOCK_BIN as they are"
    else
        log "building release binaries (cargo build --release -p portcullis-cli -p portcullis-testkit)"
        (cd "$ROOT" && cargo build --release -p portcullis-cli -p portcullis-testkit) >&2
    fi
    ! target_selected portcullis || [[ -x $PORTCULLIS_BIN ]] || die "no gateway binary at $PORTCULLIS_BIN"
    [[ -x $MOCK_BIN ]] || die "no mock upstream binary at $MOCK_BIN"
}

validate_knobs() {
    local pair name value
    for pair in BENCH_CONNECTIONS:CONNECTIONS BENCH_LIGHT_CONNECTIONS:LIGHT_CONNECTIONS \
        BENCH_THREADS:WRK_THREADS BENCH_DURATION:DURATION \
        BENCH_WARMUP:WARMUP BENCH_STREAM_CHUNKS:STREAM_CHUNKS BENCH_PORT_BASE:PORT_BASE \
        BENCH_PROXY_CPU:PROXY_CPU BENCH_LOAD_CPU:LOAD_CPU BENCH_QUIET_WAIT:QUIET_WAIT; do
        name=${pair#*:}
        value=${!name}
        [[ $value =~ ^[0-9]+$ ]] || die "${pair%%:*} must be a whole number, got '$value'"
    done
    ((PROXY_CPU != LOAD_CPU)) || die "BENCH_PROXY_CPU and BENCH_LOAD_CPU must differ"
    ((DURATION >= 1 && DURATION <= 600)) || die "BENCH_DURATION must be 1..600 seconds"
    ((WARMUP <= 60)) || die "BENCH_WARMUP must be 0..60 seconds"
    ((QUIET_WAIT <= 3600)) || die "BENCH_QUIET_WAIT must be 0..3600 seconds"
    ((CONNECTIONS >= WRK_THREADS)) || die "BENCH_CONNECTIONS must be >= BENCH_THREADS"
    ((LIGHT_CONNECTIONS == 0 || (LIGHT_CONNECTIONS >= WRK_THREADS && LIGHT_CONNECTIONS < CONNECTIONS))) ||
        die "BENCH_LIGHT_CONNECTIONS must be 0 (off) or from BENCH_THREADS to below BENCH_CONNECTIONS"
    ((PORT_BASE >= 1024 && PORT_BASE <= 65000)) || die "BENCH_PORT_BASE must be 1024..65000"
    local scenario target
    for scenario in $SCENARIOS; do
        [[ $scenario == json || $scenario == sse ]] || die "unknown scenario '$scenario' (json, sse)"
    done
    for target in $TARGETS; do
        case $target in direct | nginx | portcullis | litellm) ;; *) die "unknown target '$target' (direct, nginx, portcullis, litellm)" ;; esac
    done
    [[ $PORTCULLIS_GUARD == on || $PORTCULLIS_GUARD == off || $PORTCULLIS_GUARD == nocache ]] ||
        die "BENCH_PORTCULLIS_GUARD must be on, off or nocache, got '$PORTCULLIS_GUARD'"
    [[ $PORTCULLIS_AUDIT == on || $PORTCULLIS_AUDIT == off ]] ||
        die "BENCH_PORTCULLIS_AUDIT must be on or off, got '$PORTCULLIS_AUDIT'"
    [[ $PORTCULLIS_ACCESS == on || $PORTCULLIS_ACCESS == off ]] ||
        die "BENCH_PORTCULLIS_ACCESS must be on or off, got '$PORTCULLIS_ACCESS'"
    [[ $BODY_MODE == same || $BODY_MODE == unique-turn ]] ||
        die "BENCH_BODY must be same or unique-turn, got '$BODY_MODE'"
    [[ $LITELLM_VERSION =~ ^1\.[0-9]+\.[0-9]+(\.post[0-9]+)?$ ]] ||
        die "BENCH_LITELLM_VERSION must be an exact 1.x release such as 1.82.6, got '$LITELLM_VERSION'"
    case $LITELLM_VERSION in
    1.82.7 | 1.82.8) die "litellm $LITELLM_VERSION is a compromised upload (March 2026); pick another version" ;;
    esac
    [[ -z $LITELLM_CONSTRAINTS || -f $LITELLM_CONSTRAINTS ]] ||
        die "BENCH_LITELLM_CONSTRAINTS: no file $LITELLM_CONSTRAINTS (set it empty to resolve freely)"
}

# --- the targets (litellm: lib/litellm.sh) -------------------------------------------

MOCK_PID=""

start_mock() {
    require_free_port "$MOCK_PORT"
    taskset -c "$LOAD_CPU" "$MOCK_BIN" --listen "127.0.0.1:$MOCK_PORT" \
        --stream-chunks "$STREAM_CHUNKS" --threads 1 \
        >"$RUN_DIR/mock.stdout" 2>"$RUN_DIR/mock.stderr" &
    MOCK_PID=$!
    STARTED_PIDS+=("$MOCK_PID")
    wait_until "the mock upstream to print its address" grep -q '"addr"' "$RUN_DIR/mock.stdout"
    local addr
    addr=$(sed -n 's/.*"addr" *: *"\([^"]*\)".*/\1/p' "$RUN_DIR/mock.stdout" | head -n 1)
    [[ $addr == "127.0.0.1:$MOCK_PORT" ]] || die "mock upstream reports '$addr', expected 127.0.0.1:$MOCK_PORT"
    log "mock upstream pid $MOCK_PID on $addr (cpu $LOAD_CPU)"
}

# Prints the nginx worker's affinity mask for one CPU: cpu 0 -> 1, cpu 2 -> 100.
cpu_mask() { printf '1%*s' "$1" '' | tr ' ' 0; }

write_nginx_config() {
    local dir=$1
    cat >"$dir/nginx.conf" <<EOF
# Generated by bench/run.sh. Tuned only where a default would be unfair to nginx
# or would differ from the gateway: one worker on the proxy core, no access log,
# no response buffering, keep-alive to the upstream.
worker_processes 1;
worker_cpu_affinity $(cpu_mask "$PROXY_CPU");
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    upstream mock {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 64;
        # The gateway reuses upstream connections indefinitely; nginx's default closes
        # one after 1000 requests.
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        keepalive_requests 1000000;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
}

# Starts the proxy TARGET; sets PROXY_PID (measured for peak RSS) and PROXY_PIDS, whose
# first process is the root of the process tree measured for CPU.
PROXY_PID=""
PROXY_PIDS=()

start_nginx() {
    local dir=$RUN_DIR/nginx
    mkdir -p "$dir"
    write_nginx_config "$dir"
    require_free_port "$NGINX_PORT"
    # -e: the error log before the config is read, instead of /var/log/nginx (non-root).
    taskset -c "$PROXY_CPU" "$NGINX_BIN" -e "$dir/nginx-error.log" -c "$dir/nginx.conf" -p "$dir" -g 'daemon off;' \
        >"$dir/nginx.stdout" 2>"$dir/nginx.stderr" &
    local master=$!
    STARTED_PIDS+=("$master")
    wait_until "nginx to answer on port $NGINX_PORT" http_answers "http://127.0.0.1:$NGINX_PORT/"
    local workers
    mapfile -t workers < <(children_of "$master")
    ((${#workers[@]} == 1)) || die "expected one nginx worker, found ${#workers[@]}"
    PROXY_PID=${workers[0]}
    PROXY_PIDS=("$master" "$PROXY_PID")
    log "nginx master $master, worker $PROXY_PID on 127.0.0.1:$NGINX_PORT (cpu $PROXY_CPU)"
}

# With BENCH_PORTCULLIS_GUARD=off: a config file with the same upstream and the guard
# switched off, to tell the guard's cost from the proxying's; with `nocache`, the guard on
# without its scan cache, so that every text is scanned on every request.
write_portcullis_config() {
    local guard_settings='  scan_cache_bytes: 8388608'
    if [[ $PORTCULLIS_GUARD == off ]]; then
        guard_settings='  enabled: false'
    elif [[ $PORTCULLIS_GUARD == nocache ]]; then
        guard_settings='  scan_cache_bytes: 0'
    fi
    local audit_enabled=true
    [[ $PORTCULLIS_AUDIT == on ]] || audit_enabled=false
    cat >"$1" <<EOF
# Generated by bench/run.sh (BENCH_PORTCULLIS_GUARD=$PORTCULLIS_GUARD,
# BENCH_PORTCULLIS_AUDIT=$PORTCULLIS_AUDIT, BENCH_PORTCULLIS_ACCESS=$PORTCULLIS_ACCESS).
upstreams:
  - name: mock
    url: http://127.0.0.1:$MOCK_PORT/v1
default_upstream: mock
guard:
$guard_settings
audit:
  enabled: $audit_enabled
EOF
    if [[ $PORTCULLIS_ACCESS == on ]]; then
        local digest
        digest=$(printf %s portcullis-bench-key | sha256sum | cut -d' ' -f1)
        cat >>"$1" <<EOF
auth:
  api_keys:
    - {name: bench, sha256: "$digest", tenant: bench}
rate_limits:
  rules:
    - {name: per-key, by: [principal, model], requests_per_minute: 100000000, tokens_per_minute: 100000000000}
EOF
    fi
}

start_portcullis() {
    local args=(serve --listen "127.0.0.1:$PORTCULLIS_PORT")
    if [[ $PORTCULLIS_GUARD != on || $PORTCULLIS_AUDIT != on || $PORTCULLIS_ACCESS != off ]]; then
        write_portcullis_config "$RUN_DIR/portcullis.yaml"
        args+=(--config "$RUN_DIR/portcullis.yaml")
    else
        args+=(--upstream "http://127.0.0.1:$MOCK_PORT/v1")
    fi
    local help
    help=$("$PORTCULLIS_BIN" serve --help 2>&1 || true)
    [[ $help != *--log-level* ]] || args+=(--log-level warn)
    require_free_port "$PORTCULLIS_PORT"
    # In the run's directory: the embedded store (portcullis.db) is the run's, not the checkout's.
    (cd "$RUN_DIR" && exec taskset -c "$PROXY_CPU" "$PORTCULLIS_BIN" "${args[@]}" \
        >"$RUN_DIR/portcullis.stdout" 2>"$RUN_DIR/portcullis.stderr") &
    PROXY_PID=$!
    PROXY_PIDS=("$PROXY_PID")
    STARTED_PIDS+=("$PROXY_PID")
    wait_until "portcullis /readyz to return 200" portcullis_is_ready
    log "portcullis pid $PROXY_PID on 127.0.0.1:$PORTCULLIS_PORT (cpu $PROXY_CPU): ${args[*]}"
}

portcullis_is_ready() {
    is_running "$PROXY_PID" ||
        die "portcullis exited during start-up: $(tail -n 3 "$RUN_DIR/portcullis.stderr")"
    http_status_is 200 "http://127.0.0.1:$PORTCULLIS_PORT/readyz"
}

stop_proxy() {
    local pid
    for pid in "${PROXY_PIDS[@]}"; do
        is_running "$pid" || die "proxy process $pid died during the run; see $RUN_DIR"
    done
    # Stopping the first pid (the nginx master, the gateway or litellm) stops its workers too.
    stop_pid "${PROXY_PIDS[0]}"
    forget_pid "${PROXY_PIDS[0]}"
    PROXY_PID=""
    PROXY_PIDS=()
}

target_url() {
    case $1 in
    direct) echo "http://127.0.0.1:$MOCK_PORT$CHAT_PATH" ;;
    nginx) echo "http://127.0.0.1:$NGINX_PORT$CHAT_PATH" ;;
    portcullis) echo "http://127.0.0.1:$PORTCULLIS_PORT$CHAT_PATH" ;;
    litellm) echo "http://127.0.0.1:$LITELLM_PORT$CHAT_PATH" ;;
    esac
}

# One request through the target before loading it, so a misrouted path (a fast 404)
# or a broken stream is never measured as throughput.
sanity_request() {
    local scenario=$1 target=$2 url=$3 body=$4 response=$RUN_DIR/sanity-$1-$2.out meta
    meta=$(curl -sS -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer portcullis-bench-key' --data-binary "@$body" \
        --max-time 10 -o "$response" -w '%{http_code} %{content_type}' "$url") ||
        die "$scenario/$target: request to $url failed"
    [[ ${meta%% *} == 200 ]] || die "$scenario/$target: $url answered '$meta': $(head -c 300 "$response")"
    if [[ $scenario == sse ]]; then
        [[ $meta == *text/event-stream* ]] || die "$scenario/$target: expected an event stream, got '$meta'"
        local events
        events=$(grep -c '^data:' "$response" || true)
        ((events >= STREAM_CHUNKS)) || die "$scenario/$target: only $events SSE events, expected >= $STREAM_CHUNKS"
    else
        [[ $meta == *application/json* ]] || die "$scenario/$target: expected JSON, got '$meta'"
    fi
}

# --- measuring ----------------------------------------------------------------------

# Runs wrk into OUTPUT. In the background and waited for, so that a signal reaches the
# traps at once instead of after the run.
run_wrk() {
    local connections=$1 seconds=$2 url=$3 body=$4 output=$5 pid status=0
    taskset -c "$LOAD_CPU" wrk -t "$WRK_THREADS" -c "$connections" -d "${seconds}s" \
        --timeout 10s --latency -s "$LUA_SCRIPT" "$url" -- "$body" "$BODY_MODE" >"$output" 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    wait "$pid" || status=$?
    forget_pid "$pid"
    ((status == 0)) || die "wrk exited with $status: $(tail -n 5 "$output")"
}

# Busy clock ticks of the whole machine (steal included) from /proc/stat.
machine_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# Sets SNAPSHOT to the CPU ticks used so far by: the machine, the proxy (0 for
# `direct`), the mock and this shell's reaped children (wrk, once waited for). `times`
# must run in this shell: in a $(...) subshell the children's times start at zero.
SNAPSHOT=()
cpu_snapshot() {
    local target=$1 proxy=0 times_file=$RUN_DIR/times.txt children
    [[ $target == direct ]] || proxy=$(tree_cpu_ticks "${PROXY_PIDS[0]}")
    times >"$times_file"
    children=$(awk -v tck="$CLK_TCK" 'NR == 2 {
        for (i = 1; i <= 2; i++) { split($i, part, "m"); total += part[1] * 60 + part[2] }
        printf "%d\n", total * tck
    }' "$times_file")
    SNAPSHOT=("$(machine_busy_ticks)" "$proxy" "$(cpu_ticks "$MOCK_PID")" "$children")
}

# With BENCH_QUIET_WAIT=N, waits up to N seconds for a second in which the machine is
# at most 5 % busy (nothing of ours runs between measurements), so that other work such
# as a build does not skew the next run. Gives up with a note, never loops unbounded.
wait_for_quiet() {
    ((QUIET_WAIT > 0)) || return 0
    local deadline=$((SECONDS + QUIET_WAIT)) busy_before idle_before busy_after idle_after
    while ((SECONDS < deadline)); do
        read -r busy_before idle_before < <(machine_busy_idle_ticks)
        sleep 1
        read -r busy_after idle_after < <(machine_busy_idle_ticks)
        if (((busy_after - busy_before) * 20 <= (busy_after - busy_before) + (idle_after - idle_before))); then
            return 0
        fi
    done
    log "the machine stayed busy for ${QUIET_WAIT}s; measuring anyway (see the other CPU % column)"
}

machine_busy_idle_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }

# Appends one tab-separated row to $RESULTS_TSV; columns are named in lib/report.awk.
# LOAD is `main` (BENCH_CONNECTIONS, after the sanity request and the warm-up) or `light`
# (BENCH_LIGHT_CONNECTIONS, right after the main run on the same, warm proxy).
measure() {
    local scenario=$1 target=$2 body=$3 load=$4 url raw rss_kb=- connections=$CONNECTIONS
    url=$(target_url "$target")
    raw=$OUT_DIR/raw/$scenario-$target.txt
    if [[ $load == light ]]; then
        connections=$LIGHT_CONNECTIONS
        raw=$OUT_DIR/raw/$scenario-$target-c$connections.txt
    else
        sanity_request "$scenario" "$target" "$url" "$body"
        if ((WARMUP > 0)); then
            log "$scenario/$target: warm-up ${WARMUP}s"
            run_wrk "$connections" "$WARMUP" "$url" "$body" "$OUT_DIR/raw/$scenario-$target-warmup.txt"
        fi
    fi
    wait_for_quiet
    log "$scenario/$target: measuring ${DURATION}s at $connections connections"
    local before after
    cpu_snapshot "$target"
    before=("${SNAPSHOT[@]}")
    run_wrk "$connections" "$DURATION" "$url" "$body" "$raw"
    cpu_snapshot "$target"
    after=("${SNAPSHOT[@]}")
    [[ $target == direct ]] || rss_kb=$(peak_rss_kb "$PROXY_PID")
    local proxy_ticks=$((after[1] - before[1]))
    # CPU that neither the proxy, the mock nor wrk used: other work on the machine or
    # steal by the hypervisor. It tells how far this run's figures can be trusted.
    local other_ticks=$((after[0] - before[0] - proxy_ticks - (after[2] - before[2]) - (after[3] - before[3])))
    ((other_ticks >= 0)) || other_ticks=0

    local line pair errors verdict=ok
    line=$(grep '^BENCH_RESULT ' "$raw") || die "$scenario/$target: no BENCH_RESULT line in $raw"
    local -A result=()
    for pair in ${line#BENCH_RESULT }; do
        result[${pair%%=*}]=${pair#*=}
    done
    errors=$((result[connect] + result[read] + result[write] + result[status] + result[timeout]))
    if ((result[requests] == 0 || errors * ERROR_BUDGET_DIVISOR > result[requests])); then
        verdict=failed
        printf '\nbench: FAILED %s/%s at c=%d: %d errors in %d requests (budget 0.1 %%): %s\n\n' \
            "$scenario" "$target" "$connections" "$errors" "${result[requests]}" "$line" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$scenario" "$target" "${result[requests]}" "${result[duration_us]}" \
        "${result[p50_us]}" "${result[p90_us]}" "${result[p99_us]}" "${result[max_us]}" \
        "$errors" "${result[status]}" "$proxy_ticks" "$rss_kb" \
        "$verdict" "${result[bytes]}" "$other_ticks" "$load" "$connections" >>"$RESULTS_TSV"
}

run_scenario() {
    local scenario=$1 body=$RUN_DIR/request-$1.json target
    write_chat_request "$body" "$([[ $scenario == sse ]] && echo true || echo false)"
    for target in $TARGETS; do
        case $target in
        nginx) start_nginx ;;
        portcullis) start_portcullis ;;
        litellm) start_litellm ;;
        esac
        measure "$scenario" "$target" "$body" main
        ((LIGHT_CONNECTIONS == 0)) || measure "$scenario" "$target" "$body" light
        [[ $target == direct ]] || stop_proxy
    done
}

# --- report -------------------------------------------------------------------------

machine_field() {
    case $1 in
    cpu) { grep -m 1 '^model name' /proc/cpuinfo 2>/dev/null || echo ': unknown'; } | sed 's/^[^:]*: *//' ;;
    commit)
        local commit
        commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) || commit=none
        [[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || commit="$commit (dirty tree)"
        echo "$commit"
        ;;
    esac
}

write_report() {
    local machine=$RUN_DIR/machine.tsv
    {
        printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
        printf 'commit\t%s\n' "$(machine_field commit)"
        printf 'nproc\t%s\n' "$(nproc)"
        printf 'cpu\t%s\n' "$(machine_field cpu)"
        printf 'kernel\t%s\n' "$(uname -r)"
        printf 'nginx\t%s\n' "$("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')"
        printf 'wrk\t%s\n' "$({ wrk -v 2>&1 || true; } | head -n 1 | awk '{ print $1, $2 }')"
        printf 'portcullis\t%s\n' "$({ "$PORTCULLIS_BIN" --version 2>/dev/null || echo unknown; } | head -n 1)"
        printf 'portcullis_guard\t%s\n' "$PORTCULLIS_GUARD"
        printf 'portcullis_audit\t%s\n' "$PORTCULLIS_AUDIT"
        printf 'portcullis_access\t%s\n' "$PORTCULLIS_ACCESS"
        printf 'body\t%s\n' "$BODY_MODE"
        ! target_selected litellm || printf 'litellm\t%s\n' "$(litellm_version_line)"
        printf 'clk_tck\t%s\n' "$CLK_TCK"
        printf 'connections\t%s\n' "$CONNECTIONS"
        printf 'light_connections\t%s\n' "$LIGHT_CONNECTIONS"
        printf 'wrk_threads\t%s\n' "$WRK_THREADS"
        printf 'duration_s\t%s\n' "$DURATION"
        printf 'warmup_s\t%s\n' "$WARMUP"
        printf 'stream_chunks\t%s\n' "$STREAM_CHUNKS"
        printf 'proxy_cpu\t%s\n' "$PROXY_CPU"
        printf 'load_cpu\t%s\n' "$LOAD_CPU"
        printf 'request_bytes\t%s\n' "$(wc -c <"$RUN_DIR/request-json.json" 2>/dev/null || echo 0)"
    } >"$machine"
    awk -v mode=markdown -f "$BENCH_DIR/lib/report.awk" "$machine" "$RESULTS_TSV" >"$OUT_DIR/results.md"
    awk -v mode=json -f "$BENCH_DIR/lib/report.awk" "$machine" "$RESULTS_TSV" >"$OUT_DIR/results.json"
    cat "$OUT_DIR/results.md"
    log "wrote $OUT_DIR/results.md and $OUT_DIR/results.json (raw wrk output in $OUT_DIR/raw/)"
}

# --- check mode ---------------------------------------------------------------------

# Runs lib/report.awk over made-up rows of every target at both loads: the JSON must parse
# (when python3 is there) and the table must hold the ratio columns and the light table.
check_report() {
    local dir status=0 scenario target load connections requests
    dir=$(mktemp -d)
    printf 'date\tcheck\nnproc\t2\nclk_tck\t100\nconnections\t32\nlight_connections\t4\nlitellm\t1.0.0\n' >"$dir/machine.tsv"
    for scenario in json sse; do
        for load in main light; do
            connections=$([[ $load == main ]] && echo 32 || echo 4)
            for target in direct nginx portcullis litellm; do
                requests=$([[ $target == litellm ]] && echo 1300 || echo 300000)
                printf '%s\t%s\t%s\t10000000\t900\t1500\t2100\t9000\t0\t0\t%s\t%s\tok\t1000\t10\t%s\t%s\n' \
                    "$scenario" "$target" "$requests" "$([[ $target == direct ]] && echo 0 || echo 900)" \
                    "$([[ $target == direct ]] && echo - || echo 10240)" "$load" "$connections"
            done
        done
    done >"$dir/results.tsv"
    awk -v mode=markdown -f "$BENCH_DIR/lib/report.awk" "$dir/machine.tsv" "$dir/results.tsv" >"$dir/results.md" &&
        awk -v mode=json -f "$BENCH_DIR/lib/report.awk" "$dir/machine.tsv" "$dir/results.tsv" >"$dir/results.json" || status=1
    if ((status == 0)); then
        if ! grep -q 'CPU µs/req P/L' "$dir/results.md" || ! grep -q '^### Lighter load: c=4' "$dir/results.md" ||
            ! grep -q '"vs_litellm"' "$dir/results.json" || ! grep -q '"light_load"' "$dir/results.json"; then
            log "lib/report.awk: the made-up run lacks the LiteLLM ratio or the light-load rows"
            status=1
        fi
        if command -v python3 >/dev/null; then
            python3 -m json.tool "$dir/results.json" >/dev/null || status=1
        fi
    fi
    rm -rf "$dir"
    return "$status"
}

check() {
    local problems=0 file tool
    for file in "${BASH_SOURCE[0]}" "${SHELL_LIBS[@]}"; do
        bash -n "$file" || problems=$((problems + 1))
    done
    for file in "$LUA_SCRIPT" "${HELPER_SCRIPTS[@]}" "$BENCH_DIR/README.md"; do
        [[ -s $file ]] || {
            log "missing $file"
            problems=$((problems + 1))
        }
    done
    grep -q '^function done(' "$LUA_SCRIPT" || {
        log "$LUA_SCRIPT has no done() hook"
        problems=$((problems + 1))
    }
    # The report code must parse and cope with an empty result set and a made-up full one.
    awk -v mode=json -f "$BENCH_DIR/lib/report.awk" /dev/null /dev/null >/dev/null || problems=$((problems + 1))
    check_report || problems=$((problems + 1))
    # The generated request must be the size the docs claim and valid JSON.
    local body
    body=$(mktemp)
    write_chat_request "$body" false
    local size
    size=$(wc -c <"$body")
    ((size >= 1800 && size <= 2400)) || {
        log "request body is $size bytes, expected about 2 KB"
        problems=$((problems + 1))
    }
    if command -v python3 >/dev/null; then
        python3 -m json.tool "$body" >/dev/null || problems=$((problems + 1))
    fi
    rm -f "$body"
    if command -v shellcheck >/dev/null; then
        shellcheck -x "${BASH_SOURCE[0]}" "${SHELL_LIBS[@]}" || problems=$((problems + 1))
    else
        log "shellcheck not installed; skipped"
    fi
    for tool in wrk taskset curl; do
        command -v "$tool" >/dev/null || log "note: $tool not installed (bench/run.sh installs it)"
    done
    find_nginx >/dev/null || log "note: nginx not installed (bench/run.sh installs it)"
    ((problems == 0)) || die "--check found $problems problem(s)"
    log "--check ok"
}

# --- main ---------------------------------------------------------------------------

main() {
    case ${1:-} in
    --check)
        check
        return
        ;;
    -h | --help)
        usage
        return
        ;;
    "") ;;
    *) die "unknown argument '$1' (try --help)" ;;
    esac

    validate_knobs
    install_prerequisites
    ! target_selected litellm || install_litellm
    NGINX_BIN=$(find_nginx)
    CLK_TCK=$(getconf CLK_TCK)
    build_binaries

    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXXXX")
    # nginx workers run as `nobody` when started by root; let them reach their paths.
    chmod 755 "$RUN_DIR"
    mkdir -p "$OUT_DIR/raw"
    RESULTS_TSV=$RUN_DIR/results.tsv
    : >"$RESULTS_TSV"

    log "topology: proxy on cpu $PROXY_CPU; wrk and mock upstream on cpu $LOAD_CPU"
    start_mock
    local scenario
    for scenario in $SCENARIOS; do
        run_scenario "$scenario"
    done
    write_report
    if grep -q $'\tfailed\t' "$RESULTS_TSV"; then
        die "at least one run exceeded the 0.1 % error budget (marked FAILED in the table)"
    fi
}

main "$@"

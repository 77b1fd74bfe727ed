# Turns bench/run.sh's raw rows into the results table (mode=markdown) or JSON
# (mode=json). POSIX awk: Debian's default awk is mawk.
#
# Input 1: machine facts, `key<TAB>value` per line.
# Input 2: one row per run, tab-separated:
#   scenario target requests duration_us p50_us p90_us p99_us max_us
#   errors status_errors proxy_cpu_ticks peak_rss_kb verdict bytes other_cpu_ticks
#   load connections
# proxy_cpu_ticks is 0 and peak_rss_kb is `-` for the direct target (no proxy).
# load is `main` (the saturating run at machine["connections"]) or `light` (the same
# target at machine["light_connections"], for p99 below saturation); rows without the
# last two columns are `main`.
# other_cpu_ticks is the machine's CPU time used by neither the proxy, the mock nor wrk
# during the measured run (other processes, hypervisor steal).

BEGIN {
    FS = "\t"
    # A row where other work took more than this share of the machine is flagged noisy.
    NOISY_PERCENT = 5
}

FILENAME == ARGV[1] { machine[$1] = $2; keys[++nkeys] = $1; next }

NF >= 15 {
    n++
    scenario[n] = $1; target[n] = $2; requests[n] = $3 + 0
    light[n] = (NF >= 17 && $16 == "light")
    conns[n] = NF >= 17 ? $17 : machine["connections"]
    seconds = $4 / 1e6
    rps[n] = seconds > 0 ? $3 / seconds : 0
    p50[n] = $5 / 1000; p90[n] = $6 / 1000; p99[n] = $7 / 1000; maxms[n] = $8 / 1000
    errors[n] = $9 + 0; status_errors[n] = $10 + 0
    has_proxy[n] = ($2 != "direct")
    tck = machine["clk_tck"] + 0
    cpu[n] = (has_proxy[n] && $3 > 0 && tck > 0) ? $11 * 1e6 / tck / $3 : 0
    rss[n] = has_proxy[n] ? $12 / 1024 : 0
    verdict[n] = $13
    cores = machine["nproc"] + 0
    other[n] = (seconds > 0 && tck > 0 && cores > 0) ? 100 * $15 / (seconds * tck * cores) : 0
    if (other[n] > NOISY_PERCENT) noisy++
    if ($2 == "litellm") has_litellm = 1
    if (light[n]) light_of[$1, $2] = n
    else row_of[$1, $2] = n
}

function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "—" }

# Two significant digits, for Portcullis ÷ LiteLLM CPU, which is far below 0.01.
function small_ratio(a, b) { return b > 0 ? sprintf("%.2g", a / b) : "—" }

# The main-load row of TARGET in row I's scenario, or 0.
function peer(i, other_target) {
    return ((scenario[i], other_target) in row_of) ? row_of[scenario[i], other_target] : 0
}

function jstr(s) {
    gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, " ", s)
    return "\"" s "\""
}

function jnum(x, fmt) { return sprintf(fmt, x) }

function markdown(    i, j, k, cpu_cell, rss_cell, rr, rp, rc, rl, label, multiples, share) {
    print "## Gateway overhead run"
    print ""
    printf "- date: %s; commit: %s\n", machine["date"], machine["commit"]
    printf "- machine: %s cores, %s, kernel %s\n", machine["nproc"], machine["cpu"], machine["kernel"]
    printf "- versions: nginx %s, %s, %s (guard %s)%s\n", machine["nginx"], machine["wrk"], machine["portcullis"], \
        ("portcullis_guard" in machine) ? machine["portcullis_guard"] : "as configured", \
        ("litellm" in machine) ? ", litellm " machine["litellm"] : ""
    printf "- load: wrk -t %s -c %s, %s s measured after %s s warm-up; %s-byte chat request (%s); SSE with %s chunks\n", \
        machine["wrk_threads"], machine["connections"], machine["duration_s"], machine["warmup_s"], \
        machine["request_bytes"], ("body" in machine) ? machine["body"] : "same", machine["stream_chunks"]
    printf "- topology: proxy pinned to cpu %s; wrk and the mock upstream pinned to cpu %s\n", \
        machine["proxy_cpu"], machine["load_cpu"]
    print ""
    print "| scenario | target | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MB | req/s P/N | p99 P/N | CPU µs/req P/N | CPU µs/req P/L | errors | other CPU % |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
        if (light[i]) continue
        cpu_cell = has_proxy[i] ? sprintf("%.1f", cpu[i]) : "—"
        rss_cell = has_proxy[i] ? sprintf("%.1f", rss[i]) : "—"
        rr = rp = rc = rl = "—"
        if (target[i] == "portcullis" && (j = peer(i, "nginx"))) {
            rr = ratio(rps[i], rps[j]); rp = ratio(p99[i], p99[j]); rc = ratio(cpu[i], cpu[j])
        }
        if (target[i] == "portcullis" && (k = peer(i, "litellm"))) {
            rl = small_ratio(cpu[i], cpu[k])
            if (cpu[i] > 0)
                multiples = multiples (multiples == "" ? "" : "; ") sprintf("%s %.0f×", scenario[i], cpu[k] / cpu[i])
        }
        label = verdict[i] == "ok" ? target[i] : target[i] " **FAILED**"
        printf "| %s | %s | %.0f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %d | %.1f |\n", \
            scenario[i], label, rps[i], p50[i], p99[i], cpu_cell, rss_cell, rr, rp, rc, rl, errors[i], other[i]
    }
    print ""
    print "P/N = Portcullis ÷ nginx in the same scenario and run: below 1 is better for p99 and CPU, above 1 for req/s."
    if (has_litellm)
        print "P/L = Portcullis ÷ LiteLLM, CPU µs per request, same scenario and run."
    if (multiples != "")
        printf "LiteLLM ÷ Portcullis, CPU µs per request: %s.\n", multiples
    print "other CPU % = share of the whole machine used by anything but the proxy, wrk and the mock during the run."
    light_markdown()
    if (noisy)
        printf "\n**Warning: in %d run(s) other work used more than %d %% of the machine; rerun on a quiet machine.**\n", \
            noisy, NOISY_PERCENT
}

# The light-load rows: the same targets at few connections, right after the main run.
function light_markdown(    i, j, share, rp, label, any) {
    for (i = 1; i <= n; i++) if (light[i]) any = 1
    if (!any) return
    print ""
    printf "### Lighter load: c=%s\n", machine["light_connections"]
    print ""
    printf "The same requests at %s connections instead of %s, on the same warm proxy right after its main run.\n", \
        machine["light_connections"], machine["connections"]
    print "wrk cannot hold a fixed request rate, so this is a closed-loop approximation of p99 below saturation, not"
    printf "p99 at a set rate: \"load\" is each target's req/s here as a share of its own req/s at c=%s.\n", machine["connections"]
    print ""
    print "| scenario | target | req/s | load | p50 ms | p99 ms | p99 P/N | errors | other CPU % |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
        if (!light[i]) continue
        j = peer(i, target[i])
        share = (j && rps[j] > 0) ? sprintf("%.0f %%", 100 * rps[i] / rps[j]) : "—"
        rp = "—"
        if (target[i] == "portcullis" && ((scenario[i], "nginx") in light_of))
            rp = ratio(p99[i], p99[light_of[scenario[i], "nginx"]])
        label = verdict[i] == "ok" ? target[i] : target[i] " **FAILED**"
        printf "| %s | %s | %.0f | %s | %.2f | %.2f | %s | %d | %.1f |\n", \
            scenario[i], label, rps[i], share, p50[i], p99[i], rp, errors[i], other[i]
    }
}

function json_ratio(a, b, fmt) { return b > 0 ? jnum(a / b, fmt) : "null" }

function json(    i, j, k, sep, first) {
    print "{"
    print "  \"machine\": {"
    for (i = 1; i <= nkeys; i++)
        printf "    %s: %s%s\n", jstr(keys[i]), jstr(machine[keys[i]]), i < nkeys ? "," : ""
    print "  },"
    print "  \"results\": ["
    first = 1
    for (i = 1; i <= n; i++) {
        if (light[i]) continue
        printf "%s", first ? "" : ",\n"
        first = 0
        printf "    {\"scenario\": %s, \"target\": %s, \"verdict\": %s, \"connections\": %d, \"requests\": %d, ", \
            jstr(scenario[i]), jstr(target[i]), jstr(verdict[i]), conns[i], requests[i]
        printf "\"errors\": %d, \"status_errors\": %d, \"other_cpu_percent\": %s, \"requests_per_second\": %s, ", \
            errors[i], status_errors[i], jnum(other[i], "%.2f"), jnum(rps[i], "%.1f")
        printf "\"p50_ms\": %s, \"p90_ms\": %s, \"p99_ms\": %s, \"max_ms\": %s, ", \
            jnum(p50[i], "%.3f"), jnum(p90[i], "%.3f"), jnum(p99[i], "%.3f"), jnum(maxms[i], "%.3f")
        if (has_proxy[i])
            printf "\"proxy_cpu_us_per_request\": %s, \"proxy_peak_rss_mb\": %s", jnum(cpu[i], "%.2f"), jnum(rss[i], "%.2f")
        else
            printf "\"proxy_cpu_us_per_request\": null, \"proxy_peak_rss_mb\": null"
        # Ratios are Portcullis ÷ the other proxy; litellm_cpu_multiple is LiteLLM ÷ Portcullis.
        if (target[i] == "portcullis" && (j = peer(i, "nginx")))
            printf ", \"vs_nginx\": {\"requests_per_second\": %s, \"p99\": %s, \"cpu_us_per_request\": %s}", \
                json_ratio(rps[i], rps[j], "%.3f"), json_ratio(p99[i], p99[j], "%.3f"), json_ratio(cpu[i], cpu[j], "%.3f")
        if (target[i] == "portcullis" && (k = peer(i, "litellm")))
            printf ", \"vs_litellm\": {\"requests_per_second\": %s, \"p99\": %s, \"cpu_us_per_request\": %s, \"litellm_cpu_multiple\": %s}", \
                json_ratio(rps[i], rps[k], "%.3f"), json_ratio(p99[i], p99[k], "%.5f"), \
                json_ratio(cpu[i], cpu[k], "%.6f"), json_ratio(cpu[k], cpu[i], "%.1f")
        printf "}"
    }
    print ""
    print "  ],"
    # Closed-loop runs at machine["light_connections"]: an approximation of p99 below
    # saturation (wrk cannot hold a fixed rate). share_of_main_rps: req/s ÷ the same
    # target's req/s in its main run.
    print "  \"light_load\": ["
    first = 1
    for (i = 1; i <= n; i++) {
        if (!light[i]) continue
        printf "%s", first ? "" : ",\n"
        first = 0
        j = peer(i, target[i])
        printf "    {\"scenario\": %s, \"target\": %s, \"verdict\": %s, \"connections\": %d, \"requests\": %d, ", \
            jstr(scenario[i]), jstr(target[i]), jstr(verdict[i]), conns[i], requests[i]
        printf "\"errors\": %d, \"other_cpu_percent\": %s, \"requests_per_second\": %s, \"share_of_main_rps\": %s, ", \
            errors[i], jnum(other[i], "%.2f"), jnum(rps[i], "%.1f"), (j ? json_ratio(rps[i], rps[j], "%.3f") : "null")
        printf "\"p50_ms\": %s, \"p90_ms\": %s, \"p99_ms\": %s, \"max_ms\": %s}", \
            jnum(p50[i], "%.3f"), jnum(p90[i], "%.3f"), jnum(p99[i], "%.3f"), jnum(maxms[i], "%.3f")
    }
    print ""
    print "  ]"
    print "}"
}

END {
    if (mode == "markdown") markdown()
    else if (mode == "json") json()
    else { print "report.awk: set mode=markdown or mode=json" > "/dev/stderr"; exit 2 }
}

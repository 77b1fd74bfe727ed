# Turns bench/run.sh's raw rows into the results table (mode=markdown) or JSON
# (mode=json). POSIX awk: Debian's default awk is mawk.
#
# Input 1: machine facts, `key<TAB>value` per line.
# Input 2: one row per run, tab-separated:
#   scenario target requests duration_us p50_us p90_us p99_us max_us
#   errors status_errors proxy_cpu_ticks peak_rss_kb verdict bytes other_cpu_ticks
# proxy_cpu_ticks is 0 and peak_rss_kb is `-` for the direct target (no proxy).
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
    row_of[$1, $2] = n
}

function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "—" }

function jstr(s) {
    gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, " ", s)
    return "\"" s "\""
}

function jnum(x, fmt) { return sprintf(fmt, x) }

function markdown(    i, j, cpu_cell, rss_cell, rr, rp, rc, label) {
    print "## Gateway overhead run"
    print ""
    printf "- date: %s; commit: %s\n", machine["date"], machine["commit"]
    printf "- machine: %s cores, %s, kernel %s\n", machine["nproc"], machine["cpu"], machine["kernel"]
    printf "- versions: nginx %s, %s, portcullis %s\n", machine["nginx"], machine["wrk"], machine["portcullis"]
    printf "- load: wrk -t %s -c %s, %s s measured after %s s warm-up; %s-byte chat request; SSE with %s chunks\n", \
        machine["wrk_threads"], machine["connections"], machine["duration_s"], machine["warmup_s"], \
        machine["request_bytes"], machine["stream_chunks"]
    printf "- topology: proxy pinned to cpu %s; wrk and the mock upstream pinned to cpu %s\n", \
        machine["proxy_cpu"], machine["load_cpu"]
    print ""
    print "| scenario | target | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MB | req/s P/N | p99 P/N | CPU µs/req P/N | errors | other CPU % |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
        cpu_cell = has_proxy[i] ? sprintf("%.1f", cpu[i]) : "—"
        rss_cell = has_proxy[i] ? sprintf("%.1f", rss[i]) : "—"
        rr = rp = rc = "—"
        if (target[i] == "portcullis" && ((scenario[i], "nginx") in row_of)) {
            j = row_of[scenario[i], "nginx"]
            rr = ratio(rps[i], rps[j]); rp = ratio(p99[i], p99[j]); rc = ratio(cpu[i], cpu[j])
        }
        label = verdict[i] == "ok" ? target[i] : target[i] " **FAILED**"
        printf "| %s | %s | %.0f | %.2f | %.2f | %s | %s | %s | %s | %s | %d | %.1f |\n", \
            scenario[i], label, rps[i], p50[i], p99[i], cpu_cell, rss_cell, rr, rp, rc, errors[i], other[i]
    }
    print ""
    print "P/N = Portcullis ÷ nginx in the same scenario and run: below 1 is better for p99 and CPU, above 1 for req/s."
    print "other CPU % = share of the whole machine used by anything but the proxy, wrk and the mock during the run."
    if (noisy)
        printf "\n**Warning: in %d run(s) other work used more than %d %% of the machine; rerun on a quiet machine.**\n", \
            noisy, NOISY_PERCENT
}

function json(    i, j, sep) {
    print "{"
    print "  \"machine\": {"
    for (i = 1; i <= nkeys; i++)
        printf "    %s: %s%s\n", jstr(keys[i]), jstr(machine[keys[i]]), i < nkeys ? "," : ""
    print "  },"
    print "  \"results\": ["
    for (i = 1; i <= n; i++) {
        printf "    {\"scenario\": %s, \"target\": %s, \"verdict\": %s, \"requests\": %d, ", \
            jstr(scenario[i]), jstr(target[i]), jstr(verdict[i]), requests[i]
        printf "\"errors\": %d, \"status_errors\": %d, \"other_cpu_percent\": %s, \"requests_per_second\": %s, ", \
            errors[i], status_errors[i], jnum(other[i], "%.2f"), jnum(rps[i], "%.1f")
        printf "\"p50_ms\": %s, \"p90_ms\": %s, \"p99_ms\": %s, \"max_ms\": %s, ", \
            jnum(p50[i], "%.3f"), jnum(p90[i], "%.3f"), jnum(p99[i], "%.3f"), jnum(maxms[i], "%.3f")
        if (has_proxy[i])
            printf "\"proxy_cpu_us_per_request\": %s, \"proxy_peak_rss_mb\": %s", jnum(cpu[i], "%.2f"), jnum(rss[i], "%.2f")
        else
            printf "\"proxy_cpu_us_per_request\": null, \"proxy_peak_rss_mb\": null"
        if (target[i] == "portcullis" && ((scenario[i], "nginx") in row_of)) {
            j = row_of[scenario[i], "nginx"]
            printf ", \"vs_nginx\": {\"requests_per_second\": %s, \"p99\": %s, \"cpu_us_per_request\": %s}", \
                (rps[j] > 0 ? jnum(rps[i] / rps[j], "%.3f") : "null"), \
                (p99[j] > 0 ? jnum(p99[i] / p99[j], "%.3f") : "null"), \
                (cpu[j] > 0 ? jnum(cpu[i] / cpu[j], "%.3f") : "null")
        }
        printf "}%s\n", i < n ? "," : ""
    }
    print "  ]"
    print "}"
}

END {
    if (mode == "markdown") markdown()
    else if (mode == "json") json()
    else { print "report.awk: set mode=markdown or mode=json" > "/dev/stderr"; exit 2 }
}

-- wrk script for the MCP round-trip benchmark (bench/mcp.sh).
--
-- Usage: wrk ... -s bench/mcp.lua URL -- BODY_FILE SESSION_ID
--
-- Every request is the same `tools/call` POST in one MCP session (the Mcp-Session-Id the
-- script got from `initialize`). done() prints the same BENCH_RESULT line as post.lua.

function init(args)
   local path, session = args[1], args[2]
   if path == nil or session == nil then
      error("mcp.lua: pass the body file and the session id after `--`")
   end
   local file = assert(io.open(path, "rb"))
   wrk.body = file:read("*a")
   file:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Accept"] = "application/json, text/event-stream"
   wrk.headers["Mcp-Session-Id"] = session
   wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
end

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d"
         .. " connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0), latency.max,
      errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end

-- wrk script for the Portcullis load benchmark (bench/run.sh).
--
-- Usage: wrk ... -s bench/post.lua URL -- BODY_FILE [same|unique-turn] [MCP_SESSION_ID]
--
-- `same` (the default): every request is the same POST with the JSON body read
-- from BODY_FILE, so the request is built once per wrk thread and costs the load
-- generator nothing per request.
-- `unique-turn`: the last message's text ends with " (ref N)", N counting up per
-- request, as in a conversation where each request adds a new turn: the earlier
-- messages repeat, the last one is new. Built per request (on the load core, the
-- same cost for every target).
-- MCP_SESSION_ID (bench/mcp.sh): every request carries that Mcp-Session-Id and the
-- MCP-Protocol-Version 2025-11-25 header.
--
-- done() prints one machine-readable line that run.sh parses instead of
-- scraping wrk's human report:
--   BENCH_RESULT requests=N duration_us=N bytes=N p50_us=N p90_us=N p99_us=N
--                max_us=N connect=N read=N write=N status=N timeout=N
-- `status` counts responses with an HTTP status above 399 (wrk's definition);
-- run.sh checks a single request per target for 200 before loading it.

function init(args)
   local path = args[1]
   if path == nil then
      error("post.lua: pass the request body file after `--`")
   end
   local file = assert(io.open(path, "rb"))
   wrk.body = file:read("*a")
   file:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Accept"] = "application/json, text/event-stream"
   -- The API key BENCH_PORTCULLIS_ACCESS=on configures; every other target ignores it.
   wrk.headers["Authorization"] = "Bearer portcullis-bench-key"
   if args[3] ~= nil then
      wrk.headers["Mcp-Session-Id"] = args[3]
      wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
   end
   local mode = args[2] or "same"
   if mode == "unique-turn" then
      -- The body ends with the last message's closing `"}]}`: the number goes before it.
      local cut = wrk.body:find('"}]}', 1, true)
      if cut == nil then
         error('post.lua: unique-turn needs a body that ends with a message ("}]})')
      end
      local head, tail = wrk.body:sub(1, cut - 1), wrk.body:sub(cut)
      local n = 0
      request = function()
         n = n + 1
         return wrk.format(nil, nil, nil, head .. " (ref " .. n .. ")" .. tail)
      end
   elseif mode ~= "same" then
      error("post.lua: the body mode is same or unique-turn, got " .. mode)
   end
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

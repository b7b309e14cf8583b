-- wrk script used by benches/bench.py: replays pre-generated raw HTTP requests.
--
--   wrk -t2 -c16 -d10s -s replay.lua http://127.0.0.1:PORT -- PREFIX once|cycle
--
-- Thread k (1-based) reads PREFIX.k: complete HTTP/1.1 requests, each followed
-- by a NUL byte. "once" sends each request at most once; when a thread runs out
-- it stops and reports `exhausted` (bench.py then repeats the run with a bigger
-- pool). "cycle" starts over (for servers that do not care about repeats).
-- done() prints one line, BENCH_JSON {...}, that bench.py parses.

local threads = {}
local nthreads = 0

function setup(thread)
   nthreads = nthreads + 1
   thread:set("tid", nthreads)
   thread:set("exhausted", 0)
   table.insert(threads, thread)
end

local data, offs, n, i, cycle = nil, {}, 0, 0, false

function init(args)
   local prefix = args[1]
   cycle = args[2] == "cycle"
   local f = assert(io.open(prefix .. "." .. tid, "rb"))
   data = f:read("*a")
   f:close()
   local pos = 1
   while true do
      local s = string.find(data, "\0", pos, true)
      if not s then break end
      n = n + 1
      offs[n] = pos
      pos = s + 1
   end
   offs[n + 1] = pos
   assert(n > 0, "empty request pool " .. prefix .. "." .. tid)
end

function request()
   i = i + 1
   if i > n then
      if cycle then
         i = 1
      else
         exhausted = 1
         wrk.thread:stop()
         i = n
      end
   end
   return string.sub(data, offs[i], offs[i + 1] - 2)
end

function done(summary, latency, requests)
   local ex = 0
   for _, t in ipairs(threads) do
      ex = ex + (tonumber(t:get("exhausted")) or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"exhausted":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean, ex))
end

-- wrk script shared by every scenario of bench/run. Configured through the environment:
--   BENCH_TARGET   request target: "/" for origin servers, "http://api.test/" (absolute
--                  form) for forward proxies
--   BENCH_HOST     Host header (default api.test)
--   BENCH_HEADERS  file of extra header lines, "Name: value" one per line; repeated names
--                  are kept (several Proxy-Tokenizer lines)
--   BENCH_METHOD   GET (default), PUT, POST
--   BENCH_BODY     request body size in bytes (0: no body)
--   BENCH_RATE     requests per second per connection; 0 (default) = as fast as possible.
--                  Paced runs draw exponential gaps (Poisson arrivals), so 50 connections
--                  at 20/s offer ~1,000 req/s without lock-step bursts.
-- At the end one line "BENCHJSON {...}" carries the counts and latency percentiles (µs).

local target = os.getenv("BENCH_TARGET") or "/"
local host = os.getenv("BENCH_HOST") or "api.test"
local headers_file = os.getenv("BENCH_HEADERS")
local method = os.getenv("BENCH_METHOD") or "GET"
local body_size = tonumber(os.getenv("BENCH_BODY") or "0")
local rate = tonumber(os.getenv("BENCH_RATE") or "0")

-- wrk decides whether to pace when it loads the script, so delay() is defined (or not)
-- here at the top level.
if rate > 0 then
   local mean_ms = 1000 / rate
   function delay()
      return -math.log(1 - math.random()) * mean_ms
   end
end

function init(args)
   local lines = { method .. " " .. target .. " HTTP/1.1", "Host: " .. host }
   if headers_file and headers_file ~= "" then
      for line in io.lines(headers_file) do
         if line ~= "" then
            lines[#lines + 1] = line
         end
      end
   end
   local body = ""
   if body_size > 0 then
      body = string.rep("x", body_size)
      lines[#lines + 1] = "Content-Length: " .. body_size
   end
   local request = table.concat(lines, "\r\n") .. "\r\n\r\n" .. body
   -- wrk.init calls wrk.format() once after init() and sends that string on every
   -- request: a static request, no Lua per request. (wrk.headers is a table and cannot
   -- hold repeated header names, hence the hand-built request.)
   wrk.format = function()
      return request
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean))
end

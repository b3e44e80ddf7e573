-- wrk script used by bench/run.sh.
--
-- Request shape comes from the environment so that secrets stay off the command line:
--   WRK_METHOD  HTTP method (default GET)
--   WRK_BODY    request body; when set, Content-Type: application/json is added
--   WRK_BEARER  token sent as `Authorization: Bearer <token>`
--
-- At the end it prints one line `WRK_JSON {...}` with the summary (latencies in ms).
-- No per-response callback is defined: that would make wrk parse every response in Lua
-- and lower the throughput it can generate.

wrk.method = os.getenv("WRK_METHOD") or "GET"

local body = os.getenv("WRK_BODY")
if body ~= nil and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local bearer = os.getenv("WRK_BEARER")
if bearer ~= nil and bearer ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. bearer
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  local function ms(us) return us / 1000.0 end
  io.write(string.format(
    'WRK_JSON {"tool":"wrk","requests":%d,"duration_s":%.3f,"rps":%.1f,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_ms":{"min":%.3f,"mean":%.3f,"stdev":%.3f,"p50":%.3f,"p90":%.3f,"p99":%.3f,"p999":%.3f,"max":%.3f}}\n',
    summary.requests, seconds, summary.requests / seconds, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    ms(latency.min), ms(latency.mean), ms(latency.stdev),
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency:percentile(99.9)), ms(latency.max)))
end

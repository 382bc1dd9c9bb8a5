-- wrk script for bench/run.sh: shapes the request from the environment and
-- prints one machine-readable RESULT line at the end.
--
--   BENCH_POST_BYTES=N  send POST with an N-byte JSON body (default: GET)
--   BENCH_CLOSE=1       send `Connection: close` (a new TCP connection per request)

local post_bytes = tonumber(os.getenv("BENCH_POST_BYTES") or "0") or 0
if post_bytes > 0 then
  local prefix, suffix = '{"data":"', '"}'
  wrk.method = "POST"
  wrk.body = prefix .. string.rep("a", post_bytes - #prefix - #suffix) .. suffix
  wrk.headers["Content-Type"] = "application/json"
end
if os.getenv("BENCH_CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d mean_us=%.1f " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end

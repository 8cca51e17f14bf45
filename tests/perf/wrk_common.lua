-- wrk_common.lua - shared by the wrk scripts of tests/perf/bench.py: prints
-- one machine-readable line "PERFJSON {...}" (latencies in microseconds).
function perf_done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'PERFJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50":%d,"p99":%d,"max":%d,"mean":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end

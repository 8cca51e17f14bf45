-- wrk_common.lua - shared by the wrk scripts of tests/perf/bench.py: prints
-- one machine-readable line "PERFJSON {...}" (latencies in microseconds).
--
-- Fixed-rate mode (PERF_RATE = total requests/s > 0, PERF_THREADS = wrk -t):
-- wrk itself is closed-loop (each connection sends its next request when
-- the previous answer arrives). Here every wrk thread paces its requests on
-- a schedule of its own (PERF_RATE / PERF_THREADS req/s): delay() returns
-- the time left until the next scheduled send (CLOCK_MONOTONIC via the
-- LuaJIT FFI; wrk's delay has 1 ms resolution), so the offered load is
-- fixed and independent of the response time as long as a connection is
-- free (run with more connections than rate x latency needs). Requests
-- that left more than 1 ms behind schedule (no free connection) are
-- counted as "late": the latency wrk reports for them starts at the send,
-- so a non-zero late count means the p99 is optimistic (coordinated
-- omission) and the rate is above what the stack sustains.
local perf_threads = {}
local perf_rate = tonumber(os.getenv("PERF_RATE") or "0") or 0

function setup(thread)
  perf_threads[#perf_threads + 1] = thread
end

if perf_rate > 0 then
  local ffi = require("ffi")
  pcall(ffi.cdef, [[
    typedef struct { long tv_sec; long tv_nsec; } perf_timespec;
    int clock_gettime(int clk, perf_timespec *ts);
  ]])
  local ts = ffi.new("perf_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000.0 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval = 1000.0 * (tonumber(os.getenv("PERF_THREADS") or "2") or 2) / perf_rate
  local nxt = nil
  late = 0
  function delay()
    local t = now_ms()
    if nxt == nil then nxt = t end
    nxt = nxt + interval
    local d = nxt - interval - t -- this request's slot minus now
    if d < -1 then late = late + 1 end
    if d <= 0 then return 0 end
    return math.floor(d)
  end
end

function perf_done(summary, latency, requests)
  local e = summary.errors
  local late_n = 0
  for _, t in ipairs(perf_threads) do
    late_n = late_n + (tonumber(t:get("late")) or 0)
  end
  io.write(string.format(
    'PERFJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50":%d,"p99":%d,"max":%d,"mean":%.1f,"late":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean, late_n))
end

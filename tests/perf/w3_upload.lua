-- W3: POST /v1/files with a 64 KiB body (Bearer PERF_TOKEN).
dofile(os.getenv("PERF_DIR") .. "/wrk_common.lua")
wrk.method = "POST"
wrk.body = string.rep("perf-bench-64k!\n", 4096)
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PERF_TOKEN")
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["X-File-Name"] = "perf.bin"
done = perf_done

-- W1: GET /v1/credits with a Bearer JWT (PERF_TOKEN).
dofile(os.getenv("PERF_DIR") .. "/wrk_common.lua")
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PERF_TOKEN")
done = perf_done

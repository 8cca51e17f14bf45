-- Ceiling (a): GET /hello on perf-hello.
dofile(os.getenv("PERF_DIR") .. "/wrk_common.lua")
done = perf_done

-- W2: GET /v1/service/metadata/{id} with X-API-Key, rotating over the
-- "key file_id" lines of PERF_KEYS (one user per line).
dofile(os.getenv("PERF_DIR") .. "/wrk_common.lua")
local pairs_ = {}
for line in io.lines(os.getenv("PERF_KEYS")) do
  local k, id = line:match("^(%S+)%s+(%S+)$")
  if k then pairs_[#pairs_ + 1] = {k, id} end
end
local i = math.random(#pairs_)
request = function()
  i = i % #pairs_ + 1
  local p = pairs_[i]
  return wrk.format("GET", "/v1/service/metadata/" .. p[2], {["X-API-Key"] = p[1]})
end
done = perf_done

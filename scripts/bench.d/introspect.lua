-- POST /oauth/introspect with HTTP Basic client authentication (RFC 7662),
-- the clients of BENCH_BASICS in turn (a platform has many services; the
-- one-client phase passes a single one).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "token=" .. os.getenv("BENCH_TOKEN")
local basics = {}
for basic in string.gmatch(os.getenv("BENCH_BASICS"), "%S+") do
  table.insert(basics, basic)
end
local next_client = 0
request = function()
  next_client = next_client % #basics + 1
  wrk.headers["Authorization"] = "Basic " .. basics[next_client]
  return wrk.format()
end

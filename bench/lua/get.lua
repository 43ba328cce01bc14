-- GET the URL with the token from $BENCH_TOKEN in X-Vault-Token.
--   BENCH_TOKEN=hvs.... wrk -t2 -c32 -d10s --latency -s get.lua http://127.0.0.1:PORT/v1/secret/bench
wrk.method = "GET"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["X-Vault-Token"] = token
end

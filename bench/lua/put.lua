-- PUT a small JSON secret to the URL with the token from $BENCH_TOKEN in X-Vault-Token.
--   BENCH_TOKEN=hvs.... wrk -t2 -c32 -d10s --latency -s put.lua http://127.0.0.1:PORT/v1/secret/bench-write
wrk.method = "PUT"
wrk.body = '{"username":"bench-user","password":"correct-horse-battery-staple","note":"written by wrk"}'
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["X-Vault-Token"] = token
end

-- Issue leases: GET the URL (e.g. /v1/bench/creds/long?ttl=8760h) with $BENCH_TOKEN,
-- and stop each wrk thread after $BENCH_LIMIT_PER_THREAD answers (0: no limit, run for -d).
-- Counts non-200 answers in the summary as wrk always does ("Non-2xx or 3xx responses").
wrk.method = "GET"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["X-Vault-Token"] = token
end
local limit = tonumber(os.getenv("BENCH_LIMIT_PER_THREAD") or "0") or 0
local answered = 0

function response(status, headers, body)
  answered = answered + 1
  if limit > 0 and answered >= limit then
    wrk.thread:stop()
  end
end

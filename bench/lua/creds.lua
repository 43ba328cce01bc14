-- Issue leases: GET the URL (e.g. /v1/bench/creds/long?ttl=720h) with $BENCH_TOKEN.
-- With $BENCH_LIMIT_PER_THREAD > 0, each wrk thread stops after that many answers and
-- creates the file $BENCH_DONE_DIR/done-<thread> (wrk itself runs until -d or SIGINT,
-- so the benchmark sends SIGINT once every thread has made its file).
wrk.method = "GET"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["X-Vault-Token"] = token
end
local limit = tonumber(os.getenv("BENCH_LIMIT_PER_THREAD") or "0") or 0
local done_dir = os.getenv("BENCH_DONE_DIR") or ""
local answered = 0
local next_id = 0

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end

function response(status, headers, body)
  answered = answered + 1
  if limit > 0 and answered == limit then
    if done_dir ~= "" then
      local f = io.open(done_dir .. "/done-" .. tostring(thread_id), "w")
      if f then f:write(tostring(answered)); f:close() end
    end
    wrk.thread:stop()
  end
end

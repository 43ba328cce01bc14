-- Any one request, described by the environment (bench/peers.py sets it):
--   BENCH_METHOD  the HTTP method (default GET)
--   BENCH_BODY    a JSON body, sent with Content-Type: application/json (default: none)
--   BENCH_TOKEN   sent as X-Vault-Token
--   BENCH_LIMIT_PER_THREAD, BENCH_DONE_DIR: as in creds.lua, each thread stops after that many
--   answers and leaves the file done-<thread> behind; without a limit no response() hook is set,
--   so wrk does not call into Lua for every answer.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY") or ""
if body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
local token = os.getenv("BENCH_TOKEN") or ""
if token ~= "" then
  wrk.headers["X-Vault-Token"] = token
end

local limit = tonumber(os.getenv("BENCH_LIMIT_PER_THREAD") or "0") or 0
local done_dir = os.getenv("BENCH_DONE_DIR") or ""
local threads_made = 0

function setup(thread)
  thread:set("thread_id", threads_made)
  threads_made = threads_made + 1
end

if limit > 0 then
  local answers = 0
  function response(status, headers, body)
    answers = answers + 1
    if answers == limit then
      if done_dir ~= "" then
        local f = io.open(done_dir .. "/done-" .. tostring(thread_id), "w")
        if f then
          f:write(tostring(answers))
          f:close()
        end
      end
      wrk.thread:stop()
    end
  end
end

-- wrk_post.lua — POSTs for the whole wrk duration. $BENCH_MODE:
--   messages    POST /api/conversations/<id>/messages {"content": ...} over the
--               conversation ids of the file $BENCH_IDS (one a line), each wrk
--               thread cycling through its own share                    (P1)
--   new         POST /api/message {"content": ...}: a new conversation each time (P2)
--   legacy      POST /message {"content": ..., "interactionId": <id>}: the
--               TypeScript server's route (and Bicky's legacy one), over $BENCH_IDS
--               as in messages                                          (TS1)
--   legacy-new  POST /message {"content": ...}: a new conversation each time (TS2)
-- (One request per id, ending with the list, is bench/http_once.c: wrk always
-- runs for its whole -d duration.)
-- $BENCH_TOKEN is the bearer token (no Authorization header when empty),
-- $BENCH_THREADS wrk's -t, $BENCH_EXPECT a string every good answer's body
-- holds (optional; see wrk_report.lua). Reports through wrk_report.lua.
dofile(os.getenv("BENCH_DIR") .. "/wrk_report.lua")

-- setup() runs in the main state before each thread's init(), so the thread
-- count comes from $BENCH_THREADS (the -t value) and each thread gets its index.
local threads = {}

function setup(thread)
    thread:set("tid", #threads)
    table.insert(threads, thread)
end

local ids = {}
local pos = 0
local mode = os.getenv("BENCH_MODE") or "messages"
local content = '"content":"hello from the bicky benchmark"'
local body = "{" .. content .. "}"
local headers = {
    ["Content-Type"] = "application/json",
}
if (os.getenv("BENCH_TOKEN") or "") ~= "" then
    headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
end

function init(args)
    local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
    local path = os.getenv("BENCH_IDS")
    if path and mode ~= "new" and mode ~= "legacy-new" then
        local i = 0
        for line in io.lines(path) do
            if i % nthreads == tid then
                ids[#ids + 1] = line
            end
            i = i + 1
        end
    end
end

local function next_id()
    pos = pos + 1
    if pos > #ids then
        pos = 1
    end
    return ids[pos]
end

function request()
    if mode == "new" then
        return wrk.format("POST", "/api/message", headers, body)
    elseif mode == "legacy-new" then
        return wrk.format("POST", "/message", headers, body)
    elseif mode == "legacy" then
        return wrk.format("POST", "/message", headers,
            "{" .. content .. ',"interactionId":"' .. next_id() .. '"}')
    end
    return wrk.format("POST", "/api/conversations/" .. next_id() .. "/messages", headers, body)
end

function response(status, hdrs, resp)
    wrk_count(status, resp)
end

function done(summary, latency, requests)
    wrk_status_report(threads)
    wrk_report(summary, latency)
end

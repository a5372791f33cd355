-- wrk_post.lua — POSTs for the whole wrk duration. $BENCH_MODE:
--   messages  POST /api/conversations/<id>/messages {"content": ...} over the
--             conversation ids of the file $BENCH_IDS (one a line), each wrk
--             thread cycling through its own share                      (P1)
--   new       POST /api/message {"content": ...}: a new conversation each time (P2)
-- (One request per id, ending with the list, is bench/http_once.c: wrk always
-- runs for its whole -d duration.)
-- $BENCH_TOKEN is the bearer token, $BENCH_THREADS wrk's -t. Reports through wrk_report.lua.
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
local body = '{"content":"hello from the bicky benchmark"}'
local headers = {
    ["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or ""),
    ["Content-Type"] = "application/json",
}
statuses = {}

function init(args)
    local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
    local path = os.getenv("BENCH_IDS")
    if path and mode ~= "new" then
        local i = 0
        for line in io.lines(path) do
            if i % nthreads == tid then
                ids[#ids + 1] = line
            end
            i = i + 1
        end
    end
end

function request()
    if mode == "new" then
        return wrk.format("POST", "/api/message", headers, body)
    end
    pos = pos + 1
    if pos > #ids then
        pos = 1
    end
    local id = ids[pos]
    return wrk.format("POST", "/api/conversations/" .. id .. "/messages", headers, body)
end

function response(status, hdrs, resp)
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
    local total = {}
    for _, t in ipairs(threads) do
        local s = t:get("statuses")
        for k, v in pairs(s) do
            total[k] = (total[k] or 0) + v
        end
    end
    local parts = {}
    for k, v in pairs(total) do
        parts[#parts + 1] = string.format('"%d":%d', k, v)
    end
    io.write("WRK_STATUS {" .. table.concat(parts, ",") .. "}\n")
    wrk_report(summary, latency)
end

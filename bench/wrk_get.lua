-- wrk_get.lua — GET the URL given on the command line (headers with -H); one JSON report line.
-- With $BENCH_EXPECT set, each answer is also counted by status (and checked
-- for that string in its body) and reported in a WRK_STATUS line; without it
-- wrk reads no bodies into Lua (P8, P9).
dofile(os.getenv("BENCH_DIR") .. "/wrk_report.lua")

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

if os.getenv("BENCH_EXPECT") and os.getenv("BENCH_EXPECT") ~= "" then
    function response(status, hdrs, body)
        wrk_count(status, body)
    end
end

function done(summary, latency, requests)
    if response then
        wrk_status_report(threads)
    end
    wrk_report(summary, latency)
end

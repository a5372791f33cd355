-- wrk_report.lua — shared reporting for every bench wrk script: wrk_report()
-- prints one JSON line (prefix "WRK_JSON ") with totals, errors and latency
-- percentiles (µs); wrk_status_report() prints the answers counted by status
-- in each thread's global `statuses` (prefix "WRK_STATUS "). bench/run parses
-- both. Loaded with dofile() by the other scripts.
function wrk_report(summary, latency)
    local e = summary.errors
    local p = {}
    for _, q in ipairs({50, 90, 99, 99.9}) do
        p[#p + 1] = string.format('"p%s":%d', tostring(q), latency:percentile(q))
    end
    io.write(string.format(
        'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
        '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
        '"latency_us":{"mean":%.1f,"max":%d,%s}}\n',
        summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
        e.status, e.timeout, latency.mean, latency.max, table.concat(p, ",")))
end

-- The threads' `statuses` tables summed: keys are HTTP statuses, or
-- "<status>-unexpected-body" for a 2xx answer whose body lacked $BENCH_EXPECT.
function wrk_status_report(threads)
    local total = {}
    for _, t in ipairs(threads) do
        local s = t:get("statuses")
        for k, v in pairs(s) do
            total[k] = (total[k] or 0) + v
        end
    end
    local parts = {}
    for k, v in pairs(total) do
        parts[#parts + 1] = string.format('"%s":%d', tostring(k), v)
    end
    io.write("WRK_STATUS {" .. table.concat(parts, ",") .. "}\n")
end

-- For response(): counts answers by status, and checks the body of each 2xx
-- answer for the string $BENCH_EXPECT (plain text) when it is set.
local expect = os.getenv("BENCH_EXPECT")
if expect == "" then
    expect = nil
end
statuses = {}

function wrk_count(status, body)
    local key = status
    if expect and status >= 200 and status < 300 and not (body and body:find(expect, 1, true)) then
        key = tostring(status) .. "-unexpected-body"
    end
    statuses[key] = (statuses[key] or 0) + 1
end

-- wrk_report.lua — shared done() for every bench wrk script: prints one JSON
-- line (prefix "WRK_JSON ") with totals, errors and latency percentiles (µs),
-- which bench/run parses. Loaded with dofile() by the other scripts.
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

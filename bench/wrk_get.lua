-- wrk_get.lua — GET the URL given on the command line (headers with -H); one JSON report line.
dofile(os.getenv("BENCH_DIR") .. "/wrk_report.lua")
function done(summary, latency, requests)
    wrk_report(summary, latency)
end

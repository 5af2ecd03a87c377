-- bench/lib/wrk.lua - wrk script of the benchmark.
--   wrk ... -s wrk.lua URL -- [COOKIE_FILE]
-- With COOKIE_FILE (one Cookie header value a line, one line a session, taken
-- from real responses by run.sh), each request carries the next session's
-- cookies in turn: established sessions spread over the members.  Without
-- it the requests carry no cookie: every request is a new session.
-- done() prints one machine-readable line, BENCH key=value ..., that run.sh
-- parses (latencies in microseconds).

local reqs = {}
local n = 0
local i = 0
local threads = 0

-- main state: number the threads (runs before each thread's init)
function setup(thread)
    threads = threads + 1
    thread:set("bench_thread", threads)
end

function init(args)
    local file = args[1]
    if file ~= nil and file ~= "" then
        for line in io.lines(file) do
            if line ~= "" then
                n = n + 1
                reqs[n] = wrk.format(nil, nil, { ["Cookie"] = line })
            end
        end
        if n == 0 then
            error("wrk.lua: no cookies in " .. file)
        end
        -- threads start at different sessions
        i = ((bench_thread or 1) - 1) * 7 % n
        request = function()
            i = i + 1
            if i > n then i = 1 end
            return reqs[i]
        end
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d bytes=%d err_connect=%d err_read=%d " ..
        "err_write=%d err_status=%d err_timeout=%d p50_us=%d p90_us=%d " ..
        "p99_us=%d mean_us=%.1f\n",
        summary.requests, summary.duration, summary.bytes, e.connect, e.read,
        e.write, e.status, e.timeout, latency:percentile(50),
        latency:percentile(90), latency:percentile(99), latency.mean))
end

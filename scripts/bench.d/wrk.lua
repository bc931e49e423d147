-- wrk script for scripts/bench.
--
-- BENCH_ABSOLUTE_URL (optional): wrk has no proxy support, so for an explicit proxy wrk is
--   pointed at the proxy's port and this turns the request line into absolute form
--   ("GET http://127.0.0.1:18080/ HTTP/1.1") with the origin's Host header.
-- BENCH_PACE_MS (optional): each connection waits this long between requests, so latency
--   is measured at a fixed offered load instead of at saturation.
-- BENCH_CONNECT_ADDR (optional): connect to this address instead of looking the URL's host
--   up, so an https URL can carry a name (wrk sends it as SNI and Host) that the machine
--   cannot resolve (scripts/bench's origin.bench).
-- done() prints one machine-readable BENCH_RESULT line: the formatter takes requests,
-- latency and every kind of failure from it, so an error answered fast cannot pass as
-- a fast success.

local absolute = os.getenv("BENCH_ABSOLUTE_URL")
if absolute ~= nil and absolute ~= "" then
  wrk.path = absolute
  wrk.headers["Host"] = absolute:match("^%a+://([^/]+)")
end

local connect_addr = os.getenv("BENCH_CONNECT_ADDR")
if connect_addr ~= nil and connect_addr ~= "" then
  function wrk.resolve(host, service)
    local addrs = wrk.lookup(connect_addr, service)
    for i = #addrs, 1, -1 do
      if not wrk.connect(addrs[i]) then
        table.remove(addrs, i)
      end
    end
    wrk.addrs = addrs
  end
end

local pace = tonumber(os.getenv("BENCH_PACE_MS") or "")
if pace ~= nil and pace > 0 then
  function delay()
    return pace
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d max_us=%d " ..
    "non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end

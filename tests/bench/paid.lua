-- paid.lua — wrk: one pre-made credential per request (credentials are
-- single use), each thread taking every k-th line of the file; then print
-- the figures bench.sh reads. CREDS names the file (empty: unpaid requests).
local creds = {}
local idx, step = 1, 1
local thread_no = 0
local threads = {}

function setup(thread)
   thread_no = thread_no + 1
   thread:set("id", thread_no)
   table.insert(threads, thread)
end

function init(args)
   local path = os.getenv("CREDS") or ""
   local nthreads = tonumber(os.getenv("THREADS") or "1")
   if path ~= "" then
      local i = 0
      for line in io.lines(path) do
         if i % nthreads == (id - 1) then table.insert(creds, line) end
         i = i + 1
      end
   end
   wrk.method = "POST"
   wrk.body = os.getenv("BODY")
   wrk.headers["Content-Type"] = "application/json"
   if os.getenv("HOSTHDR") and os.getenv("HOSTHDR") ~= "" then
      wrk.headers["Host"] = os.getenv("HOSTHDR")
   end
   if os.getenv("AUTH") and os.getenv("AUTH") ~= "" then
      wrk.headers["Authorization"] = os.getenv("AUTH")
   end
end

function request()
   if #creds > 0 then
      local c = creds[idx]
      idx = idx + 1
      if idx > #creds then idx = 1 end
      wrk.headers["Authorization"] = c
   end
   return wrk.format()
end

function done(summary, latency, requests)
   local non2xx = summary.errors.status
   io.write(string.format("RESULT requests=%d seconds=%.3f non2xx=%d p50_us=%d p99_us=%d\n",
      summary.requests, summary.duration / 1e6, non2xx,
      latency:percentile(50), latency:percentile(99)))
end

-- Appended to each script: one machine-readable line after the run. rps
-- counts only successful answers (2xx/3xx); refusals are reported as errors.
done = function(summary, latency, requests)
  local errors = summary.errors
  local bad = errors.status + errors.connect + errors.read + errors.write + errors.timeout
  io.write(string.format("BENCH rps=%.1f p50=%.3f p99=%.3f max=%.3f requests=%d errors=%d\n",
    (summary.requests - bad) / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, bad))
end

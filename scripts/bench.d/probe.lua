-- A light probe: one request every 10 ms per connection (about 100/s), so
-- the latency measured is the server's answer time, not a queue the probe
-- built itself.
delay = function()
  return 10
end

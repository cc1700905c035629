-- wrk: each request names one of 100,000 clients in turn (x-client), so a gateway keyed
-- by that header (RATE_LIMIT_KEY_BY=header:x-client) decides for many keys, not one.
local n = 0
request = function ()
  n = (n + 1) % 100000
  return wrk.format(nil, nil, { ["x-client"] = "c" .. n })
end

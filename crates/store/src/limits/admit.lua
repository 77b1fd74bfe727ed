-- Admits an ask, or refuses it without changing anything. Runs atomically in Redis.
--
-- KEYS[i]: the counter of check i (one per set limit of each budget, in the ask's order).
-- ARGV[3i-2]: its limit; ARGV[3i-1]: what admitting adds (1 request, or the ask's tokens);
-- ARGV[3i]: the counter's TTL in ms (window length + grace), set when the key is created.
-- All numbers are integers of at most 2^53, so Lua's doubles hold them exactly.
--
-- Returns {admitted (1 or 0), used_1, ..., used_n}: the counters' values *before* the ask,
-- from which the caller works out which refusal to report.

local result = {1}
for i = 1, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used == nil then
    return redis.error_reply('portcullis limits: counter ' .. KEYS[i] .. ' is not an integer')
  end
  local limit = tonumber(ARGV[3 * i - 2])
  local increment = tonumber(ARGV[3 * i - 1])
  if used >= limit or used + increment > limit then
    result[1] = 0
  end
  result[i + 1] = used
end

if result[1] == 1 then
  for i = 1, #KEYS do
    -- Pass the argument string, not a Lua number: large numbers would format as 1e+15.
    redis.call('INCRBY', KEYS[i], ARGV[3 * i - 1])
    -- New keys (and, defensively, any key left without a TTL) get one.
    if redis.call('PTTL', KEYS[i]) < 0 then
      redis.call('PEXPIRE', KEYS[i], ARGV[3 * i])
    end
  end
end

return result

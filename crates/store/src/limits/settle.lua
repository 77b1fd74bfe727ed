-- Corrects the token counters a reservation charged. Runs atomically in Redis.
--
-- KEYS: the counters the reservation charged. ARGV[1]: signed delta (actual - reserved).
-- A counter that has expired is left alone (never recreated, so never left without a TTL);
-- INCRBY keeps a key's TTL, and a counter never goes below 0.

for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local value = redis.call('INCRBY', KEYS[i], ARGV[1])
    if value < 0 then
      redis.call('INCRBY', KEYS[i], string.format('%d', -value))
    end
  end
end
return 0

-- Read one campaign's counters, its batches' counters and one day's, as one snapshot.
--
-- KEYS[1]  the campaign's totals hash (names the slot; all keys share its hash tag)
-- ARGV[1]  the campaign's key base, "{prefix}:{vdnId:campaignId}"
-- ARGV[2]  the day, "YYYY-MM-DD" in the VDN's zone ("today" of the caller)
-- ARGV[3]  a batchId to restrict batchDetail to, or "" for every batch
-- return   false when the campaign is unknown, else
--          {campaignTotals, campaignDay, {batchId, batchTotals, batchDay}, ...}
--          where each *Totals / *Day is HGETALL's flat field/value list.
--
-- A script runs atomically: no event's effects are half in and half out of what it returns.

local base, day, only_batch = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local reply = {
  redis.call('HGETALL', KEYS[1]),
  redis.call('HGETALL', base .. ':day:' .. day),
}
local batches
if only_batch ~= '' then
  batches = {}
  if redis.call('HEXISTS', base .. ':batches', only_batch) == 1 then
    batches[1] = only_batch
  end
else
  batches = redis.call('HKEYS', base .. ':batches')
end
for _, batch in ipairs(batches) do
  local scope = base .. ':batch:' .. batch
  reply[#reply + 1] = {batch, redis.call('HGETALL', scope .. ':totals'),
                       redis.call('HGETALL', scope .. ':day:' .. day)}
end
return reply

-- Read campaigns' counters, their batches' counters and one day's, as one snapshot.
--
-- KEYS[i]  the totals hash of campaign i (on a Redis Cluster one campaign per call: its key
--          names the slot, and every key read for it shares its hash tag)
-- ARGV[1]  the day, "YYYY-MM-DD" in the VDN's zone ("today" of the caller)
-- ARGV[2]  a batchId to restrict the batches to, or "" for every batch
-- return   per campaign: false when it is unknown, else a flat array: the campaign's counters,
--          then for each batch its id and its counters. A scope's counters come packed in one
--          string, the eleven of the interface in the order of engine/keys.py's
--          RESPONSE_COUNTERS, comma-separated:
--          totalCount unCallCount totalCalledCount totalCallSucc totalFinishCount
--          dailyCalledCount dailyCallSucc dailyFinishCount dailyCount calledCount finishCount
--
-- A script runs atomically: no event's effects are half in and half out of what it returns.
-- Why it is shaped so (a whole VDN is 200 campaigns x 6 scopes, see docs/benchmarks.md):
-- HMGET by position, not HGETALL, because building and parsing field names cost more than the
-- reads; one string per scope, not eleven integers, because Redis spends more turning a Lua
-- table of thousands of numbers into a reply than on all the reads put together.

local day, only_batch = ARGV[1], ARGV[2]
local call = redis.call

local function packed_counters(scope)
  local counters = call('HMGET', scope .. ':totals', 'totalCount', 'unCallCount',
                        'totalCalledCount', 'totalCallSucc', 'totalFinishCount')
  local daily = call('HMGET', scope .. ':day:' .. day, 'dailyCalledCount', 'dailyCallSucc',
                     'dailyFinishCount', 'dailyCount')
  -- A counter never incremented (or a day without events) is a missing field: zero.
  for i = 1, 5 do
    counters[i] = counters[i] or '0'
  end
  for i = 1, 4 do
    counters[5 + i] = daily[i] or '0'
  end
  -- The seed describes these two with the same words as the two they copy.
  counters[10] = counters[6] -- calledCount = dailyCalledCount
  counters[11] = counters[5] -- finishCount = totalFinishCount
  return table.concat(counters, ',')
end

local TOTALS_SUFFIX = ':totals'

local function read_campaign(totals_key)
  if call('EXISTS', totals_key) == 0 then
    return false
  end
  -- "{prefix}:{vdnId:campaignId}", the start of every key of the campaign (engine/keys.py)
  local base = string.sub(totals_key, 1, -#TOTALS_SUFFIX - 1)
  local reply = { packed_counters(base) }
  local batches
  if only_batch ~= '' then
    batches = {}
    if call('HEXISTS', base .. ':batches', only_batch) == 1 then
      batches[1] = only_batch
    end
  else
    batches = call('HKEYS', base .. ':batches')
  end
  for _, batch in ipairs(batches) do
    reply[#reply + 1] = batch
    reply[#reply + 1] = packed_counters(base .. ':batch:' .. batch)
  end
  return reply
end

local replies = {}
for i, totals_key in ipairs(KEYS) do
  replies[i] = read_campaign(totals_key)
end
return replies

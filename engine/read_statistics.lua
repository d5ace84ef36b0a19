-- Read campaigns' counters, their batches' counters and one day's, as one snapshot.
--
-- KEYS[i]  the totals hash of campaign i (on a Redis Cluster one campaign per call: its key
--          names the slot, and every key read for it shares its hash tag)
-- ARGV[1]  the day, "YYYY-MM-DD" in the VDN's zone ("today" of the caller)
-- ARGV[2]  a batchId to restrict the batches to, or "" for every batch
-- ARGV[1+i] the key base of campaign i, "{prefix}:{vdnId:campaignId}"
-- return   per campaign: false when it is unknown, else one flat array of integers and batch
--          ids: the campaign's nine counters, then for each batch its id and its nine counters.
--          The nine, in the order of engine/keys.py (TOTAL_COUNTERS, then DAILY_COUNTERS):
--          totalCount unCallCount totalCalledCount totalCallSucc totalFinishCount
--          dailyCalledCount dailyCallSucc dailyFinishCount dailyCount
--
-- A script runs atomically: no event's effects are half in and half out of what it returns.
-- HMGET by position, not HGETALL: a whole VDN is hundreds of these, and building and parsing
-- field names costs more than everything else the read does.

local day, only_batch = ARGV[1], ARGV[2]

local function append_counters(reply, scope)
  local totals = redis.call('HMGET', scope .. ':totals', 'totalCount', 'unCallCount',
                            'totalCalledCount', 'totalCallSucc', 'totalFinishCount')
  local daily = redis.call('HMGET', scope .. ':day:' .. day, 'dailyCalledCount',
                           'dailyCallSucc', 'dailyFinishCount', 'dailyCount')
  for i = 1, 5 do
    reply[#reply + 1] = tonumber(totals[i]) or 0
  end
  for i = 1, 4 do
    reply[#reply + 1] = tonumber(daily[i]) or 0
  end
end

local function read_campaign(totals_key, base)
  if redis.call('EXISTS', totals_key) == 0 then
    return false
  end
  local reply = {}
  append_counters(reply, base)
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
    reply[#reply + 1] = batch
    append_counters(reply, base .. ':batch:' .. batch)
  end
  return reply
end

local replies = {}
for i, totals_key in ipairs(KEYS) do
  replies[i] = read_campaign(totals_key, ARGV[i + 2])
end
return replies

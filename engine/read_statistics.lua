-- Read campaigns' packed counter rows, totals and one day's, as one snapshot.
-- (Key suffixes come from the prelude, rendered from the key layout: engine/scripts.py.)
--
-- KEYS[i]  the rows hash of campaign i, "{prefix}:{vdnId:campaignId}:rows" (on a Redis Cluster
--          one campaign per call: its key names the slot, and the day's rows hash shares its
--          hash tag)
-- ARGV[1]  the day, "YYYY-MM-DD" in the VDN's zone ("today" of the caller)
-- ARGV[2]  a batchId to restrict the batches to, or "" for every batch
-- return   per campaign: false when it is unknown, else {totals, daily}, each a flat array of
--          field, row, field, row...: field "" is the campaign, any other a batchId; a totals
--          row is the five TOTAL_COUNTERS of isales_stats/core/keys.py, a daily row the four
--          DAILY_COUNTERS, comma-separated. A scope without a daily row had no event that day.
--
-- engine/count_events/ keeps these rows next to the counter hashes, in the same atomic step. A
-- script runs atomically too: no event's effects are half in and half out of what it returns.
-- Why rows and not the hashes (docs/adr/0003-packed-rows.md): a whole VDN of 200 campaigns x 6
-- scopes was 2,400 HMGETs, all on Redis' one thread; the rows are 400 HGETALLs. Redis' share of
-- a whole-VDN read is measured in docs/benchmarks.md, section "Statistics API".

local day, only_batch = ARGV[1], ARGV[2]
local call = redis.call

-- HMGET's answer as HGETALL would give it: field, value pairs, missing fields left out.
local function as_pairs(fields, values)
  local flat = {}
  for i, field in ipairs(fields) do
    if values[i] then
      flat[#flat + 1] = field
      flat[#flat + 1] = values[i]
    end
  end
  return flat
end

local function read_campaign(rows_key)
  local base = string.sub(rows_key, 1, -#SUFFIX.rows - 1)
  local day_rows_key = base .. SUFFIX.day .. day .. SUFFIX.rows
  if only_batch == '' then
    local totals = call('HGETALL', rows_key)
    if #totals == 0 then
      return false
    end
    return {totals, call('HGETALL', day_rows_key)}
  end
  local scopes = {'', only_batch}
  local totals = call('HMGET', rows_key, '', only_batch)
  if not totals[1] then
    return false
  end
  return {as_pairs(scopes, totals), as_pairs(scopes, call('HMGET', day_rows_key, '', only_batch))}
end

local replies = {}
for i, rows_key in ipairs(KEYS) do
  replies[i] = read_campaign(rows_key)
end
return replies

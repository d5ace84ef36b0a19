-- Read one scope's history over days (a campaign's, or one batch's), as one snapshot.
-- (Key suffixes come from the prelude, rendered from the key layout: engine/scripts.py.)
--
-- KEYS[1]  the campaign's rows hash, "{prefix}:{vdnId:campaignId}:rows": it names the Redis
--          Cluster slot, and every key read below shares its hash tag
-- ARGV[1]  the scope: "" for the campaign, else a batchId
-- ARGV[2]  what to read of each day of the range besides its row: "hours" (the day's counters
--          per hour), "fails" (its failed calls by failCode) or "" (nothing more)
-- ARGV[3]  how many of the days that follow are the range; the others, the later days up to
--          tomorrow, are read for their rows only: a call total at a day's end is today's
--          total less the calls of the days after it
-- ARGV[4…] day labels, "YYYY-MM-DD" in the VDN's zone, ascending
-- return   {totals, rows, details}: the scope's packed totals row (false: the scope is
--          unknown); per day its packed daily row (false: nothing that day); per day of the
--          range the flat HGETALL of its hours or fails hash
--
-- One script, so that the totals and the days' rows come from one instant: an event counted
-- between two reads would otherwise show in one and not the other.

local rows_key, scope, detail = KEYS[1], ARGV[1], ARGV[2]
local in_range = tonumber(ARGV[3])
local call = redis.call
local base = string.sub(rows_key, 1, -#SUFFIX.rows - 1)
local scope_base = base
if scope ~= '' then
  scope_base = base .. SUFFIX.batch .. scope
end

local totals = call('HGET', rows_key, scope) or false
local rows, details = {}, {}
for i = 4, #ARGV do
  local day = ARGV[i]
  rows[#rows + 1] = call('HGET', base .. SUFFIX.day .. day .. SUFFIX.rows, scope) or false
  if detail ~= '' and i - 3 <= in_range then
    local key = scope_base .. SUFFIX.day .. day .. (detail == 'hours' and SUFFIX.hours
                                                     or SUFFIX.fails)
    details[#details + 1] = call('HGETALL', key)
  end
end
return {totals, rows, details}

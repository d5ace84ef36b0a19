-- What a campaign's idempotence state holds, for operators and tests: reads only.
-- (Key suffixes come from the prelude, the bucket functions from buckets.lua: the buckets'
-- layout is addressed in Lua alone, so that no second copy of it can disagree.)
--
-- KEYS[1]  the records' structure, "{prefix}:{vdnId:campaignId}:records"; it names the slot,
--          and the callIds' structure (KEYS[1] with SUFFIX.calls for SUFFIX.records) shares it
-- ARGV[1]  "sizes": return {records, callIds}, the entries of both structures
--          "known": ARGV[2...] are dataIds; return 1 or 0 for each: whether its record is in
--          the state (what counting an event of it leaves)

local records_key = KEYS[1]
local calls_key = string.sub(records_key, 1, -#SUFFIX.records - 1) .. SUFFIX.calls

if ARGV[1] == 'sizes' then
  return {bucket_entries(records_key, 'hash'), bucket_entries(calls_key, 'set')}
end
local records = open_buckets(records_key, 'hash')
local known = {}
for i = 2, #ARGV do
  known[#known + 1] = bucket_get(records, ARGV[i]) and 1 or 0
end
return known

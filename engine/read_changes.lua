-- Read one campaign's recorded changes after a point, or its counters as they stand now.
-- (Key suffixes and the change fields come from the prelude: engine/scripts.py.)
--
-- KEYS[1]  the campaign's change stream, "{prefix}:{vdnId:campaignId}:changes" (it names the
--          Redis Cluster slot; the rows read below share its hash tag)
-- ARGV[1]  the key base of the campaign, "{prefix}:{vdnId:campaignId}"
-- ARGV[2]  the point, a stream id "ms-seq": the changes after it are wanted; "" for a snapshot
-- ARGV[3]  the most changes to answer; past this many, a snapshot instead
-- ARGV[4]  today in the VDN's zone, "YYYY-MM-DD": the day of a snapshot read from the rows
-- ARGV[5]  "1": when nothing came after the point, the latest change all the same (a snapshot)
-- return   {0, entries}: the changes after the point, oldest first (XRANGE's entries);
--          {1, entry}: a snapshot, the latest change, when the point was "", or changes after
--          it may have been trimmed by the cap, or there are too many, or there are none and
--          ARGV[5] asks for the latest anyway; {2, totals row, daily row}: a snapshot read
--          from the rows, when the campaign has no change recorded (counted before push, or
--          released); {3}: the campaign has no counters at all.
--
-- One script, so that "is the point still kept" and the changes after it are one instant.

local key, base, after, most, today = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local latest_anyway = ARGV[5] == '1'
local call = redis.call

local function latest()
  return {1, call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]}
end

-- Stream ids as numbers: "ms-seq" -> ms, seq (both below 2^53 for any real clock).
local function split(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

local function later(a, b)
  local a_ms, a_seq = split(a)
  local b_ms, b_seq = split(b)
  return a_ms > b_ms or (a_ms == b_ms and a_seq > b_seq)
end

if call('EXISTS', key) == 0 then
  local totals = call('HGET', base .. SUFFIX.rows, '')
  if not totals then
    return {3}
  end
  return {2, totals, call('HGET', base .. SUFFIX.day .. today .. SUFFIX.rows, '') or ZERO_DAILY}
end
if after == '' then
  return latest()
end
-- The cap trimmed changes when more were added than are kept; they all came before the first
-- kept, so a point before it may have lost some. (Redis 7.0's max-deleted-entry-id does not
-- count what a cap trims.)
local info, length, added = call('XINFO', 'STREAM', key), 0, 0
for i = 1, #info, 2 do
  if info[i] == 'length' then
    length = info[i + 1]
  elseif info[i] == 'entries-added' then
    added = info[i + 1]
  end
end
if added > length and later(call('XRANGE', key, '-', '+', 'COUNT', 1)[1][1], after) then
  return latest()
end
local entries = call('XRANGE', key, '(' .. after, '+', 'COUNT', most + 1)
if #entries > most or (#entries == 0 and latest_anyway) then
  return latest()
end
return {0, entries}

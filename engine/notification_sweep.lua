-- The workers' sweep of one campaign's time-based notifications, idempotent: two workers
-- sweeping at once write one (the notified hash is checked and set in this same step).
-- KEYS[1] the campaign's notified hash (its slot). ARGV: the campaign's key base, vdnId,
-- campaignId, when decided (ISO 8601), the current epoch minute, the stall minutes
-- (ISALES_STALL_MINUTES), and the label of the day that just ended in the VDN's zone.
-- campaign.stalled: records remain and no call in the last stall minutes (the pacing
-- interface's rule), once per stall (a counted call clears it: campaign.resumed).
-- day.closed: the campaign's daily counters of that day, once per campaign and day, when it has
-- counters on it. Returns 1 when it wrote an entry (the campaign is then due).
local notified_key, base = KEYS[1], ARGV[1]
local vdn_id, campaign_id, decided_at = ARGV[2], ARGV[3], ARGV[4]
local now_minute, stall_minutes, ended_day = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local call = redis.call

local stored = call('HMGET', notified_key, NOTIFIED.sequence, NOTIFIED.stalled,
                    NOTIFIED.day_closed)
local sequence = tonumber(stored[1] or '0') or 0
local first = sequence
local updates = {}

local function data_of(names, row)
  local parts = {string.format('{"%s":%s,"%s":%s', DATA.vdnId, vdn_id, DATA.campaignId,
                               cjson.encode(campaign_id))}
  local i = 1
  for number in string.gmatch(row, '[^,]+') do
    parts[#parts + 1] = string.format(',"%s":%s', names[i], number)
    i = i + 1
  end
  parts[#parts + 1] = '}'
  return table.concat(parts)
end

local function notify(kind, data)
  sequence = sequence + 1
  local id = 'msg_' .. string.sub(redis.sha1hex(vdn_id .. ':' .. campaign_id), 1, 16) .. '_'
             .. sequence
  call('XADD', base .. SUFFIX.outbox, '*', OUTBOX_FIELD.id, id, OUTBOX_FIELD.type, kind,
       OUTBOX_FIELD.timestamp, decided_at, OUTBOX_FIELD.data, data)
end

if stored[2] ~= '1' then
  local row = call('HGET', base .. SUFFIX.rows, '')
  local last = tonumber(call('HGET', base .. SUFFIX.window, WINDOW_FIELD.last) or '')
  if row and last and last <= now_minute - stall_minutes then
    local totals = {}
    for number in string.gmatch(row, '[^,]+') do
      totals[#totals + 1] = tonumber(number)
    end
    local named = {}
    for i, name in ipairs(TOTAL_FIELDS) do
      named[name] = totals[i]
    end
    local records = named[COUNTER.totalCount]
    if records > 0 and named[COUNTER.totalFinishCount] < records then
      notify(KIND.stalled, data_of(TOTAL_FIELDS, row))
      updates[#updates + 1] = NOTIFIED.stalled
      updates[#updates + 1] = '1'
    end
  end
end

if (stored[3] or '') < ended_day then
  local daily = call('HGET', base .. SUFFIX.day .. ended_day .. SUFFIX.rows, '')
  if daily then
    local data = data_of(DAILY_FIELDS, daily)
    notify(KIND.day_closed, string.sub(data, 1, -2)
           .. string.format(',"%s":"%s"}', DATA.day, ended_day))
    updates[#updates + 1] = NOTIFIED.day_closed
    updates[#updates + 1] = ended_day
  end
end

if sequence > first then
  updates[#updates + 1] = NOTIFIED.sequence
  updates[#updates + 1] = string.format('%d', sequence)
end
if #updates > 0 then
  call('HSET', notified_key, unpack(updates))
end
if sequence > first then
  return 1
end
return 0

-- The workers' sweep of one campaign's time-based notifications, idempotent: two workers
-- sweeping at once write one (the notified hash is checked and set in this same step).
-- KEYS[1] the campaign's notified hash (its slot). ARGV: the campaign's key base, vdnId,
-- campaignId, when decided (ISO 8601), the current epoch minute, the stall minutes
-- (ISALES_STALL_MINUTES), the days that ended in the VDN's zone and may still have counters
-- ("YYYY-MM-DD,...", oldest first), the window hash's sums as the sweeper read them ("" when
-- none), then per window whose abandon status the sweeper found changed by time passing, five
-- values: its field in the notified hash, the status it read there, the new status, its kind,
-- its data (JSON).
-- campaign.stalled: records remain and no call in the last stall minutes (the pacing
-- interface's rule), once per stall (a counted call clears it: campaign.resumed).
-- abandon.*: a rolling window's status changes as old calls leave it. The sweeper worked the
-- status out with the read side's arithmetic (engine/decisions.py); it is written only when
-- neither the window hash's sums nor the notified status moved since it read them (a call
-- counted in between decided from newer counts: the next sweep looks again).
-- day.closed: the campaign's daily counters of each day that ended, in order, once per campaign
-- and day, when it has counters on it.
-- Returns 2 when it wrote an entry, 1 when the outbox holds entries anyway (the campaign is due
-- either way: a worker that died before announcing an entry leaves it to this), else 0.
local notified_key, base = KEYS[1], ARGV[1]
local vdn_id, campaign_id, decided_at = ARGV[2], ARGV[3], ARGV[4]
local now_minute, stall_minutes, ended_days = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local sums_read = ARGV[8]
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

if #ARGV > 8 then
  local sums_now = call('HGET', base .. SUFFIX.window, WINDOW_FIELD.sums) or ''
  if sums_now == sums_read then
    for i = 9, #ARGV, 5 do
      local field, status_read, status, kind, data = ARGV[i], ARGV[i + 1], ARGV[i + 2],
                                                     ARGV[i + 3], ARGV[i + 4]
      if (call('HGET', notified_key, field) or STATUS.ok) == status_read then
        notify(kind, data)
        updates[#updates + 1] = field
        updates[#updates + 1] = status
      end
    end
  end
end

-- A campaign never closed before closes the latest day only (one counted before notifications
-- existed would otherwise get a day.closed per day of the retention).
local day_closed = stored[3] or ''
local days = {}
for day in string.gmatch(ended_days, '[^,]+') do
  days[#days + 1] = day
end
if day_closed == '' then
  days = {days[#days]}
end
for _, day in ipairs(days) do
  if day > day_closed then
    local daily = call('HGET', base .. SUFFIX.day .. day .. SUFFIX.rows, '')
    if daily then
      local data = data_of(DAILY_FIELDS, daily)
      notify(KIND.day_closed, string.sub(data, 1, -2)
             .. string.format(',"%s":"%s"}', DATA.day, day))
      day_closed = day
    end
  end
end
if day_closed ~= (stored[3] or '') then
  updates[#updates + 1] = NOTIFIED.day_closed
  updates[#updates + 1] = day_closed
end

if sequence > first then
  updates[#updates + 1] = NOTIFIED.sequence
  updates[#updates + 1] = string.format('%d', sequence)
end
if #updates > 0 then
  call('HSET', notified_key, unpack(updates))
end
if sequence > first then
  return 2
end
if call('XLEN', base .. SUFFIX.outbox) > 0 then
  return 1
end
return 0

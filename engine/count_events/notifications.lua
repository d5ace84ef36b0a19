-- Part: notifications. The crossings this call's counts made, each written once to the
--       campaign's outbox in the same atomic step as the counts (docs/notifications.md).
-- Reads:  the notified hash (SUFFIX.notified), one HMGET per call when ARG.notifications is 1;
--         the campaign's totals row (rows.lua) and its window sums and today's bucket
--         (windows.lua's campaign_windows).
-- Writes: one XADD per notification to the outbox stream (SUFFIX.outbox) and one HSET of the
--         notified hash when a state changed (flush_notifications).
--
-- A state is remembered, not an event: a duplicate or a replay finds the same state already
-- notified and writes nothing. Decided once per call, after every event of it, in this order:
-- campaign.resumed (a call counted for a campaign notified stalled), each window's abandon
-- status that changed (today, rolling24h, rolling30d: abandon.ok/warning/over), then
-- campaign.finished (no record left to dial, totalCount > 0; records added afterwards arm it
-- again). The status arithmetic is isales_stats/core/decisions.py's, in integers.

local notifying = ARG.notifications == '1'
local notified_key = base .. SUFFIX.notified
local outbox_key = base .. SUFFIX.outbox

-- "overNumerator,overDenominator,warningNumerator,warningDenominator"
local limit_parts = {}
for number in string.gmatch(ARG.abandon_fractions, '[^,]+') do
  limit_parts[#limit_parts + 1] = tonumber(number)
end

-- The window's status, as AbandonLimit.status and decisions._rate decide it.
local function abandon_status(abandoned, denominator)
  if denominator == 0 then
    return STATUS.ok
  elseif abandoned * limit_parts[2] > limit_parts[1] * denominator then
    return STATUS.over
  elseif abandoned * limit_parts[4] >= limit_parts[3] * denominator then
    return STATUS.warning
  end
  return STATUS.ok
end

-- abandoned / denominator in percent, two decimals, halves up (decisions.ratio), as JSON.
local function rate_percent(abandoned, denominator)
  if denominator == 0 then
    return 'null'
  end
  local hundredths = math.floor((20000 * abandoned + denominator) / (2 * denominator))
  return string.format('%d.%02d', math.floor(hundredths / 100), hundredths % 100)
end

-- A notification's data: vdnId and campaignId, then `pairs` ({name, JSON value, ...}) in
-- order (cjson would not keep the order).
local function data_of(pairs_list)
  local parts = {string.format('{"%s":%s,"%s":%s', DATA.vdnId, ARG.vdn_id, DATA.campaignId,
                               cjson.encode(ARG.campaign_id))}
  for i = 1, #pairs_list, 2 do
    parts[#parts + 1] = string.format(',"%s":%s', pairs_list[i], pairs_list[i + 1])
  end
  parts[#parts + 1] = '}'
  return table.concat(parts)
end

-- The totals row "a,b,c,d,e" as {name, value, ...} in TOTAL_FIELDS order, and by name.
local function totals_of(row)
  local listed, named, i = {}, {}, 1
  for number in string.gmatch(row, '[^,]+') do
    listed[#listed + 1] = TOTAL_FIELDS[i]
    listed[#listed + 1] = number
    named[TOTAL_FIELDS[i]] = tonumber(number)
    i = i + 1
  end
  return listed, named
end

-- Returns true when the campaign has entries the due set may not know of (ANNOUNCE).
local function flush_notifications(changed_totals)
  if not notifying then
    return false
  end
  local fields = {NOTIFIED.sequence, NOTIFIED.finished, NOTIFIED.stalled, NOTIFIED.unannounced}
  for _, window in ipairs(NOTIFIED_WINDOWS) do
    fields[#fields + 1] = window.field
  end
  local stored = call('HMGET', notified_key, unpack(fields))
  local sequence = tonumber(stored[1] or '0') or 0
  local first = sequence
  local updates = {}
  local id_prefix = nil

  local function notify(kind, data)
    if not id_prefix then
      id_prefix = 'msg_' .. string.sub(redis.sha1hex(ARG.vdn_id .. ':' .. ARG.campaign_id), 1, 16)
                  .. '_'
    end
    sequence = sequence + 1
    call('XADD', outbox_key, '*', OUTBOX_FIELD.id, id_prefix .. sequence, OUTBOX_FIELD.type,
         kind, OUTBOX_FIELD.timestamp, ARG.decided_at, OUTBOX_FIELD.data, data)
  end

  local totals_listed, totals = nil, nil
  if changed_totals then
    totals_listed, totals = totals_of(changed_totals)
  end

  if campaign_windows then -- this call counted a call
    if stored[3] == '1' then
      notify(KIND.resumed, data_of(totals_listed or {}))
      updates[#updates + 1] = NOTIFIED.stalled
      updates[#updates + 1] = '0'
    end
    for i, window in ipairs(NOTIFIED_WINDOWS) do
      local counts = campaign_windows.today
      if window.sum > 0 then
        counts = campaign_windows.sums[window.sum]
      end
      local abandoned = counts[BUCKET_COUNT.abandoned]
      local denominator = counts[BUCKET_COUNT.connects] + abandoned
      local status = abandon_status(abandoned, denominator)
      if status ~= (stored[4 + i] or STATUS.ok) then
        notify(STATUS_KIND[status], data_of({
          DATA.window, cjson.encode(window.name),
          DATA.abandoned, string.format('%d', abandoned),
          DATA.denominator, string.format('%d', denominator),
          DATA.ratePercent, rate_percent(abandoned, denominator),
          DATA.limitPercent, ARG.abandon_limit_percent}))
        updates[#updates + 1] = window.field
        updates[#updates + 1] = status
      end
    end
  end

  if totals then
    local records = totals[COUNTER.totalCount]
    local finished = records > 0 and totals[COUNTER.totalFinishCount] >= records
    local notified = stored[2] == '1'
    if finished and not notified then
      notify(KIND.finished, data_of(totals_listed))
      updates[#updates + 1] = NOTIFIED.finished
      updates[#updates + 1] = '1'
    elseif notified and not finished then
      updates[#updates + 1] = NOTIFIED.finished
      updates[#updates + 1] = '0'
    end
  end

  if sequence > first then
    updates[#updates + 1] = NOTIFIED.sequence
    updates[#updates + 1] = string.format('%d', sequence)
    updates[#updates + 1] = NOTIFIED.unannounced
    updates[#updates + 1] = '1'
  end
  if #updates > 0 then
    call('HSET', notified_key, unpack(updates))
  end
  return sequence > first or stored[4] == '1'
end

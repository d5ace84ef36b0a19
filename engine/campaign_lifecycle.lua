#!lua flags=allow-oom
-- Move one campaign along its lifecycle, in one atomic step: live -> released -> deleted.
-- (allow-oom: releasing and deleting free memory, and a full Redis needs them most; what a
-- step writes is a field or two of the lifecycle hash.)
-- (Key suffixes and lifecycle fields come from the prelude: engine/scripts.py.)
--
--   live      counted as events come. It ends by a campaign.closed, or by going idle (no
--             event counted for `idle` seconds after its last active day).
--   released  `grace` seconds after its end: its idempotence state (records, callIds, day
--             records: almost all of its memory) is gone, and its counters are compacted to
--             what the API reads (the packed rows of its totals and of each day, per scope,
--             and each day's hours and failCodes, per scope, which expire with the day): the
--             counter hashes the dashboards read, its batch index, its progress and change
--             streams go too, as only live campaigns are on dashboards and pushed. Its final
--             counters stay readable by campaignId, and so do its scopes' rolling windows
--             (its abandon rate and pace: a read corrects their sums for the time passed).
--             Its events are refused from now on (the counting script answers "R"), since
--             nothing tells a new one from an old one.
--             Its outbox, cursors and notified hash stay: what was notified is delivered.
--   deleted   `retention` seconds after the release, or at once by an operator: its rows
--             and window hashes are gone too, its outbox and notification state too, and only a tombstone (this hash) is left, which
--             expires after `tombstone` seconds; until then its events are refused too ("G").
--
-- KEYS[1]  the campaign's lifecycle hash, "{prefix}:{vdnId:campaignId}:life": it names the
--          Redis Cluster slot; every key below carries the same hash tag
-- ARGV[1]  the campaign's key base, "{prefix}:{vdnId:campaignId}"
-- ARGV[2]  now, epoch seconds
-- ARGV[3]  idle, ARGV[4] grace, ARGV[5] retention, ARGV[6] tombstone: seconds
-- ARGV[7]  "step" (what is due, if anything) or "delete" (the operator's: everything, now)
-- ARGV[8]  today, in days since the epoch (the idle clock of a campaign never counted since
--          this version: it starts now)
-- ARGV[9]  vdnId, ARGV[10] campaignId, ARGV[11] now as a notification's timestamp (ISO 8601)
-- ARGV[12] "1" when notifications are on (ISALES_NOTIFICATIONS): the release writes
--          campaign.released (its final totals) to the outbox, in this same step, once
-- ARGV[13…] the day labels whose keys may still exist ("YYYY-MM-DD", isales_stats/core/days.py)
-- return   {state, next, keys removed}: state "live", "released", "retained" (released
--          before) or "deleted"; next = epoch seconds at which the next step is due (0: none)
--
-- Safe to run again, by any number of sweepers at once: each step checks the state it moves
-- from, and what it deletes is already gone the second time.

local life_key, base = KEYS[1], ARGV[1]
local now, idle, grace = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local retention, tombstone = tonumber(ARGV[5]), tonumber(ARGV[6])
local mode, today = ARGV[7], ARGV[8]
local vdn_id, campaign_id, decided_at, notifying = ARGV[9], ARGV[10], ARGV[11], ARGV[12] == '1'
local days = {}
for i = 13, #ARGV do
  days[#days + 1] = ARGV[i]
end
local call = redis.call
local DAY = 86400

local removed = 0
local function unlink(keys)
  -- UNLINK: a hash of a million records is freed by a background thread, not in this step.
  for first = 1, #keys, 1000 do
    removed = removed + call('UNLINK', unpack(keys, first, math.min(first + 999, #keys)))
  end
end

-- campaign.released with the campaign's final totals, once (the notified hash remembers it).
local function notify_release()
  local notified_key = base .. SUFFIX.notified
  local stored = call('HMGET', notified_key, NOTIFIED.sequence, NOTIFIED.released)
  if not notifying or stored[2] == '1' then
    return
  end
  local sequence = (tonumber(stored[1] or '0') or 0) + 1
  local parts = {string.format('{"%s":%s,"%s":%s', DATA.vdnId, vdn_id, DATA.campaignId,
                               cjson.encode(campaign_id))}
  local row, i = call('HGET', base .. SUFFIX.rows, '') or '', 1
  for number in string.gmatch(row, '[^,]+') do
    parts[#parts + 1] = string.format(',"%s":%s', TOTAL_FIELDS[i], number)
    i = i + 1
  end
  parts[#parts + 1] = '}'
  local id = 'msg_' .. string.sub(redis.sha1hex(vdn_id .. ':' .. campaign_id), 1, 16) .. '_'
             .. sequence
  call('XADD', base .. SUFFIX.outbox, '*', OUTBOX_FIELD.id, id, OUTBOX_FIELD.type,
       KIND.released, OUTBOX_FIELD.timestamp, decided_at, OUTBOX_FIELD.data,
       table.concat(parts))
  call('HSET', notified_key, NOTIFIED.sequence, string.format('%d', sequence),
       NOTIFIED.released, '1')
end

-- The idempotence state, what makes counting exact, and every copy of the counters but the
-- packed rows: what a finished campaign no longer needs.
local function release()
  local batches = call('HKEYS', base .. SUFFIX.batches)
  local keys = {base .. SUFFIX.records, base .. SUFFIX.calls, base .. SUFFIX.totals,
                base .. SUFFIX.batches, base .. SUFFIX.progress, base .. SUFFIX.progress_current,
                base .. SUFFIX.changes}
  for _, batch in ipairs(batches) do
    keys[#keys + 1] = base .. SUFFIX.batch .. batch .. SUFFIX.totals
  end
  for _, day in ipairs(days) do
    keys[#keys + 1] = base .. SUFFIX.day .. day .. SUFFIX.records
    keys[#keys + 1] = base .. SUFFIX.day .. day
    for _, batch in ipairs(batches) do
      keys[#keys + 1] = base .. SUFFIX.batch .. batch .. SUFFIX.day .. day
    end
  end
  unlink(keys)
  call('HSET', life_key, LIFE.released, now)
  notify_release()
end

-- The final counters, the rows, hours and failCodes of every day, the window hashes; the
-- lifecycle hash stays, as a tombstone. (Every other counter key too: a campaign released
-- before releases compacted still has them.) Its batches are the scopes of its rows (a release
-- took its batch index), and a day's batches those of that day's rows: a batch has day keys
-- only on the days it had events, so naming only those keeps this step as small as what it
-- deletes.
local function delete()
  local batches = call('HKEYS', base .. SUFFIX.batches)
  local listed = {}
  for _, batch in ipairs(batches) do
    listed[batch] = true
  end
  for _, scope in ipairs(call('HKEYS', base .. SUFFIX.rows)) do
    if scope ~= '' and not listed[scope] then
      batches[#batches + 1] = scope
    end
  end
  local keys = {base .. SUFFIX.rows, base .. SUFFIX.totals, base .. SUFFIX.batches,
                base .. SUFFIX.progress, base .. SUFFIX.progress_current, base .. SUFFIX.changes,
                base .. SUFFIX.window, base .. SUFFIX.outbox, base .. SUFFIX.outbox_cursors,
                base .. SUFFIX.outbox_retries, base .. SUFFIX.notified}
  for _, batch in ipairs(batches) do
    keys[#keys + 1] = base .. SUFFIX.batch .. batch .. SUFFIX.totals
    keys[#keys + 1] = base .. SUFFIX.batch .. batch .. SUFFIX.window
  end
  for _, day in ipairs(days) do
    local day_base = base .. SUFFIX.day .. day
    keys[#keys + 1] = day_base .. SUFFIX.rows
    keys[#keys + 1] = day_base
    keys[#keys + 1] = day_base .. SUFFIX.hours
    keys[#keys + 1] = day_base .. SUFFIX.fails
    for _, scope in ipairs(call('HKEYS', day_base .. SUFFIX.rows)) do
      if scope ~= '' then
        local batch_day = base .. SUFFIX.batch .. scope .. SUFFIX.day .. day
        keys[#keys + 1] = batch_day
        keys[#keys + 1] = batch_day .. SUFFIX.hours
        keys[#keys + 1] = batch_day .. SUFFIX.fails
      end
    end
  end
  unlink(keys)
  call('HSET', life_key, LIFE.deleted, now)
  -- EXPIREAT from the sweeper's clock, as the day keys' expiries come from the worker's.
  call('EXPIREAT', life_key, now + tombstone)
end

local life = call('HMGET', life_key, LIFE.active, LIFE.closed, LIFE.released, LIFE.deleted)
local active, closed, released, deleted = life[1], tonumber(life[2]), tonumber(life[3]), life[4]

if deleted then
  return {'deleted', 0, 0}
end
if mode == 'delete' then
  if not released then
    release()
  end
  delete()
  return {'deleted', 0, removed}
end
if released then
  if now >= released + retention then
    delete()
    return {'deleted', 0, removed}
  end
  return {'retained', released + retention, 0}
end

if not active then
  -- Counted before lifecycles existed, or listed but not counted yet: idle from today.
  active = today
  call('HSET', life_key, LIFE.active, today)
end
-- The end: its close, or the end of its last active day plus the idle time.
local ended = closed or (tonumber(active) + 1) * DAY + idle
if now >= ended + grace then
  release()
  if retention == 0 then
    delete()
    return {'deleted', 0, removed}
  end
  return {'released', now + retention, removed}
end
return {'live', ended + grace, 0}

#!lua
-- Count a batch of one campaign's call events, exactly once, in one atomic step.
--
-- The shebang (no flags) makes Redis refuse the whole script up front when it is over its
-- maxmemory (noeviction: isales_stats/commands/stack/redis.py). Without one, Redis refuses a
-- script only at its first write that needs memory, and lets it go on once any write got past
-- (a DEL or HDEL needs none): refused whole, counting waits and retries until memory is freed
-- or added, and nothing is half counted.
--
-- KEYS[1]  the campaign's totals hash; it names the Redis Cluster slot, and every key built
--          below from ARGV[1] carries the same {vdnId:campaignId} hash tag.
-- ARGV[1]  the campaign's key base, "{prefix}:{vdnId:campaignId}" (isales_stats/core/keys.py)
-- ARGV[2]  the events, a JSON array (one argument: packing thousands of small arguments costs
--          the Python client more than the whole script costs Redis); each event an array:
--          kind     "a" data.added | "c" call.result | "r" data.removed | "x" campaign.closed
--                   (a campaign's end: only kind matters, the rest is empty)
--          dataId
--          callId   ("" unless kind is "c")
--          batchId  ("" when the record has no batch)
--          connected 1 | 0
--          final    1 | 0
--          day      "YYYY-MM-DD" in the VDN's zone, or "" when older than the retention
--          expireAt epoch seconds at which that day's keys expire
--          hour     the hour of that day in which it occurred, 0..24, counted from the day's
--                   start (isales_stats/core/days.py: a day may have 23 or 25 hours)
--          failCode a failed call's failCode ("" when it gave none; unused for other events)
-- ARGV[3]  the start of the current minute, epoch milliseconds (the worker's clock): the
--          progress stream records calls, connects and finished records per arrival minute
-- ARGV[4]  the most batches a campaign may have (0: no limit)
-- ARGV[5]  today on the worker's clock, in days since the epoch: the campaign's last active
--          day (its lifecycle's idle clock, engine/campaign_lifecycle.lua)
-- ARGV[6]  now on the worker's clock, epoch seconds: when a campaign.closed is counted
-- ARGV[7]  today in the VDN's zone on the worker's clock, "YYYY-MM-DD": the day whose daily
--          counters a change of the campaign carries
-- ARGV[8]  the changes to keep in the campaign's change stream (0: record none)
-- ARGV[9]  the VDN's change channel (PUBLISH), told the campaignId when a change is recorded
-- ARGV[10] the campaignId
-- return   one letter per event: "A" applied, "D" duplicate (already counted), "C" rejected:
--          the event's batchId contradicts the one recorded for its dataId; "L" rejected: it
--          would open a batch beyond the campaign's limit (nothing of it is counted); "R"
--          rejected: the campaign's idempotence state was released (its counters are final),
--          "G" rejected: the campaign was deleted (only its tombstone is left).
--
-- Idempotence lives here, next to the counters it protects: a record's state (which of its
-- events were counted) and the callIds counted change in the same script as the counters, so
-- a replay after any crash finds its events already counted and changes nothing.
--
-- Counter names and key suffixes come from the prelude (COUNTER, SUFFIX, TOTAL_FIELDS,
-- DAILY_FIELDS), rendered from the key layout by isales_stats/engine/scripts.py.
--
-- Bytes written, not only time: Redis replicates a script by its effects, so every write
-- below goes to the append-only file and to each replica (docs/adr/0004-write-amplification.md).
-- The script therefore reads as it goes but writes once at the end: one HSET of the record
-- states, one SADD of the callIds, one HSET per day of the day's record flags, one HSET of
-- the changed fields per counter hash, one per rows hash and one per hours or fails hash.
-- Nothing is written that did not change: Redis propagates an HSET of the same value, but not
-- a SADD of a member it holds nor an EXPIREAT ... NX of a key that already expires, so day
-- keys get their expiry once.

local base = ARGV[1]
local events = cjson.decode(ARGV[2])
local minute_ms = tonumber(ARGV[3])
local max_batches = tonumber(ARGV[4])
local today, now = ARGV[5], ARGV[6]
local today_label, changes_kept, channel, campaign_id = ARGV[7], tonumber(ARGV[8]), ARGV[9], ARGV[10]
local records_key = base .. SUFFIX.records
local calls_key = base .. SUFFIX.calls
local batches_key = base .. SUFFIX.batches
local life_key = base .. SUFFIX.life

-- A campaign whose state is released can no longer tell a new event from one counted before:
-- every event of it is refused, for the dead-letter topic, never counted twice.
local life = redis.call('HMGET', life_key, LIFE.deleted, LIFE.released, LIFE.active, LIFE.closed)
if life[1] or life[2] then
  return string.rep(life[1] and 'G' or 'R', #events)
end
local closed_now = false -- a campaign.closed of this call, written with the rest at the end
local applied_any = false

-- record flags (in the records hash as "flags" or "flags:batchNumber")
local ADDED, CALLED, REMOVED, FINISHED = 1, 2, 4, 8
-- per-day record flags (in the day's records hash)
local SEEN_TODAY, FINISHED_TODAY = 1, 2

local band, bor = bit.band, bit.bor
local call = redis.call

-- What this call has decided so far, read before Redis by every later event of the batch.
local records = {}      -- dataId -> its new state
local records_order = {} -- dataIds in the order first written (a deterministic HSET)
local calls = {}        -- callId -> true: counted by this call
local calls_order = {}
local day_flags = {}    -- day records key -> {flags = {dataId -> flags}, read = {as in
                        -- Redis before}, order = {dataIds}}
local increments = {}   -- counter hash -> {field -> delta}
local day_deltas = {}   -- a day's hours or fails hash -> {field -> delta}
local rows_due = {}     -- counter hash -> {rows hash, row field, fields, every field kept}
local expiries = {}     -- day key -> expireAt

local function add(changes, key, field, delta)
  local fields = changes[key]
  if not fields then
    fields = {}
    changes[key] = fields
  end
  fields[field] = (fields[field] or 0) + delta
end

local function bump(key, field, delta)
  add(increments, key, field, delta)
end

-- Scopes: the campaign, and the record's batch when it has one. A scope is the start of its
-- counter hashes' keys and its field in the campaign's packed rows ('' for the campaign).
-- Built once per batchId and call: every counted event asks for its scopes several times.
local scopes_of = {[''] = {{base, ''}}}
local function scopes(batch)
  local found = scopes_of[batch]
  if not found then
    found = {{base, ''}, {base .. SUFFIX.batch .. batch, batch}}
    scopes_of[batch] = found
  end
  return found
end

-- A scope's keys of one day, {hours hash, fails hash}, and an hour's field names
-- ("09:calls"), each built once per call.
local day_keys, hour_fields = {}, {}
local function scope_day_keys(scope_base, day)
  local of_scope = day_keys[scope_base]
  if not of_scope then
    of_scope = {}
    day_keys[scope_base] = of_scope
  end
  local keys = of_scope[day]
  if not keys then
    local day_key = scope_base .. SUFFIX.day .. day
    keys = {day_key .. SUFFIX.hours, day_key .. SUFFIX.fails}
    of_scope[day] = keys
  end
  return keys
end

local function hour_field(hour, counter)
  local of_counter = hour_fields[counter]
  if not of_counter then
    of_counter = {}
    hour_fields[counter] = of_counter
  end
  local field = of_counter[hour]
  if not field then
    field = string.format('%02d:%s', hour, counter)
    of_counter[hour] = field
  end
  return field
end

-- The scope's totals hash. Asked for only to change it, so its packed row is marked due too.
-- Every total of a scope exists once the scope has a record: the API reads whole hashes.
local function totals_key(scope)
  local key = scope[1] .. SUFFIX.totals
  if not rows_due[key] then
    rows_due[key] = {base .. SUFFIX.rows, scope[2], TOTAL_FIELDS, true}
  end
  return key
end

local function bump_totals(batch, field, delta)
  for _, scope in ipairs(scopes(batch)) do
    bump(totals_key(scope), field, delta)
  end
end

local function bump_day(batch, day, expire_at, field)
  for _, scope in ipairs(scopes(batch)) do
    local key = scope[1] .. SUFFIX.day .. day
    bump(key, field, 1)
    if not rows_due[key] then
      local rows_key = base .. SUFFIX.day .. day .. SUFFIX.rows
      rows_due[key] = {rows_key, scope[2], DAILY_FIELDS, false}
      expiries[key] = expire_at
      expiries[rows_key] = expire_at
    end
  end
end

-- A day's counters per hour (HOUR_FIELD names the field after the hour: "09:calls"), in the day's
-- hours hash of each scope.
local function bump_hour(batch, day, expire_at, hour, counter, delta)
  local field = hour_field(hour, counter)
  for _, scope in ipairs(scopes(batch)) do
    local key = scope_day_keys(scope[1], day)[1]
    add(day_deltas, key, field, delta)
    expiries[key] = expire_at
  end
end

-- A failed call, by its failCode, in the day's fails hash of each scope.
local function count_failure(batch, day, expire_at, fail_code)
  for _, scope in ipairs(scopes(batch)) do
    local key = scope_day_keys(scope[1], day)[2]
    add(day_deltas, key, fail_code, 1)
    expiries[key] = expire_at
  end
end

-- A record's day value holds its flags for the day and, per flag, the hour of the day of the
-- earliest event that set it, plus one (0: none kept, as for a record marked before hours
-- were counted): flags + 4 * (first seen hour + 1) + 128 * (first finishing hour + 1). The
-- flags take the two low bits; each hour + 1 is at most 25, so it fits the five bits above
-- them (units 4 and 128, read back with % 32). At most 3,303: four digits, the same 8-byte
-- allocation in Redis as the flags alone. A record counts in the hour of its earliest event
-- of the day whatever order the events come in: an earlier one moves it.
local HOUR_UNIT = {[SEEN_TODAY] = 4, [FINISHED_TODAY] = 128}
local HOUR_COUNTER = {[SEEN_TODAY] = HOUR_FIELD.dailyCount, [FINISHED_TODAY] = HOUR_FIELD.dailyFinishCount}

-- Set a per-day flag of a record, and count it in its hour; true when the flag was not set
-- yet (the record counts once a day).
local function mark_day(data_id, batch, day, expire_at, hour, flag)
  local key = base .. SUFFIX.day .. day .. SUFFIX.records
  local entry = day_flags[key]
  if not entry then
    entry = {flags = {}, read = {}, order = {}}
    day_flags[key] = entry
    expiries[key] = expire_at
  end
  local flags = entry.flags[data_id]
  if not flags then
    flags = tonumber(call('HGET', key, data_id) or '0')
    entry.read[data_id] = flags
    entry.order[#entry.order + 1] = data_id
  end
  local unit, counter = HOUR_UNIT[flag], HOUR_COUNTER[flag]
  if band(flags, flag) == 0 then
    entry.flags[data_id] = flags + flag + unit * (hour + 1)
    bump_hour(batch, day, expire_at, hour, counter, 1)
    return true
  end
  local kept_hour_plus_one = math.floor(flags / unit) % 32
  if kept_hour_plus_one > hour + 1 then
    entry.flags[data_id] = flags + unit * (hour + 1 - kept_hour_plus_one)
    bump_hour(batch, day, expire_at, kept_hour_plus_one - 1, counter, -1)
    bump_hour(batch, day, expire_at, hour, counter, 1)
  else
    entry.flags[data_id] = flags
  end
  return false
end

local function record_state(data_id)
  return records[data_id] or call('HGET', records_key, data_id) or nil
end

local function set_record_state(data_id, state)
  if not records[data_id] then
    records_order[#records_order + 1] = data_id
  end
  records[data_id] = state
end

local function call_counted(call_id)
  return calls[call_id] or call('SISMEMBER', calls_key, call_id) == 1
end

-- batchId -> its small number, or false when the campaign has no such batch: read once per
-- call, as most events of a batch name the same few batches.
local batch_numbers = {}

local function known_batch_number(batch)
  local number = batch_numbers[batch]
  if number == nil then
    number = call('HGET', batches_key, batch) or false
    batch_numbers[batch] = number
  end
  return number
end

local function batch_number(batch)
  if batch == '' then
    return '0'
  end
  local number = known_batch_number(batch)
  if not number then
    -- Written at once (a new batch is rare): the next HLEN must count it.
    number = tostring(call('HLEN', batches_key) + 1)
    call('HSET', batches_key, batch, number)
    batch_numbers[batch] = number
  end
  return number
end

-- Whether a new record's batch is one the campaign has, or one more still fits under the limit.
local function batch_fits(batch)
  return max_batches == 0 or batch == '' or known_batch_number(batch)
    or call('HLEN', batches_key) < max_batches
end

local function count_record_event(event)
  local kind, data_id, call_id, batch = event[1], event[2], event[3], event[4]
  local connected, final = event[5] == 1, event[6] == 1
  local day, expire_at, hour, fail_code = event[7], event[8], event[9], event[10]

  local state = record_state(data_id)
  local flags, recorded_batch = 0, nil
  if state then
    local colon = string.find(state, ':', 1, true)
    if colon then
      flags = tonumber(string.sub(state, 1, colon - 1))
      recorded_batch = string.sub(state, colon + 1)
    else
      flags = tonumber(state)
      recorded_batch = '0'
    end
  end

  -- 1. duplicates: the same identity was counted before (a redelivery or an upstream retry)
  local duplicate
  if kind == 'c' then
    duplicate = call_counted(call_id)
  elseif kind == 'a' then
    duplicate = band(flags, ADDED) ~= 0
  else
    duplicate = band(flags, REMOVED) ~= 0
  end

  if duplicate then
    return 'D'
  else
    -- 2. contradictions: every event of a record carries the same batch, or none
    local conflict = false
    if state then
      local number = '0'
      if batch ~= '' then
        number = known_batch_number(batch) or '-1'
      end
      conflict = number ~= recorded_batch
    end

    if conflict then
      return 'C'
    elseif not state and not batch_fits(batch) then
      return 'L'
    else
      local known = state ~= nil
      local removed = band(flags, REMOVED) ~= 0
      local called = band(flags, CALLED) ~= 0
      local new_flags = flags
      for _, scope in ipairs(scopes(batch)) do
        totals_key(scope) -- the scope has a record now: its totals must exist
      end

      if kind == 'a' then
        new_flags = bor(new_flags, ADDED)
        if not known then
          bump_totals(batch, COUNTER.totalCount, 1)
          bump_totals(batch, COUNTER.unCallCount, 1)
        end
        if day ~= '' and mark_day(data_id, batch, day, expire_at, hour, SEEN_TODAY) then
          bump_day(batch, day, expire_at, COUNTER.dailyCount)
        end
      elseif kind == 'r' then
        new_flags = bor(new_flags, REMOVED)
        if known and not removed then
          bump_totals(batch, COUNTER.totalCount, -1)
          if not called then
            bump_totals(batch, COUNTER.unCallCount, -1)
          end
        end
      else
        if not calls[call_id] then
          calls_order[#calls_order + 1] = call_id
        end
        calls[call_id] = true
        new_flags = bor(new_flags, CALLED)
        if not known then
          bump_totals(batch, COUNTER.totalCount, 1)
        elseif not called and not removed then
          bump_totals(batch, COUNTER.unCallCount, -1)
        end
        bump_totals(batch, COUNTER.totalCalledCount, 1)
        if connected then
          bump_totals(batch, COUNTER.totalCallSucc, 1)
        end
        if final and band(flags, FINISHED) == 0 then
          new_flags = bor(new_flags, FINISHED)
          bump_totals(batch, COUNTER.totalFinishCount, 1)
        end
        if day ~= '' then
          bump_day(batch, day, expire_at, COUNTER.dailyCalledCount)
          bump_hour(batch, day, expire_at, hour, HOUR_FIELD.dailyCalledCount, 1)
          if connected then
            bump_day(batch, day, expire_at, COUNTER.dailyCallSucc)
            bump_hour(batch, day, expire_at, hour, HOUR_FIELD.dailyCallSucc, 1)
          else
            count_failure(batch, day, expire_at, fail_code)
          end
          if mark_day(data_id, batch, day, expire_at, hour, SEEN_TODAY) then
            bump_day(batch, day, expire_at, COUNTER.dailyCount)
          end
          if final and mark_day(data_id, batch, day, expire_at, hour, FINISHED_TODAY) then
            bump_day(batch, day, expire_at, COUNTER.dailyFinishCount)
          end
        end
      end

      local encoded = tostring(new_flags)
      local number = known and recorded_batch or batch_number(batch)
      if number ~= '0' then
        encoded = encoded .. ':' .. number
      end
      if encoded ~= state then
        set_record_state(data_id, encoded)
      end
      return 'A'
    end
  end
end

-- A campaign ends once: a second campaign.closed is a duplicate.
local function close_campaign()
  if life[4] or closed_now then
    return 'D'
  end
  closed_now = true
  return 'A'
end

local result = {}
for _, event in ipairs(events) do
  local letter
  if event[1] == 'x' then
    letter = close_campaign()
  else
    letter = count_record_event(event)
  end
  applied_any = applied_any or letter == 'A'
  result[#result + 1] = letter
end

-- The writes, once each. Lua's unpack takes a few thousand values at most: long argument
-- lists go in slices.
local SLICE = 2000
local function write(command, key, values)
  for first = 1, #values, SLICE do
    call(command, key, unpack(values, first, math.min(first + SLICE - 1, #values)))
  end
end

local function pairs_of(order, values)
  local flat = {}
  for _, name in ipairs(order) do
    flat[#flat + 1] = name
    flat[#flat + 1] = values[name]
  end
  return flat
end

write('HSET', records_key, pairs_of(records_order, records))
-- The lifecycle: the day the campaign was last active (written once a day), and its end.
local life_changes = {}
if applied_any and life[3] ~= today then
  life_changes = {LIFE.active, today}
end
if closed_now then
  life_changes[#life_changes + 1] = LIFE.closed
  life_changes[#life_changes + 1] = now
end
write('HSET', life_key, life_changes)
write('SADD', calls_key, calls_order)
for key, day in pairs(day_flags) do
  local changed = {}
  for _, data_id in ipairs(day.order) do
    if day.flags[data_id] ~= day.read[data_id] then
      changed[#changed + 1] = data_id
    end
  end
  write('HSET', key, pairs_of(changed, day.flags))
end

-- Counters and the packed rows the API reads (engine/read_statistics.lua): each changed
-- hash gets one HSET of the fields that changed, and its scope's row, in this same atomic
-- step, so that rows never disagree with the hashes. A whole VDN is then two HGETALLs per
-- campaign instead of two HMGETs per scope (docs/adr/0003-packed-rows.md).
local rows = {}         -- rows hash -> {row field, row, ...}
local campaign_rows_key = base .. SUFFIX.rows
local today_rows_key = base .. SUFFIX.day .. today_label .. SUFFIX.rows
local changed_totals, changed_today -- the campaign's own rows, when this call changed them
for key, due in pairs(rows_due) do
  local rows_key, scope_field, fields, keep_every_field = due[1], due[2], due[3], due[4]
  local deltas = increments[key] or {}
  local stored = call('HMGET', key, unpack(fields))
  local changed, values = {}, {}
  for i, field in ipairs(fields) do
    local delta = deltas[field] or 0
    -- a daily counter not incremented yet that day is absent from its hash, 0 in its row
    local value = tonumber(stored[i] or '0') + delta
    values[i] = string.format('%d', value)
    if delta ~= 0 or (keep_every_field and not stored[i]) then
      changed[#changed + 1] = field
      changed[#changed + 1] = values[i]
    end
  end
  if #changed > 0 then
    call('HSET', key, unpack(changed))
    local row = rows[rows_key]
    if not row then
      row = {}
      rows[rows_key] = row
    end
    local packed = table.concat(values, ',')
    row[#row + 1] = scope_field
    row[#row + 1] = packed
    if scope_field == '' and rows_key == campaign_rows_key then
      changed_totals = packed
    elseif scope_field == '' and rows_key == today_rows_key then
      changed_today = packed
    end
  end
end
for rows_key, row in pairs(rows) do
  call('HSET', rows_key, unpack(row))
end
-- The days' hours and failCodes: one HSET per hash of the fields that changed (an hour's
-- record may move to an earlier hour, so a sum can go down as well as up).
for key, of_key in pairs(day_deltas) do
  local fields, deltas = {}, {}
  for field, delta in pairs(of_key) do
    if delta ~= 0 then
      fields[#fields + 1] = field
      deltas[#deltas + 1] = delta
    end
  end
  if #fields > 0 then
    local stored = call('HMGET', key, unpack(fields))
    local changed = {}
    for i, field in ipairs(fields) do
      changed[#changed + 1] = field
      changed[#changed + 1] = string.format('%d', tonumber(stored[i] or '0') + deltas[i])
    end
    call('HSET', key, unpack(changed))
  end
end
for key, expire_at in pairs(expiries) do
  call('EXPIREAT', key, expire_at, 'NX')
end

-- A change of the campaign's counters as the statistics interface shows them (its totals and
-- today's daily counters), recorded for push (api/push/) in this same atomic step: a capped
-- stream per campaign holds the campaign's full counters after each call that changed them, and
-- the VDN's channel is told which campaign changed. The stream is the record (a subscriber
-- resumes from it); the message only wakes the API processes up, and one lost costs latency,
-- never a change. PUBLISH goes to replicas but not to the append-only file; the entry is one
-- XADD per call, whatever the call counted (docs/adr/0007-push.md).
if changes_kept > 0 and (changed_totals or changed_today) then
  local totals_row = changed_totals or call('HGET', campaign_rows_key, '') or ZERO_TOTALS
  local daily_row = changed_today or call('HGET', today_rows_key, '') or ZERO_DAILY
  call('XADD', base .. SUFFIX.changes, 'MAXLEN', '~', changes_kept, '*',
       CHANGE_FIELDS[1], today_label, CHANGE_FIELDS[2], totals_row, CHANGE_FIELDS[3], daily_row)
  if channel ~= '' then
    -- pcall: a user without the right to publish (an ACL without +@pubsub) must not fail the
    -- counting; the API processes then find the change on their sweep, late.
    redis.pcall('PUBLISH', channel, campaign_id)
  end
end

-- Progress per minute, for dashboards: the current minute accumulates in a small hash; when a
-- batch arrives in a later minute, the finished minute becomes one entry of a capped stream,
-- with the minute's start as its id (Grafana's Redis plugin draws it with XRANGE).
local totals = increments[base .. SUFFIX.totals] or {}
local calls_made = totals[COUNTER.totalCalledCount] or 0
local connects = totals[COUNTER.totalCallSucc] or 0
local finished = totals[COUNTER.totalFinishCount] or 0
if calls_made > 0 or finished > 0 then
  local current_key, stream_key = base .. SUFFIX.progress_current, base .. SUFFIX.progress
  local current = call('HMGET', current_key, 'minute', unpack(PROGRESS_FIELDS))
  local open_minute = tonumber(current[1])
  local sums = {tonumber(current[2] or '0'), tonumber(current[3] or '0'),
                tonumber(current[4] or '0')}
  local update = {}
  local fresh_minute = false
  if open_minute and open_minute < minute_ms then
    -- pcall: an id not above the stream's last (a worker clock behind another's after a
    -- rebalance) loses that minute's entry; it must never fail the counting above.
    redis.pcall('XADD', stream_key, 'MAXLEN', '~', 2880, current[1] .. '-0',
                PROGRESS_FIELDS[1], sums[1], PROGRESS_FIELDS[2], sums[2],
                PROGRESS_FIELDS[3], sums[3])
    open_minute = nil
    sums = {0, 0, 0}
  end
  if not open_minute then
    update = {'minute', ARGV[3]}
    fresh_minute = true
  end
  -- A new minute writes all three sums; an open one only those that grew.
  for i, added in ipairs({calls_made, connects, finished}) do
    if added > 0 or fresh_minute then
      update[#update + 1] = PROGRESS_FIELDS[i]
      update[#update + 1] = string.format('%d', sums[i] + added)
    end
  end
  call('HSET', current_key, unpack(update))
end

return table.concat(result)

-- Part: rolling windows. Per scope, its calls, connects, abandoned calls and finished records
--       per minute, hour and day, over its life, the minute of its latest call, and the sum of
--       each window (isales_stats/core/windows.py, docs/adr/0008-rolling-windows.md).
-- Reads:  the window hash (SUFFIX.window) of each scope this call counted a call of: one HMGET
--         of its sums, life, last and the buckets of the calls; when its current buckets moved
--         since its sums were worked out, one more of the buckets that left a window (HGETALL
--         when more left one than it holds).
-- Writes: one HSET per window hash of the buckets, sums, life and last that changed, and one
--         HDEL of the buckets older than every window of their kind, when some are
--         (flush_windows); keeps the campaign's sums and today's bucket for notifications.lua
--         (campaign_windows).
--
-- Calls are tallied per batch and minute as they are counted (one table per minute, no string
-- built); at the end each minute goes into its hour and day, and the campaign's scope sums its
-- batches'. Buckets are numbered without a calendar: the minute since the epoch, the hour
-- (minute - ARG.hour_shift) // 60 of the VDN's zone, the day since 1970-01-01 of the event's
-- date in that zone. A window is the sum of its kind's buckets numbered from its first
-- (current - size + 1) on, later ones included.

-- Where each count stands in a bucket (named apart from idempotence.lua's record flags).
local CALLS_AT, CONNECTS_AT = BUCKET_COUNT.calls, BUCKET_COUNT.connects
local ABANDONED_AT, FINISHED_AT = BUCKET_COUNT.abandoned, BUCKET_COUNT.finished
local BUCKET_KINDS = {'minute', 'hour', 'day'}
local floor = math.floor
local hour_shift = tonumber(ARG.hour_shift)

-- The most buckets a window of each kind holds: older buckets are in none, never written.
local kept = {}
for _, window in ipairs(WINDOWS) do
  kept[window.kind] = math.max(kept[window.kind] or 0, window.size)
end

local kind_of_prefix = {} -- a bucket field's first letter -> its kind
for _, kind in ipairs(BUCKET_KINDS) do
  kind_of_prefix[BUCKET_PREFIX[kind]] = kind
end

-- Days since 1970-01-01 of a "YYYY-MM-DD" date (Howard Hinnant's days_from_civil, in a
-- calendar whose years start in March so that the leap day is the last of its year).
local function days_from_civil(label)
  local year = tonumber(string.sub(label, 1, 4))
  local month = tonumber(string.sub(label, 6, 7))
  local day = tonumber(string.sub(label, 9, 10))
  if month <= 2 then
    year = year - 1
  end
  local era = floor(year / 400)
  local year_of_era = year - era * 400
  local day_of_year = floor((153 * ((month + 9) % 12) + 2) / 5) + day - 1
  local day_of_era = year_of_era * 365 + floor(year_of_era / 4) - floor(year_of_era / 100)
                     + day_of_year
  return era * 146097 + day_of_era - 719468
end

local day_numbers = {} -- "YYYY-MM-DD" -> its number, worked out once per label and call
local function day_number(label)
  local number = day_numbers[label]
  if not number then
    number = days_from_civil(label)
    day_numbers[label] = number
  end
  return number
end

-- The buckets current on the worker's clock. A scope whose sums were worked out at later ones
-- (another worker's clock ahead) keeps those: current buckets never go back.
local worker_now = {minute = floor(tonumber(ARG.minute_ms) / 60000)}
worker_now.hour = floor((worker_now.minute - hour_shift) / 60)
worker_now.day = day_number(ARG.today)
-- Buckets before these are in no window whatever a scope's current buckets: never written.
local first_kept = {}
for _, kind in ipairs(BUCKET_KINDS) do
  first_kept[kind] = worker_now[kind] - kept[kind] + 1
end

-- This call's calls, per batch ('' none) and minute: batchId -> {minute -> counts}. A minute's
-- hour and day buckets are worked out at the end, once per minute, not once per call.
local tallies = {}
-- The campaign's windows after this call, when it counted a call and notifications are on:
-- {now = its current buckets, sums = each window's sum (WINDOWS order), today = its day bucket
-- of now}, what notifications.lua compares with the abandon limit.
local campaign_windows = nil
local day_of_minute = {} -- minute -> its day in the VDN's zone ('' older than the retention)
local latest_minute = {} -- batchId -> the minute of its latest call in this call

-- A counted call. `day` is its date in the VDN's zone, or '' when that is older than the
-- retention: in no window (the retention holds 30 days at least), in the scope's life only.
-- `finished`: it was its record's first final call.
local function count_in_windows(batch, minute, day, connected, abandoned, finished)
  local tally = tallies[batch]
  if not tally then
    tally = {}
    tallies[batch] = tally
  end
  if not latest_minute[batch] or minute > latest_minute[batch] then
    latest_minute[batch] = minute
  end
  if minute < first_kept.minute then
    -- In no minute window: tallied under the first minute of its hour (same hour, same day),
    -- so that a call spread over many hours of calls makes one entry per hour, not per minute.
    minute = floor((minute - hour_shift) / 60) * 60 + hour_shift
  end
  local counts = tally[minute]
  if not counts then
    counts = {0, 0, 0, 0}
    tally[minute] = counts
    day_of_minute[minute] = day
  end
  counts[CALLS_AT] = counts[CALLS_AT] + 1
  if connected then
    counts[CONNECTS_AT] = counts[CONNECTS_AT] + 1
  elseif abandoned then
    counts[ABANDONED_AT] = counts[ABANDONED_AT] + 1
  end
  if finished then
    counts[FINISHED_AT] = counts[FINISHED_AT] + 1
  end
end

local function packed_counts(counts)
  return string.format('%d,%d,%d,%d', counts[1], counts[2], counts[3], counts[4])
end

-- A stored bucket's counts; what is not a number counts as 0 (a hash edited by hand must not
-- stop the counting of its campaign).
local function counts_of(text)
  local counts, i = {0, 0, 0, 0}, 1
  for number in string.gmatch(text or ZERO_BUCKET, '[^,]+') do
    if i > 4 then
      break
    end
    counts[i] = tonumber(number) or 0
    i = i + 1
  end
  return counts
end

local function add_counts(into, counts, sign)
  for i = 1, 4 do
    into[i] = into[i] + sign * counts[i]
  end
end

-- A scope's buckets, life and latest minute of this call, from minute tallies.
local function new_scope_tally()
  return {minute = {}, hour = {}, day = {}, life = {0, 0, 0, 0}, last = nil}
end

local function add_to_bucket(buckets, number, counts)
  local sum = buckets[number]
  if not sum then
    sum = {0, 0, 0, 0}
    buckets[number] = sum
  end
  add_counts(sum, counts, 1)
end

-- Each minute's counts in its scope's life and in its minute, hour and day, those that can be
-- in a window (the rest are older than every window of their kind whatever the scope's
-- current buckets: not written).
local function add_minutes(scope, minutes, latest)
  if not scope.last or latest > scope.last then
    scope.last = latest
  end
  for minute, counts in pairs(minutes) do
    add_counts(scope.life, counts, 1)
    local day = day_of_minute[minute]
    if day ~= '' then
      if minute >= first_kept.minute then
        add_to_bucket(scope.minute, minute, counts)
      end
      local hour = floor((minute - hour_shift) / 60)
      if hour >= first_kept.hour then
        add_to_bucket(scope.hour, hour, counts)
      end
      local number = day_number(day)
      if number >= first_kept.day then
        add_to_bucket(scope.day, number, counts)
      end
    end
  end
end

-- Exactly `count` numbers separated by commas, or nil.
local function numbers_of(text, count)
  local numbers = {}
  for piece in string.gmatch(text, '[^,]+') do
    numbers[#numbers + 1] = tonumber(piece)
    if not numbers[#numbers] then
      return nil
    end
  end
  if #numbers ~= count then
    return nil
  end
  return numbers
end

-- The stored sums field, "M,H,D;m5;...": the buckets it was worked out at and each window's
-- sum, in the order of WINDOWS. Nil and zeros for a scope with no window hash yet; nil, zeros
-- and true for a field that is not of that form (then the sums are worked out again).
local function parse_sums(text)
  local sums = {}
  for i = 1, #WINDOWS do
    sums[i] = {0, 0, 0, 0}
  end
  if not text then
    return nil, sums, false
  end
  local pieces = {}
  for piece in string.gmatch(text, '[^;]+') do
    pieces[#pieces + 1] = piece
  end
  local numbers = #pieces == #WINDOWS + 1 and numbers_of(pieces[1], 3)
  if not numbers then
    return nil, sums, true
  end
  for i = 1, #WINDOWS do
    local counts = numbers_of(pieces[i + 1], 4)
    if not counts then
      return nil, sums, true
    end
    sums[i] = counts
  end
  return {minute = numbers[1], hour = numbers[2], day = numbers[3]}, sums, false
end

local function packed_sums(now, sums)
  local parts = {string.format('%d,%d,%d', now.minute, now.hour, now.day)}
  for i = 1, #WINDOWS do
    parts[i + 1] = packed_counts(sums[i])
  end
  return table.concat(parts, ';')
end

-- A bucket's counts added to the sum of every window of its kind it is in at `now`.
local function add_to_windows(sums, now, kind, number, counts)
  for w, window in ipairs(WINDOWS) do
    if window.kind == kind and number >= now[kind] - window.size + 1 then
      add_counts(sums[w], counts, 1)
    end
  end
end

-- Every window summed again from the whole hash, at `now`; and the buckets older than every
-- window of their kind, to delete. For a gap longer than a window (a scope with no call for a
-- while): walking it bucket by bucket would read more than the hash holds.
local function summed_again(key, now, sums, stale)
  local hash = call('HGETALL', key)
  for i = 1, #WINDOWS do
    sums[i] = {0, 0, 0, 0}
  end
  for i = 1, #hash, 2 do
    local field = hash[i]
    local kind = kind_of_prefix[string.sub(field, 1, 1)]
    local number = kind and tonumber(string.sub(field, 2))
    if number then
      if number < now[kind] - kept[kind] + 1 then
        stale[#stale + 1] = field
      else
        add_to_windows(sums, now, kind, number, counts_of(hash[i + 1]))
      end
    end
  end
end

-- Each window's sum moved from the buckets current at `at` to those at `now`: the buckets
-- that left it ([at - size + 1, now - size]) are read by number and taken off. Those that left
-- the largest window of their kind left every window: `stale`, to delete. False when some
-- window's gap is longer than it (then sum them again, summed_again).
local function moved_on(key, at, now, sums, stale)
  local fields, leaving = {}, {}
  for w, window in ipairs(WINDOWS) do
    local kind, size = window.kind, window.size
    local gap = now[kind] - at[kind]
    if gap > size then
      return false
    end
    for number = at[kind] - size + 1, now[kind] - size do
      local field = BUCKET_PREFIX[kind] .. number
      if not leaving[field] then
        leaving[field] = {}
        fields[#fields + 1] = field
      end
      local of_field = leaving[field]
      of_field[#of_field + 1] = w
    end
  end
  if #fields == 0 then
    return true
  end
  local stored = call('HMGET', key, unpack(fields))
  for i, field in ipairs(fields) do
    if stored[i] then
      local counts = counts_of(stored[i])
      for _, w in ipairs(leaving[field]) do
        add_counts(sums[w], counts, -1)
      end
      local kind = kind_of_prefix[string.sub(field, 1, 1)]
      if tonumber(string.sub(field, 2)) < now[kind] - kept[kind] + 1 then
        stale[#stale + 1] = field
      end
    end
  end
  return true
end

-- One scope's window hash: read once, corrected for the time passed since its sums, this
-- call's tally added, written once.
local function write_window(key, tally, with_today)
  local fields = {WINDOW_FIELD.sums, WINDOW_FIELD.life, WINDOW_FIELD.last}
  local touched = {} -- {kind, number, counts} of each bucket this call adds to
  for _, kind in ipairs(BUCKET_KINDS) do
    for number, counts in pairs(tally[kind]) do
      fields[#fields + 1] = BUCKET_PREFIX[kind] .. number
      touched[#touched + 1] = {kind, number, counts}
    end
  end
  if with_today then
    -- today's day bucket as stored, read with the rest (notifications.lua's today window)
    fields[#fields + 1] = BUCKET_PREFIX.day .. worker_now.day
  end
  local stored = call('HMGET', key, unpack(fields))
  local at, sums, unreadable = parse_sums(stored[1])
  local now = worker_now
  local stale = {}
  if at then
    now = {}
    local moved = false
    for _, kind in ipairs(BUCKET_KINDS) do
      now[kind] = math.max(at[kind], worker_now[kind])
      moved = moved or now[kind] ~= at[kind]
    end
    if moved and not moved_on(key, at, now, sums, stale) then
      summed_again(key, now, sums, stale)
    end
  elseif unreadable then
    summed_again(key, now, sums, stale)
  end

  local changed = {}
  for i, bucket in ipairs(touched) do
    local kind, number, counts = bucket[1], bucket[2], bucket[3]
    if number >= now[kind] - kept[kind] + 1 then
      local value = counts_of(stored[i + 3])
      add_counts(value, counts, 1)
      changed[#changed + 1] = fields[i + 3]
      changed[#changed + 1] = packed_counts(value)
      add_to_windows(sums, now, kind, number, counts)
    end
  end
  local life = counts_of(stored[2])
  add_counts(life, tally.life, 1)
  changed[#changed + 1] = WINDOW_FIELD.life
  changed[#changed + 1] = packed_counts(life)
  changed[#changed + 1] = WINDOW_FIELD.sums
  changed[#changed + 1] = packed_sums(now, sums)
  local last = tonumber(stored[3])
  if not last or tally.last > last then
    changed[#changed + 1] = WINDOW_FIELD.last
    changed[#changed + 1] = string.format('%d', tally.last)
  end
  if #stale > 0 then
    write('HDEL', key, stale)
  end
  call('HSET', key, unpack(changed))
  if with_today then
    local today_text = stored[#fields]
    if now.day ~= worker_now.day then -- another worker's clock ahead set the current buckets
      today_text = call('HGET', key, BUCKET_PREFIX.day .. now.day)
    end
    local today = counts_of(today_text)
    if tally.day[now.day] then
      add_counts(today, tally.day[now.day], 1)
    end
    return {now = now, sums = sums, today = today}
  end
end

-- Every scope with a call counted by this call: each batch's, and the campaign's, which holds
-- every batch's calls (and those of its records without a batch).
local function flush_windows()
  if next(tallies) == nil then
    return
  end
  local campaign = new_scope_tally()
  for batch, minutes in pairs(tallies) do
    add_minutes(campaign, minutes, latest_minute[batch])
    if batch ~= '' then
      local scope = new_scope_tally()
      add_minutes(scope, minutes, latest_minute[batch])
      write_window(base .. SUFFIX.batch .. batch .. SUFFIX.window, scope)
    end
  end
  campaign_windows = write_window(base .. SUFFIX.window, campaign, ARG.notifications == '1')
end

-- Part: history. A day's counters per hour, and its failed calls by failCode, per scope.
-- Reads:  the hours and fails hashes of the days touched (only at the end, to add to them).
-- Writes: {scope}:day:{D}:hours ("09:calls" -> count) and {scope}:day:{D}:fails
--         (failCode -> failed calls), one HSET per hash of the fields that changed, expiring
--         with the day (flush_history).
--
-- Hours are elapsed from the day's start in the VDN's zone (23 or 25 on days whose clocks
-- change). HOUR_FIELD names the field after the hour: HOUR_FIELD.dailyCalledCount is 'calls'.

local day_deltas = {} -- a day's hours or fails hash -> {field -> delta}

-- The failCodes of an abandoned call (ARG.abandon_fail_codes), as a set: the hours here and
-- the rolling windows (windows.lua) count the same calls as abandoned.
local abandoning = {}
for code in string.gmatch(ARG.abandon_fail_codes, '[^,]+') do
  abandoning[code] = true
end

-- A scope's keys of one day, {hours hash, fails hash}, and an hour's field names ("09:calls"),
-- each built once per call.
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

-- Count `delta` in an hour's `counter` (a HOUR_FIELD value), in the day's hours hash of each
-- scope.
local function bump_hour(batch, day, expire_at, hour, counter, delta)
  local field = hour_field(hour, counter)
  for _, scope in ipairs(scopes(batch)) do
    local key = scope_day_keys(scope[1], day)[1]
    add(day_deltas, key, field, delta)
    expiries[key] = expire_at
  end
end

-- A failed call in the hour it occurred: by its failCode, in the day's fails hash of each
-- scope; an abandoned one (its failCode in `abandoning`) in its hour too.
local function count_failure(batch, day, expire_at, hour, fail_code)
  for _, scope in ipairs(scopes(batch)) do
    local key = scope_day_keys(scope[1], day)[2]
    add(day_deltas, key, fail_code, 1)
    expiries[key] = expire_at
  end
  if abandoning[fail_code] then
    bump_hour(batch, day, expire_at, hour, HOUR_FIELD.abandonedCalls, 1)
  end
end

-- One HSET per hash of the fields that changed (an hour's record may move to an earlier hour,
-- so a sum can go down as well as up).
local function flush_history()
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
end

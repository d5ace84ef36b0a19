-- Part: totals and days. The counters of iSales' statistics interface, per scope.
-- Reads:  the day's record flags ({campaign}:day:{D}:records: dataId -> flags and first hours).
-- Writes: through the buffers, the scope's totals hash (SUFFIX.totals) and day hash
--         (SUFFIX.day .. D), each marked due for its packed row (rows.lua); the day's record
--         flags, once per day hash, only those that changed (flush_day_flags).

local day_flags = {} -- day records key -> {flags = {dataId -> flags}, read = {as in Redis
                     -- before}, order = {dataIds}}
-- per-day record flags
local SEEN_TODAY, FINISHED_TODAY = 1, 2

-- The scope's totals hash. Asked for only to change it, so its packed row is marked due too.
-- Every total of a scope exists once the scope has a record: the API reads whole hashes.
local function totals_key(scope)
  local key = scope[1] .. SUFFIX.totals
  mark_row_due(key, campaign_rows_key, scope[2], TOTAL_FIELDS, true)
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
      mark_row_due(key, rows_key, scope[2], DAILY_FIELDS, false)
      expiries[key] = expire_at
      expiries[rows_key] = expire_at
    end
  end
end

-- A record's day value holds its flags for the day and, per flag, the hour of the day of the
-- earliest event that set it, plus one (0: none kept, as for a record marked before hours
-- were counted): flags + 4 * (first seen hour + 1) + 128 * (first finishing hour + 1). The
-- flags take the two low bits; each hour + 1 is at most 25, so it fits the five bits above
-- them (units 4 and 128, read back with % 32). At most 3,303: four digits, the same 8-byte
-- allocation in Redis as the flags alone. A record counts in the hour of its earliest event
-- of the day whatever order the events come in: an earlier one moves it (history.lua).
local HOUR_UNIT = {[SEEN_TODAY] = 4, [FINISHED_TODAY] = 128}
local HOUR_COUNTER = {[SEEN_TODAY] = HOUR_FIELD.dailyCount,
                      [FINISHED_TODAY] = HOUR_FIELD.dailyFinishCount}

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

local function flush_day_flags()
  for key, day in pairs(day_flags) do
    local changed = {}
    for _, data_id in ipairs(day.order) do
      if day.flags[data_id] ~= day.read[data_id] then
        changed[#changed + 1] = data_id
      end
    end
    write('HSET', key, pairs_of(changed, day.flags))
  end
end

-- Read what the abandon rate and the pacing of campaigns are worked out from, as one snapshot.
-- (Key suffixes, window fields and the windows come from the prelude: engine/scripts.py.)
--
-- KEYS[i]  the rows hash of campaign i, "{prefix}:{vdnId:campaignId}:rows" (on a Redis Cluster
--          one campaign per call: its key names the slot, and its scopes' window hashes share
--          its hash tag)
-- ARGV[1]  a batchId to restrict the batches to, or "" for every batch
-- ARGV[2]  the reader's current minute, hour and day numbers, "M,H,D" (core/windows.py)
-- ARGV[3]  the first epoch minute of each window at the reader's now, in the order of WINDOWS,
--          comma-separated: a scope whose latest call is older has nothing in that window
-- return   per campaign: false when it is unknown, else {scopes, numbers, lasts}, each one string:
--          scopes the fields of its rows hash ("" the campaign, any other a batchId) joined by
--          newlines (an id holds no control character: core/events.py); numbers per scope, in
--          that order, its totals row (TOTAL_COUNTERS) then "today;life;m5;m15;m60;h24;d30",
--          each "calls,connects,abandoned,finished" (today: the day bucket of the reader's day),
--          the scopes joined by ";"; lasts per scope the epoch minute of its latest call, or ""
--          when it made none, joined by ",".
--
-- Three strings per campaign rather than arrays of strings per scope: the reader (in Python)
-- then parses a campaign's numbers in one call, and its time per scope went to taking nested
-- replies apart.
--
-- The counting script keeps each window's sum as of the buckets that were current when it last
-- counted a call of the scope (the window hash's sums field, docs/adr/0008-rolling-windows.md).
-- When the reader's buckets are those, the sums are the answer. When the clock moved on since
-- (a scope with no call since), each window subtracts the buckets that left it, fetched by
-- number in one more HMGET; it is zero at once when the scope's latest call is older than its
-- first bucket, and summed from the whole hash when more buckets left it than it holds (only
-- calls stamped ahead of the clock can then be in it). When the reader's clock is behind the
-- counting worker's, the sums are taken as they are, as the counting script takes them.
--
-- What a stale scope costs is Lua's work on strings and tables, not the second HMGET: few scopes
-- have a leaving bucket to fetch (a window whose latest call is older is zero at once). Asking
-- the first HMGET for the likely leaving buckets too was measured slower: every scope then
-- paid for the extra fields.

local only_batch = ARGV[1]
local call = redis.call

local function split_numbers(text)
  local numbers = {}
  for number in string.gmatch(text, '[^,]+') do
    numbers[#numbers + 1] = tonumber(number)
  end
  return numbers
end

local now = {}
do
  local numbers = split_numbers(ARGV[2])
  now.minute, now.hour, now.day = numbers[1], numbers[2], numbers[3]
end
local first_minute = split_numbers(ARGV[3])
local today_field = BUCKET_PREFIX.day .. now.day

-- What a scope answers when its hash was not written by the counting script: the reader refuses
-- it, naming the campaign (engine/decisions.py), rather than the script failing on it.
local CORRUPT = 'corrupt'
-- The windows of a scope that has no sums yet (no call counted).
local NO_WINDOWS = string.rep(ZERO_BUCKET .. ';', #WINDOWS - 1) .. ZERO_BUCKET

-- Two packed buckets ("c,n,a,f") added, or the second subtracted (sign -1), packed.
local function combined(packed_sum, bucket, sign)
  local a1, a2, a3, a4 = string.match(packed_sum, '^(%d+),(%d+),(%d+),(%d+)$')
  local b1, b2, b3, b4 = string.match(bucket, '^(%d+),(%d+),(%d+),(%d+)$')
  if not (a4 and b4) then
    return CORRUPT
  end
  return string.format('%d,%d,%d,%d', a1 + sign * b1, a2 + sign * b2, a3 + sign * b3,
                       a4 + sign * b4)
end

-- The stored sums ("M,H,D;m5;...;d30") corrected to the reader's buckets: "m5;...;d30". Only a
-- leaving bucket that holds something costs any arithmetic; most buckets of a scope are empty.
--
-- Most of a stale read's time goes to taking the sums apart, so one string.match does it: a
-- gmatch loop per scope cost more than the rest of the correction.
local SUMS_PATTERN = '^(%d+),(%d+),(%d+)' .. string.rep(';([^;]+)', #WINDOWS) .. '$'
local STORED_AT = 3  -- parts[1..3]: the minute, hour and day the sums were worked out at
local EMPTY = {}  -- never written to
-- Per window (WINDOWS' order), what correcting it needs, looked up once rather than per scope:
-- where its kind's stored bucket number stands in the parts, the reader's current bucket of
-- that kind, its size, and its buckets' prefix.
local STORED_OF, NOW_OF, SIZE_OF, PREFIX_OF = {}, {}, {}, {}
do
  local kind_at = {minute = 1, hour = 2, day = 3}
  for i, window in ipairs(WINDOWS) do
    STORED_OF[i], NOW_OF[i] = kind_at[window.kind], now[window.kind]
    SIZE_OF[i], PREFIX_OF[i] = window.size, BUCKET_PREFIX[window.kind]
  end
end
local function corrected(window_key, sums_text, last)
  local parts = {string.match(sums_text, SUMS_PATTERN)}
  if #parts ~= STORED_AT + #WINDOWS then
    return CORRUPT
  end
  -- The buckets to subtract, and the part (window) each leaves; the windows summed afresh. Made
  -- only when needed: a table per scope and window costs, and most windows need none.
  local fields, leaves, whole = EMPTY, EMPTY, EMPTY
  for i = 1, #WINDOWS do
    local current, at_sums, size = NOW_OF[i], tonumber(parts[STORED_OF[i]]), SIZE_OF[i]
    if current > at_sums then
      if last < first_minute[i] then
        parts[STORED_AT + i] = ZERO_BUCKET
      elseif current - at_sums >= size then
        if whole == EMPTY then
          whole = {}
        end
        whole[#whole + 1] = i
      else
        if fields == EMPTY then
          fields, leaves = {}, {}
        end
        local prefix = PREFIX_OF[i]
        for number = at_sums - size + 1, current - size do
          fields[#fields + 1] = prefix .. number
          leaves[#fields] = STORED_AT + i
        end
      end
    end
  end
  if #fields > 0 then
    local values = call('HMGET', window_key, unpack(fields))
    for j = 1, #fields do
      if values[j] then
        parts[leaves[j]] = combined(parts[leaves[j]], values[j], -1)
      end
    end
  end
  if #whole > 0 then
    local flat = call('HGETALL', window_key)
    for _, i in ipairs(whole) do
      local window = WINDOWS[i]
      local prefix, first = BUCKET_PREFIX[window.kind], now[window.kind] - window.size + 1
      local sum = ZERO_BUCKET
      for j = 1, #flat, 2 do
        local field = flat[j]
        if string.sub(field, 1, #prefix) == prefix then
          local number = tonumber(string.sub(field, #prefix + 1))
          if number and number >= first then
            sum = combined(sum, flat[j + 1], 1)
          end
        end
      end
      parts[STORED_AT + i] = sum
    end
  end
  return table.concat(parts, ';', STORED_AT + 1)
end

-- Appends a scope's windows to its campaign's numbers, and returns its latest call ("" none).
local function read_windows(window_key, numbers)
  local values = call('HMGET', window_key, today_field, WINDOW_FIELD.life, WINDOW_FIELD.last,
                      WINDOW_FIELD.sums)
  local today, life, last, sums = values[1], values[2], values[3], values[4]
  local n = #numbers
  numbers[n + 1], numbers[n + 2] = today or ZERO_BUCKET, life or ZERO_BUCKET
  if not sums then
    numbers[n + 3] = NO_WINDOWS
    return last or ''
  end
  local at = string.find(sums, ';', 1, true)
  if at and string.sub(sums, 1, at - 1) == ARGV[2] then
    numbers[n + 3] = string.sub(sums, at + 1)  -- fresh: counted at the reader's buckets
  else
    numbers[n + 3] = corrected(window_key, sums, tonumber(last) or -1)
  end
  return last or ''
end

local function read_campaign(rows_key)
  local base = string.sub(rows_key, 1, -#SUFFIX.rows - 1)
  local totals
  if only_batch == '' then
    totals = call('HGETALL', rows_key)
    if #totals == 0 then
      return false
    end
  else
    local rows = call('HMGET', rows_key, '', only_batch)
    if not rows[1] then
      return false
    end
    totals = {'', rows[1]}
    if rows[2] then
      totals[3], totals[4] = only_batch, rows[2]
    end
  end
  local scopes, numbers, lasts = {}, {}, {}
  for i = 1, #totals, 2 do
    local scope = totals[i]
    local window_key = base .. SUFFIX.window
    if scope ~= '' then
      window_key = base .. SUFFIX.batch .. scope .. SUFFIX.window
    end
    scopes[#scopes + 1] = scope
    numbers[#numbers + 1] = totals[i + 1]
    lasts[#lasts + 1] = read_windows(window_key, numbers)
  end
  return {table.concat(scopes, '\n'), table.concat(numbers, ';'), table.concat(lasts, ',')}
end

local replies = {}
for i, rows_key in ipairs(KEYS) do
  replies[i] = read_campaign(rows_key)
end
return replies

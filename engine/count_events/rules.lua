-- Part: the counting rules. What each kind of event does to a record and its counters.
-- Reads:  the record's state (idempotence.lua) and the event (EVENT.* of engine/contract.py).
-- Writes: through the other parts' buffers only.
--
-- A record's first event counts it (totalCount, and unCallCount until it is called), whatever
-- its kind; a data.removed takes it off; a call.result counts the call, its connection, and
-- the record's finish once, and the call in its scopes' rolling windows (windows.lua). Daily
-- counters count a record once a day (totals_and_days.lua's day flags) and the calls of that
-- day; a day older than the retention counts in the totals only (EVENT.day is "").

local function count_added(e, known)
  if not known then
    bump_totals(e.batch, COUNTER.totalCount, 1)
    bump_totals(e.batch, COUNTER.unCallCount, 1)
  end
  if e.day ~= '' and mark_day(e.data_id, e.batch, e.day, e.expire_at, e.hour, SEEN_TODAY) then
    bump_day(e.batch, e.day, e.expire_at, COUNTER.dailyCount)
  end
end

local function count_removed(e, known, flags)
  if known and band(flags, REMOVED) == 0 then
    bump_totals(e.batch, COUNTER.totalCount, -1)
    if band(flags, CALLED) == 0 then
      bump_totals(e.batch, COUNTER.unCallCount, -1)
    end
  end
end

-- Returns the record's new flags.
local function count_call(e, known, flags)
  local new_flags = bor(flags, CALLED)
  note_call(e.call_id)
  if not known then
    bump_totals(e.batch, COUNTER.totalCount, 1)
  elseif band(flags, CALLED) == 0 and band(flags, REMOVED) == 0 then
    bump_totals(e.batch, COUNTER.unCallCount, -1)
  end
  bump_totals(e.batch, COUNTER.totalCalledCount, 1)
  if e.connected then
    bump_totals(e.batch, COUNTER.totalCallSucc, 1)
  end
  local finishes = e.final and band(flags, FINISHED) == 0
  if finishes then
    new_flags = bor(new_flags, FINISHED)
    bump_totals(e.batch, COUNTER.totalFinishCount, 1)
  end
  count_in_windows(e.batch, e.minute, e.day, e.connected, abandoning[e.fail_code], finishes)
  local day = e.day
  if day ~= '' then
    local batch, expire_at, hour = e.batch, e.expire_at, e.hour
    bump_day(batch, day, expire_at, COUNTER.dailyCalledCount)
    bump_hour(batch, day, expire_at, hour, HOUR_FIELD.dailyCalledCount, 1)
    if e.connected then
      bump_day(batch, day, expire_at, COUNTER.dailyCallSucc)
      bump_hour(batch, day, expire_at, hour, HOUR_FIELD.dailyCallSucc, 1)
    else
      count_failure(batch, day, expire_at, hour, e.fail_code)
    end
    if mark_day(e.data_id, batch, day, expire_at, hour, SEEN_TODAY) then
      bump_day(batch, day, expire_at, COUNTER.dailyCount)
    end
    if e.final and mark_day(e.data_id, batch, day, expire_at, hour, FINISHED_TODAY) then
      bump_day(batch, day, expire_at, COUNTER.dailyFinishCount)
    end
  end
  return new_flags
end

-- The event being counted, by name: one table filled for each event (none allocated per event).
local e = {}

-- One event of a record: its verdict (VERDICT.*).
local function count_record_event(event)
  e.kind, e.data_id, e.call_id = event[EVENT.kind], event[EVENT.data_id], event[EVENT.call_id]
  e.batch, e.connected, e.final = event[EVENT.batch_id], event[EVENT.connected] == 1,
                                  event[EVENT.final] == 1
  e.day, e.expire_at, e.hour = event[EVENT.day], event[EVENT.expire_at], event[EVENT.hour]
  e.fail_code, e.minute = event[EVENT.fail_code], event[EVENT.minute]
  local state, flags, recorded_batch = record_state(e.data_id)

  -- 1. duplicates: the same identity was counted before (a redelivery or an upstream retry)
  local duplicate
  if e.kind == 'c' then
    duplicate = call_counted(e.call_id)
  elseif e.kind == 'a' then
    duplicate = band(flags, ADDED) ~= 0
  else
    duplicate = band(flags, REMOVED) ~= 0
  end
  if duplicate then
    return VERDICT.DUPLICATE
  end
  -- 2. contradictions, and a new record beyond the campaign's batches
  if state and contradicts_batch(e.batch, recorded_batch) then
    return VERDICT.CONFLICT
  elseif not state and not batch_fits(e.batch) then
    return VERDICT.OVER_LIMIT
  end
  -- 3. counted
  local known = state ~= nil
  for _, scope in ipairs(scopes(e.batch)) do
    totals_key(scope) -- the scope has a record now: its totals must exist
  end
  local new_flags
  if e.kind == 'a' then
    new_flags = bor(flags, ADDED)
    count_added(e, known)
  elseif e.kind == 'r' then
    new_flags = bor(flags, REMOVED)
    count_removed(e, known, flags)
  else
    new_flags = count_call(e, known, flags)
  end
  remember_record(e.data_id, state, new_flags, recorded_batch, e.batch)
  return VERDICT.APPLIED
end

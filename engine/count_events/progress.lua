-- Part: progress per minute, for dashboards.
-- Reads:  the campaign's open minute (SUFFIX.progress_current: minute, calls, connects,
--         finished).
-- Writes: the open minute's sums; when a call arrives in a later minute, the finished minute
--         as one entry of the capped progress stream (SUFFIX.progress), with the minute's start
--         as its id (Grafana's Redis plugin draws it with XRANGE) (record_progress).

local function record_progress()
  local totals = increments[base .. SUFFIX.totals] or {}
  local calls_made = totals[COUNTER.totalCalledCount] or 0
  local connects = totals[COUNTER.totalCallSucc] or 0
  local finished = totals[COUNTER.totalFinishCount] or 0
  if calls_made == 0 and finished == 0 then
    return
  end
  local minute_ms = tonumber(ARG.minute_ms)
  local current_key, stream_key = base .. SUFFIX.progress_current, base .. SUFFIX.progress
  local current = call('HMGET', current_key, 'minute', unpack(PROGRESS_FIELDS))
  local open_minute = tonumber(current[1])
  local sums = {tonumber(current[2] or '0'), tonumber(current[3] or '0'),
                tonumber(current[4] or '0')}
  local update = {}
  local fresh_minute = false
  if open_minute and open_minute < minute_ms then
    -- pcall: an id not above the stream's last (a worker clock behind another's after a
    -- rebalance) loses that minute's entry; it must never fail the counting.
    redis.pcall('XADD', stream_key, 'MAXLEN', '~', 2880, current[1] .. '-0',
                PROGRESS_FIELDS[1], sums[1], PROGRESS_FIELDS[2], sums[2],
                PROGRESS_FIELDS[3], sums[3])
    open_minute = nil
    sums = {0, 0, 0}
  end
  if not open_minute then
    update = {'minute', ARG.minute_ms}
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

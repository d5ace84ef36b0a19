-- Part: changes, for push (api/push/).
-- Reads:  the campaign's rows of totals and of today, when this call changed only one of them.
-- Writes: one XADD to the campaign's capped change stream (SUFFIX.changes, MAXLEN ~
--         ARG.changes_kept) and one PUBLISH of the campaignId on the VDN's channel, when this
--         call changed the campaign's totals or today's daily counters (record_change).
--
-- The stream is the record (a subscriber resumes from it); the message only wakes the API
-- processes up, and one lost costs latency, never a change. PUBLISH goes to replicas but not to
-- the append-only file; the entry is one XADD per call, whatever the call counted
-- (docs/adr/0007-push.md).

local changes_kept = tonumber(ARG.changes_kept)

local function record_change(changed_totals, changed_today)
  if changes_kept == 0 or not (changed_totals or changed_today) then
    return
  end
  local totals_row = changed_totals or call('HGET', campaign_rows_key, '') or ZERO_TOTALS
  local daily_row = changed_today or call('HGET', today_rows_key, '') or ZERO_DAILY
  call('XADD', base .. SUFFIX.changes, 'MAXLEN', '~', changes_kept, '*',
       CHANGE_FIELDS[1], ARG.today, CHANGE_FIELDS[2], totals_row, CHANGE_FIELDS[3], daily_row)
  if ARG.change_channel ~= '' then
    -- pcall: a user without the right to publish (an ACL without +@pubsub) must not fail the
    -- counting; the API processes then find the change on their sweep, late.
    redis.pcall('PUBLISH', ARG.change_channel, ARG.campaign_id)
  end
end

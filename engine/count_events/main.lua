-- Part: the call. Count a batch of one campaign's call events, exactly once, in one atomic step.
-- Reads:  ARG.events (a JSON array of EVENT arrays).
-- Writes: everything the other parts buffered, once each, in this order.
-- Returns one letter per event (VERDICT.* of engine/contract.py): applied, duplicate (already
--         counted), conflict (the event's batchId contradicts the one recorded for its dataId),
--         over the limit (it would open a batch beyond the campaign's limit; nothing of it is
--         counted), released (the campaign's idempotence state was released: its counters are
--         final) or deleted (only its tombstone is left); then ANNOUNCE when the campaign
--         has notifications the due set may not know of (notifications.lua).

local events = cjson.decode(ARG.events)
local refused = refusal()
if refused then
  return string.rep(refused, #events)
end

local result = {}
local applied_any = false
for _, event in ipairs(events) do
  local letter
  if event[EVENT.kind] == 'x' then
    letter = close_campaign()
  else
    letter = count_record_event(event)
  end
  applied_any = applied_any or letter == VERDICT.APPLIED
  result[#result + 1] = letter
end

flush_idempotence()
flush_lifecycle(applied_any)
flush_day_flags()
local changed_totals, changed_today = flush_counters_and_rows()
flush_history()
flush_windows()
flush_expiries()
record_change(changed_totals, changed_today)
record_progress()
if flush_notifications(changed_totals) then
  result[#result + 1] = ANNOUNCE
end

return table.concat(result)

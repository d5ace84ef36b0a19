-- Part: counter hashes and packed rows. What the statistics interface reads.
-- Reads:  each counter hash that this call changes (HMGET of its fields).
-- Writes: each changed counter hash (one HSET of the fields that changed) and its scope's row
--         in the campaign's rows hash (SUFFIX.rows, totals) or in the day's rows hash
--         (SUFFIX.day .. D .. SUFFIX.rows, daily counters), in this same atomic step, so that
--         rows never disagree with the hashes (flush_counters_and_rows).
--
-- A whole VDN is then two HGETALLs per campaign instead of two HMGETs per scope
-- (engine/read_statistics.lua, docs/adr/0003-packed-rows.md). Rows follow the layout's order of
-- TOTAL_FIELDS and DAILY_FIELDS: "5,2,0,3,1".

local rows_due = {} -- counter hash -> {rows hash, row field, fields, every field kept}

local function mark_row_due(key, rows_key, scope_field, fields, keep_every_field)
  if not rows_due[key] then
    rows_due[key] = {rows_key, scope_field, fields, keep_every_field}
  end
end

-- The campaign's own totals and today's daily counters, packed, when this call changed them
-- (changes.lua records them).
local campaign_rows_key = base .. SUFFIX.rows
local today_rows_key = base .. SUFFIX.day .. ARG.today .. SUFFIX.rows

local function flush_counters_and_rows()
  local rows = {} -- rows hash -> {row field, row, ...}
  local changed_totals, changed_today
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
  return changed_totals, changed_today
end

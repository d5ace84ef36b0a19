-- Part: the campaign's lifecycle, as counting sees it.
-- Reads:  the life hash (SUFFIX.life): deleted, released, active, closed.
-- Writes: the life hash: the day the campaign was last active (once a day) and its end, when a
--         campaign.closed is counted (flush_lifecycle).
--
-- A campaign whose state is released can no longer tell a new event from one counted before:
-- every event of it is refused, for the dead-letter topic, never counted twice (refusal()).
-- The rules that release and delete are engine/campaign_lifecycle.lua's.

local life_key = base .. SUFFIX.life
local life = call('HMGET', life_key, LIFE.deleted, LIFE.released, LIFE.active, LIFE.closed)
local closed_now = false -- a campaign.closed of this call

-- The verdict for every event of a campaign that is no longer counted, or nil.
local function refusal()
  if life[1] then
    return VERDICT.DELETED
  elseif life[2] then
    return VERDICT.RELEASED
  end
  return nil
end

-- A campaign ends once: a second campaign.closed is a duplicate.
local function close_campaign()
  if life[4] or closed_now then
    return VERDICT.DUPLICATE
  end
  closed_now = true
  return VERDICT.APPLIED
end

local function flush_lifecycle(applied_any)
  local changes = {}
  if applied_any and life[3] ~= ARG.active_day then
    changes = {LIFE.active, ARG.active_day}
  end
  if closed_now then
    changes[#changes + 1] = LIFE.closed
    changes[#changes + 1] = ARG.now
  end
  write('HSET', life_key, changes)
end

-- Part: write buffers. What every other part counts into, and how it is written once.
-- Reads:  nothing of Redis.
-- Writes: nothing itself; write() sends a buffer's command in slices, and flush_expiries()
--         gives each day key touched by this call its expiry.
--
-- Bytes written, not only time: Redis replicates a script by its effects, so every write goes
-- to the append-only file and to each replica (docs/adr/0004-write-amplification.md). The
-- parts therefore read as they go but write once at the end (main.lua): one HSET of the record
-- states, one SADD of the callIds, one HSET per day of the day's record flags, one HSET of the
-- changed fields per counter hash, one per rows hash and one per hours or fails hash. Nothing
-- is written that did not change: Redis propagates an HSET of the same value, but not a SADD of
-- a member it holds nor an EXPIREAT ... NX of a key that already expires, so day keys get their
-- expiry once.

local base = ARG.campaign_base
local band, bor = bit.band, bit.bor
local call = redis.call

local increments = {} -- counter hash -> {field -> delta}
local expiries = {}   -- day key -> expireAt

local function add(changes, key, field, delta)
  local fields = changes[key]
  if not fields then
    fields = {}
    changes[key] = fields
  end
  fields[field] = (fields[field] or 0) + delta
end

local function bump(key, field, delta)
  add(increments, key, field, delta)
end

-- Scopes: the campaign, and the record's batch when it has one. A scope is the start of its
-- counter hashes' keys and its field in the campaign's packed rows ('' for the campaign).
-- Built once per batchId and call: every counted event asks for its scopes several times.
local scopes_of = {[''] = {{base, ''}}}
local function scopes(batch)
  local found = scopes_of[batch]
  if not found then
    found = {{base, ''}, {base .. SUFFIX.batch .. batch, batch}}
    scopes_of[batch] = found
  end
  return found
end

-- Lua's unpack takes a few thousand values at most: long argument lists go in slices.
local SLICE = 2000
local function write(command, key, values)
  for first = 1, #values, SLICE do
    call(command, key, unpack(values, first, math.min(first + SLICE - 1, #values)))
  end
end

local function pairs_of(order, values)
  local flat = {}
  for _, name in ipairs(order) do
    flat[#flat + 1] = name
    flat[#flat + 1] = values[name]
  end
  return flat
end

local function flush_expiries()
  for key, expire_at in pairs(expiries) do
    call('EXPIREAT', key, expire_at, 'NX')
  end
end

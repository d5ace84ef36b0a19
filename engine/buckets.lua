-- Bucketed hashes: a map of any size kept as many small hashes, each in Redis' compact listpack
-- encoding. (A library: loaded after the prelude, ahead of the scripts that use it;
-- engine/scripts.py.)
--
-- Why: a campaign's idempotence state (each record's state, each callId counted, each record's
-- flags per day) is almost all of the memory Redis holds. In one large hash or set, Redis keeps
-- each entry in a table of its own allocations, about 60 bytes over the id itself; in a
-- listpack an entry is its bytes plus two or three (docs/capacity.md has the measured costs).
-- Listpacks are searched from end to end, so they must stay short: BUCKETS.fill entries on
-- average, twice that at most (see keys.py, BUCKET_FILL).
--
-- A structure named K is the hashes K:0 ... K:(n-1). Bucket 0 also holds, in the field
-- BUCKETS.size_field, how many entries the structure has; n = 1 + floor(entries / fill).
-- Linear hashing (W. Litwin, 1980) finds an id's bucket: h = the first 32 bits of the SHA-1 of
-- the id; with 2^L <= n < 2^(L+1), bucket h mod 2^(L+1), or h mod 2^L where that is n or more.
-- So n can grow by one: the new bucket n takes from one older bucket, n - 2^L, the entries that
-- now address it (about half), and no other entry moves. A lookup is one HGET, as before.
--
-- Structures written before buckets existed (one plain hash, or a set for callIds, at K itself)
-- are still read where they are: counts made before an upgrade are never counted again. New
-- entries go to the buckets; the lifecycle's release removes both.

local bucket_call = redis.call
local id_hashes = {} -- id -> its 32-bit hash, once per script call

local function id_hash(id)
  local h = id_hashes[id]
  if not h then
    h = tonumber(string.sub(redis.sha1hex(id), 1, 8), 16)
    id_hashes[id] = h
  end
  return h
end

-- The largest power of two that is at most n (n >= 1).
local function power_below(n)
  local power = 1
  while power * 2 <= n do
    power = power * 2
  end
  return power
end

local function bucket_index(h, n, power)
  local index = h % (power * 2)
  if index >= n then
    index = h % power
  end
  return index
end

local function buckets_for(entries)
  return 1 + math.floor(entries / BUCKETS.fill)
end

local function bucket_name(key, index)
  return key .. BUCKETS.separator .. index
end

-- A structure, as this script call sees it: its size, read once (one HGET), and whether a
-- structure of the old layout stands at its key ('hash' or 'set' says which it would be).
local function open_buckets(key, legacy_type)
  local entries = tonumber(bucket_call('HGET', bucket_name(key, 0), BUCKETS.size_field) or '0')
  local n = buckets_for(entries)
  local legacy = bucket_call('TYPE', key)['ok']
  return {key = key, entries = entries, n = n, power = power_below(n),
          legacy = legacy == legacy_type and legacy or nil}
end

local function bucket_of(structure, id)
  return bucket_name(structure.key, bucket_index(id_hash(id), structure.n, structure.power))
end

-- The value stored for id, or false.
local function bucket_get(structure, id)
  local value = bucket_call('HGET', bucket_of(structure, id), id)
  if value or not structure.legacy then
    return value
  end
  if structure.legacy == 'set' then
    return bucket_call('SISMEMBER', structure.key, id) == 1 and '1'
  end
  return bucket_call('HGET', structure.key, id)
end

local function hset_in_slices(key, flat)
  for first = 1, #flat, 2000 do
    bucket_call('HSET', key, unpack(flat, first, math.min(first + 1999, #flat)))
  end
end

-- Writes ids (in this order) with their values; `added` of them are new to the structure.
-- The buckets grow first, one split at a time, so that every id is then written where the
-- new size addresses it. expire_at (epoch seconds, or nil) is given to every bucket written.
local function bucket_store(structure, ids, values, added, expire_at)
  if #ids == 0 then
    return
  end
  local key = structure.key
  local entries = structure.entries + added
  local n = buckets_for(entries)
  local written = {}
  for new = structure.n, n - 1 do
    local source = bucket_name(key, new - power_below(new))
    local power = power_below(new + 1)
    local flat = bucket_call('HGETALL', source)
    local moved, gone = {}, {}
    for i = 1, #flat, 2 do
      local id = flat[i]
      if id ~= BUCKETS.size_field and bucket_index(id_hash(id), new + 1, power) == new then
        moved[#moved + 1] = id
        moved[#moved + 1] = flat[i + 1]
        gone[#gone + 1] = id
      end
    end
    if #gone > 0 then
      local target = bucket_name(key, new)
      bucket_call('HDEL', source, unpack(gone))
      bucket_call('HSET', target, unpack(moved))
      written[target] = true
    end
  end
  structure.n, structure.power, structure.entries = n, power_below(n), entries

  local by_bucket, order = {}, {}
  for _, id in ipairs(ids) do
    local bucket = bucket_of(structure, id)
    local flat = by_bucket[bucket]
    if not flat then
      flat = {}
      by_bucket[bucket] = flat
      order[#order + 1] = bucket
    end
    flat[#flat + 1] = id
    flat[#flat + 1] = values[id]
  end
  if added > 0 then
    local first = bucket_name(key, 0)
    if not by_bucket[first] then
      by_bucket[first] = {}
      order[#order + 1] = first
    end
    local flat = by_bucket[first]
    flat[#flat + 1] = BUCKETS.size_field
    flat[#flat + 1] = entries
  end
  for _, bucket in ipairs(order) do
    hset_in_slices(bucket, by_bucket[bucket])
    written[bucket] = true
  end
  if expire_at then
    for bucket in pairs(written) do
      -- NX: a bucket that expires already is not written again (nor propagated).
      bucket_call('EXPIREAT', bucket, expire_at, 'NX')
    end
  end
end

-- Every key a structure may have: its buckets and the old layout's key (for UNLINK).
local function bucket_keys(key)
  local entries = tonumber(bucket_call('HGET', bucket_name(key, 0), BUCKETS.size_field) or '0')
  local keys = {key}
  for index = 0, buckets_for(entries) - 1 do
    keys[#keys + 1] = bucket_name(key, index)
  end
  return keys
end

-- How many entries a structure has (the old layout's ones included, counted apart).
local function bucket_entries(key, legacy_type)
  local entries = tonumber(bucket_call('HGET', bucket_name(key, 0), BUCKETS.size_field) or '0')
  if bucket_call('TYPE', key)['ok'] == legacy_type then
    entries = entries + (legacy_type == 'set' and bucket_call('SCARD', key)
                         or bucket_call('HLEN', key))
  end
  return entries
end

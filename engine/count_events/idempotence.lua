-- Part: idempotence. Which of a record's events were counted, and which calls.
-- Reads:  the records hash (SUFFIX.records: dataId -> "flags" or "flags:batchNumber"), the
--         callIds set (SUFFIX.calls) and the batches hash (SUFFIX.batches: batchId -> number).
-- Writes: the records hash and the callIds set once each (flush_idempotence); a new batch's
--         number at once (the next HLEN must count it).
--
-- Idempotence lives here, next to the counters it protects: a record's state and the callIds
-- counted change in the same script as the counters, so a replay after any crash finds its
-- events already counted and changes nothing.

local records_key = base .. SUFFIX.records
local calls_key = base .. SUFFIX.calls
local batches_key = base .. SUFFIX.batches
local max_batches = tonumber(ARG.max_batches)

-- record flags
local ADDED, CALLED, REMOVED, FINISHED = 1, 2, 4, 8

-- What this call has decided so far, read before Redis by every later event of the batch.
local records = {}       -- dataId -> its new state
local records_order = {} -- dataIds in the order first written (a deterministic HSET)
local calls = {}         -- callId -> true: counted by this call
local calls_order = {}

-- dataId -> its state as stored (nil for a record never seen), its flags and its batch number
-- ('0' for none).
local function record_state(data_id)
  local state = records[data_id] or call('HGET', records_key, data_id) or nil
  if not state then
    return nil, 0, nil
  end
  local colon = string.find(state, ':', 1, true)
  if colon then
    return state, tonumber(string.sub(state, 1, colon - 1)), string.sub(state, colon + 1)
  end
  return state, tonumber(state), '0'
end

local function set_record_state(data_id, state)
  if not records[data_id] then
    records_order[#records_order + 1] = data_id
  end
  records[data_id] = state
end

local function call_counted(call_id)
  return calls[call_id] or call('SISMEMBER', calls_key, call_id) == 1
end

local function note_call(call_id)
  if not calls[call_id] then
    calls_order[#calls_order + 1] = call_id
  end
  calls[call_id] = true
end

-- batchId -> its small number, or false when the campaign has no such batch: read once per
-- call, as most events of a batch name the same few batches.
local batch_numbers = {}

local function known_batch_number(batch)
  local number = batch_numbers[batch]
  if number == nil then
    number = call('HGET', batches_key, batch) or false
    batch_numbers[batch] = number
  end
  return number
end

local function batch_number(batch)
  if batch == '' then
    return '0'
  end
  local number = known_batch_number(batch)
  if not number then
    number = tostring(call('HLEN', batches_key) + 1)
    call('HSET', batches_key, batch, number)
    batch_numbers[batch] = number
  end
  return number
end

-- Whether a new record's batch is one the campaign has, or one more still fits under the limit.
local function batch_fits(batch)
  return max_batches == 0 or batch == '' or known_batch_number(batch)
    or call('HLEN', batches_key) < max_batches
end

-- Every event of a record carries the same batch, or none: true when this one contradicts
-- the batch recorded with the record's first event.
local function contradicts_batch(batch, recorded_batch)
  local number = '0'
  if batch ~= '' then
    number = known_batch_number(batch) or '-1'
  end
  return number ~= recorded_batch
end

-- The record's new state: its flags, and its batch's number unless it has none.
local function remember_record(data_id, state, new_flags, recorded_batch, batch)
  local encoded = tostring(new_flags)
  local number = recorded_batch or batch_number(batch)
  if number ~= '0' then
    encoded = encoded .. ':' .. number
  end
  if encoded ~= state then
    set_record_state(data_id, encoded)
  end
end

local function flush_idempotence()
  write('HSET', records_key, pairs_of(records_order, records))
  write('SADD', calls_key, calls_order)
end

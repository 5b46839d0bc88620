"""The Lua scripts: each runs atomically inside Redis."""

from __future__ import annotations

from ._redis import Script

__all__ = ["ACK", "ADD_BOUNDED", "CLAIM", "KEEP_LEASES", "RECORD", "TAKE_TOKENS"]

# Append one event unless the stream already holds max_len entries. Delivered entries
# are deleted by the relays, so the length counts undelivered events: the bound never
# trims one, it refuses the new event instead (the producer's full policy decides).
ADD_BOUNDED = Script(
    """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', 'e', ARGV[2])
"""
)

# XAUTOCLAIM and, in the same atomic step, the ledger's source_request_id of each claimed
# entry ('' when none) and the record of each such batch (ARGV[6] is the records' key
# prefix). Atomic because acknowledging a recorded batch deletes its record in the same
# transaction: the entries claimed here are still pending, so their batch's record is
# still there, and a missing ledger field really means "never sent".
CLAIM = Script(
    """
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local srids, records, seen = {}, {}, {}
for i, e in ipairs(r[2]) do
  local srid = redis.call('HGET', KEYS[2], e[1]) or ''
  srids[i] = srid
  if srid ~= '' and not seen[srid] then
    seen[srid] = true
    local rec = redis.call('HMGET', ARGV[6] .. srid, 'b', 'n', 'e')
    if rec[1] then records[#records + 1] = {srid, rec[1], rec[2], rec[3]} end
  end
end
return {r[1], r[2], srids, r[3] or {}, records}
"""
)

# Record batches before their first attempt, fenced: only when this consumer still owns
# every entry of every batch (a relay that stalled past claim_idle may have lost some to
# another relay, which delivers them itself). Returns the entries it no longer owns;
# records nothing then. ARGV: group, consumer, ttl ms, record key prefix, then per batch
# source_request_id, body, event count, the entries comma-joined.
RECORD = Script(
    """
local stream, index = KEYS[1], KEYS[2]
local group, me, ttl, prefix = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local lost = {}
for i = 5, #ARGV, 4 do
  for id in string.gmatch(ARGV[i + 3], '[^,]+') do
    if not redis.call('XPENDING', stream, group, id, id, 1, me)[1] then
      lost[#lost + 1] = id
    end
  end
end
if #lost > 0 then return lost end
for i = 5, #ARGV, 4 do
  local srid = ARGV[i]
  for id in string.gmatch(ARGV[i + 3], '[^,]+') do
    redis.call('HSET', index, id, srid)
  end
  local key = prefix .. srid
  redis.call('HSET', key, 'b', ARGV[i + 1], 'n', ARGV[i + 2], 'e', ARGV[i + 3])
  redis.call('PEXPIRE', key, ttl)
end
return lost
"""
)

# Acknowledge and delete entries, and forget their ledger fields and batch records, in
# one atomic step. Entry ids come comma-joined in one argument (stream ids never hold a
# comma): encoding one argument per entry on the client cost more than the rest.
# ARGV: group, entry ids, record key prefix, then the batches' source_request_ids.
ACK = Script(
    """
local ids = {}
for id in string.gmatch(ARGV[2], '[^,]+') do ids[#ids + 1] = id end
for i = 1, #ids, 1000 do
  local chunk = {unpack(ids, i, math.min(i + 999, #ids))}
  redis.call('XACK', KEYS[1], ARGV[1], unpack(chunk))
  redis.call('XDEL', KEYS[1], unpack(chunk))
  redis.call('HDEL', KEYS[2], unpack(chunk))
end
for i = 4, #ARGV do redis.call('DEL', ARGV[3] .. ARGV[i]) end
return #ids
"""
)

# Reset the idle time of the entries this consumer still owns (its lease), so no other
# relay claims entries it is still delivering; returns the ids it no longer owns.
KEEP_LEASES = Script(
    """
local group, me = ARGV[1], ARGV[2]
-- (unpack() expands only as the last argument: the XCLAIM arguments are one table.)
local claim, lost = {KEYS[1], group, me, 0}, {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], group, ARGV[i], ARGV[i], 1, me)
  if p[1] then claim[#claim + 1] = ARGV[i] else lost[#lost + 1] = ARGV[i] end
end
if #claim > 4 then
  claim[#claim + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(claim))
end
return lost
"""
)

# A token bucket in batches, shared by every process: reserve n tokens (the balance may
# go negative) and return how many milliseconds to wait before sending. Reservations
# queue the callers fairly, in arrival order, without polling. Redis's own clock is
# used, so the machines' clocks do not matter.
TAKE_TOKENS = Script(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate = tonumber(ARGV[1]) / 1000
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1]) or burst
local ts = tonumber(v[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
tokens = tokens - n
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1000)
if tokens >= 0 then return 0 end
return math.ceil(-tokens / rate)
"""
)

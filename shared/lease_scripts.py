"""The Redis Lua scripts of the slot lease protocol (shared/leases.py; docs/leases.md explains them).

Every script runs atomically on the server, so each check-then-write below has no gap another
client could slip into. Waiter liveness is measured on the server's clock (`TIME`), so clock
offsets between the machines of the waiters do not matter.
"""

from __future__ import annotations

# KEYS: queue (waiter id -> ticket number), seen (waiter id -> last sign of life, server ms),
#       ticket counter, then the lease and fence key of each slot, in the order to try them.
# ARGV: holder JSON (without fence), ttl ms, waiter id, join (1 = take a ticket when refused),
#       our ticket number ('' = none yet), waiter timeout ms, queue keys' idle expiry ms.
# A free slot goes to the caller only when fewer live waiters are queued ahead of it than there are
# free slots, so grants follow ticket order. A waiter whose ticket was dropped as dead while it was
# alive (it stalled past the timeout) passes its old number and gets its old place back.
# Replies: {1, slot index (1-based), fence, value} = granted; {0, live waiters ahead, ticket number,
# free slots} = refused.
# The next fence is written into the value before the SET; INCR runs only after the SET succeeded,
# so a fence number is consumed only by a grant.
ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local me = ARGV[3]
local number = redis.call('ZSCORE', KEYS[1], me)
if not number and ARGV[5] ~= '' then
  number = ARGV[5]
  redis.call('ZADD', KEYS[1], number, me)
end
if number then
  redis.call('ZADD', KEYS[2], now, me)
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[6])))
for _, id in ipairs(dead) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
local ahead
if number then
  ahead = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. number)
else
  ahead = redis.call('ZCARD', KEYS[1])
end
local free = {}
for i = 4, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    free[#free + 1] = i
  end
end
if ahead < #free then
  local i = free[1]
  local fence = (tonumber(redis.call('GET', KEYS[i + 1])) or 0) + 1
  local holder = cjson.decode(ARGV[1])
  holder['fence'] = fence
  local value = cjson.encode(holder)
  if redis.call('SET', KEYS[i], value, 'NX', 'PX', ARGV[2]) then
    redis.call('INCR', KEYS[i + 1])
    if number then
      redis.call('ZREM', KEYS[1], me)
      redis.call('ZREM', KEYS[2], me)
    end
    return {1, (i - 2) / 2, fence, value}
  end
end
if not number and ARGV[4] == '1' then
  number = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[1], number, me)
  redis.call('ZADD', KEYS[2], now, me)
end
if number then
  for k = 1, 3 do
    redis.call('PEXPIRE', KEYS[k], ARGV[7])
  end
end
return {0, ahead, tonumber(number) or 0, #free}
"""

# KEYS: queue, seen. ARGV: waiter id, then the channel of each slot of the group.
# A waiter leaving the queue may have been the one the others waited behind: wake them.
LEAVE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if removed == 1 then
  for i = 2, #ARGV do
    redis.call('PUBLISH', ARGV[i], 'left')
  end
end
return removed
"""

# KEYS: lease. ARGV: our value, ttl ms. 1 = renewed, 0 = not ours any more.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease. ARGV: our value, the slot's channel. 1 = deleted (and waiters woken), 0 = not ours.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'freed')
  return 1
end
return 0
"""

# KEYS: lease, published. ARGV: our value, our fence, then field/value pairs.
# {1, last} = written; {-1, last} = our fence is older than the last published; {0, last} = not ours.
PUBLISH = """
local last = tonumber(redis.call('HGET', KEYS[2], 'fence')) or 0
if tonumber(ARGV[2]) < last then
  return {-1, last}
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, last}
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
return {1, last}
"""

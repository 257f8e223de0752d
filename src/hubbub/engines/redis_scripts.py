"""Lua scripts of the Redis broker. Each runs atomically inside Redis.

Keys of one channel share a hash tag, `{<channel>}`, so they live in one slot.
"""

# KEYS: meta, stream, pubsub channel
# ARGV: body, history size, history ttl ms, meta ttl s, fresh epoch, now ms, keep last (0/1)
PUBLISH = """
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local message = seq .. ':' .. epoch .. ':' .. ARGV[1]
local size = tonumber(ARGV[2])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, seq .. '-0', 'b', ARGV[1], 't', ARGV[6])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  redis.call('HSET', KEYS[1], 'ttl', ARGV[3])
end
if ARGV[7] == '1' then
  redis.call('HSET', KEYS[1], 'last', message)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SPUBLISH', KEYS[3], message)
return {seq, epoch}
"""

# KEYS: meta, stream
# ARGV: fresh epoch, meta ttl s, first id, last id ('+' for open), count (0 = all)
READ = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl') or '0')
local entries
if ARGV[3] == '' then
  entries = {}
elseif tonumber(ARGV[5]) > 0 then
  entries = redis.call('XRANGE', KEYS[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
else
  entries = redis.call('XRANGE', KEYS[2], ARGV[3], ARGV[4])
end
return {seq, epoch, entries, ttl}
"""

# KEYS: presence hash (conn -> info), user counts, node's own presence set
# ARGV: connection id, info, user id, node set member
PRESENCE_ADD = """
local existed = redis.call('HEXISTS', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[4])
if existed == 1 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[3], 1) == 1 then return 1 end
return 0
"""

# KEYS: presence hash, user counts, node's presence set
# ARGV: connection id, user id, node set member
PRESENCE_REMOVE = """
redis.call('SREM', KEYS[3], ARGV[3])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

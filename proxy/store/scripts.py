"""Lua scripts: each one is a state transition that must not interleave with another request's.

All keys a script touches share one hash tag (the grant family id), so they live in one Redis Cluster
slot. Scripts read hash fields, never JSON, so they run the same on Redis and on fakeredis.
"""

# KEYS: code, code-used marker, family
# ARGV: client_id, redirect_uri, code_challenge computed from the verifier, now,
#       family ttl, first refresh token hash, used-marker ttl, family absolute expiry
# The code is checked before it is consumed: a wrong verifier or client changes nothing.
REDEEM_CODE = """
local f = redis.call('HMGET', KEYS[1], 'client_id', 'redirect_uri', 'challenge', 'data', 'up')
if not f[1] then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('DEL', KEYS[3])
    return {'reused'}
  end
  return {'unknown'}
end
if f[1] ~= ARGV[1] then return {'mismatch', 'client_id'} end
if f[2] ~= ARGV[2] then return {'mismatch', 'redirect_uri'} end
if f[3] ~= ARGV[3] then return {'mismatch', 'code_verifier'} end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[7])
redis.call('HSET', KEYS[3], 'cur', ARGV[6], 'client', ARGV[1], 'data', f[4], 'up', f[5] or '',
           'created', ARGV[4], 'abs_exp', ARGV[8])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return {'ok', f[4], f[5] or ''}
"""

# KEYS: family
# ARGV: presented token hash, new token hash, new token sealed with the presented one, now,
#       grace seconds, idle ttl, the authenticated client_id
# RFC 9700 §4.14.2: rotation, with a grace replay of the just-rotated token while its successor is
# unused; anything else that names this family is reuse and revokes it.
ROTATE_REFRESH = """
local f = redis.call('HMGET', KEYS[1], 'cur', 'prev', 'rot_at', 'grace', 'abs_exp', 'data', 'up', 'client')
if not f[1] then return {'unknown'} end
if f[8] ~= ARGV[7] then return {'mismatch'} end
local now = tonumber(ARGV[4])
local left = tonumber(f[5]) - now
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return {'expired'}
end
if f[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'prev', ARGV[1], 'cur', ARGV[2], 'rot_at', ARGV[4], 'grace', ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.min(tonumber(ARGV[6]), left))
  return {'rotated', f[6], f[7] or '', f[2] or '', f[3] or '', f[4] or ''}
end
if f[2] == ARGV[1] and now - tonumber(f[3]) <= tonumber(ARGV[5]) then
  return {'grace', f[6], f[7] or '', f[4]}
end
redis.call('DEL', KEYS[1])
return {'reuse', f[7] or ''}
"""

# KEYS: family
# ARGV: new token hash (must still be current), previous cur, prev, rot_at, grace
# Undo a rotation whose upstream refresh could not be done (or whose request was invalid), so the
# client's token stays valid. A field that was absent before ('' here) is removed again, so the
# family reads exactly as it did.
UNDO_ROTATION = """
if redis.call('HGET', KEYS[1], 'cur') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'cur', ARGV[2])
local fields = {'prev', 'rot_at', 'grace'}
for i = 1, 3 do
  if ARGV[i + 2] == '' then
    redis.call('HDEL', KEYS[1], fields[i])
  else
    redis.call('HSET', KEYS[1], fields[i], ARGV[i + 2])
  end
end
return 1
"""

# KEYS: family; ARGV: field, value. Never recreates a family revoked meanwhile.
SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: family. Revoke and hand back the upstream token set, so it can be revoked upstream too.
TAKE_FAMILY = """
local up = redis.call('HGET', KEYS[1], 'up')
local data = redis.call('HGET', KEYS[1], 'data')
redis.call('DEL', KEYS[1])
return {up or '', data or ''}
"""

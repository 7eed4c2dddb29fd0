"""Lua scripts: each one is a state transition that must not interleave with another request's.

All keys a script touches share one hash tag (the grant family id), so they live in one Redis Cluster
slot. Scripts read hash fields, never JSON, so they run the same on Redis and on fakeredis. Times are
milliseconds (`rot_ms`), except the family's absolute expiry `abs_exp`, in seconds.
"""

# KEYS: code, code-used marker, family
# ARGV: client_id, redirect_uri, code_challenge computed from the verifier, now (s),
#       family ttl, first refresh token hash, used-marker ttl, family absolute expiry (s)
# The code is checked before it is consumed: a wrong verifier or client changes nothing. A replay
# (the used-marker exists) revokes the family and hands back its upstream token set, so the upstream
# grant is revoked too (RFC 6749 §4.1.2).
REDEEM_CODE = """
local f = redis.call('HMGET', KEYS[1], 'client_id', 'redirect_uri', 'challenge', 'data', 'up')
if not f[1] then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    local up = redis.call('HGET', KEYS[3], 'up')
    redis.call('DEL', KEYS[3])
    return {'reused', up or ''}
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
redis.call('EXPIRE', KEYS[3], math.min(tonumber(ARGV[5]), tonumber(ARGV[8]) - tonumber(ARGV[4])))
return {'ok', f[4], f[5] or ''}
"""

# KEYS: family
# ARGV: presented token hash, new token hash, new token sealed with the presented one, now (ms),
#       grace (ms), idle ttl (s), the authenticated client_id, '1' when the presented token carries the
#       facade's MAC (it was issued here; see proxy/token/sealing.py), else '0'
# RFC 9700 §4.14.2: rotation, with a grace replay of the just-rotated token while its successor is
# unused (`handed` records that a racer received the successor; `rot_at`, in seconds, is how versions
# before `rot_ms` recorded a rotation). Reuse is a token the facade issued
# for this family that is neither current nor in grace; a token it never issued is unknown and
# changes nothing, whatever family it names (the family id is public: `sid`, code prefixes).
ROTATE_REFRESH = """
local f = redis.call('HMGET', KEYS[1], 'cur', 'prev', 'rot_ms', 'grace', 'abs_exp', 'data', 'up', 'client',
                     'handed', 'rot_at')
if not f[3] and f[10] then f[3] = tostring(tonumber(f[10]) * 1000) end  -- rotated by a version before rot_ms
if not f[1] then return {'unknown'} end
if f[8] ~= ARGV[7] then return {'mismatch'} end
local now = tonumber(ARGV[4])
local left = tonumber(f[5]) * 1000 - now
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return {'expired'}
end
if f[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'prev', ARGV[1], 'cur', ARGV[2], 'rot_ms', ARGV[4], 'grace', ARGV[3])
  redis.call('HDEL', KEYS[1], 'handed')
  redis.call('EXPIRE', KEYS[1], math.min(tonumber(ARGV[6]), math.ceil(left / 1000)))
  return {'rotated', f[6], f[7] or '', f[2] or '', f[3] or '', f[4] or '', f[9] or ''}
end
if f[2] == ARGV[1] and f[3] and now - tonumber(f[3]) < tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'handed', '1')
  return {'grace', f[6], f[7] or '', f[4]}
end
if f[2] == ARGV[1] or ARGV[8] == '1' then
  redis.call('DEL', KEYS[1])
  return {'reuse', f[7] or ''}
end
return {'unknown'}
"""

# KEYS: family
# ARGV: new token hash (must still be current), previous cur, prev, rot_ms, grace, handed, now (ms)
# Undo a rotation whose upstream refresh could not be done (or whose request was invalid), so the
# client's token stays valid. A field that was absent before ('' here) is removed again, so the
# family reads exactly as it did. Unless a racer already received the successor in the grace window:
# then the rotation stands (undoing it would turn the racer's next use into reuse) and the grace
# window restarts, so the failed request's retry with the old token gets that same successor.
UNDO_ROTATION = """
if redis.call('HGET', KEYS[1], 'cur') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'handed') then
  redis.call('HSET', KEYS[1], 'rot_ms', ARGV[7])
  return 2
end
redis.call('HSET', KEYS[1], 'cur', ARGV[2])
local fields = {'prev', 'rot_ms', 'grace', 'handed'}
for i = 1, 4 do
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

# KEYS: a lock; ARGV: the holder's token. Release only one's own lock (it may have expired and been taken).
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

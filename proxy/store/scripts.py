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
# ARGV: 1 presented token hash, 2 successor hash, 3 successor sealed with the presented token, 4 now (ms),
#       5 grace (ms), 6 idle ttl (s), 7 the authenticated client_id, 8 '1' when the presented token carries
#       the facade's MAC (it was issued here; see proxy/token/sealing.py), else '0',
#       9 the presented token's generation ('' when it carries none: minted before lineage, read as 0),
#       10 its branch, 11 the resumed successor's hash (new branch), 12 the resumed successor sealed
# RFC 9700 §4.14.2: rotation, with a grace replay of the just-rotated token while its successor is
# unused (`handed` records that a racer received the successor; `rot_at`, in seconds, is how versions
# before `rot_ms` recorded a rotation). Reuse is a token the facade issued
# for this family that is neither current nor in grace; a token it never issued is unknown and
# changes nothing, whatever family it names (the family id is public: `sid`, code prefixes).
# Lineage (`gen`, `branch`: the current token's; absent = 0): a token issued here of a later generation
# than the current one, on the same branch (or on a branch started after what this store knows), is a
# successor this store never received: the primary that acknowledged its rotation died before its
# replica got it. It is honoured like the current token, and the family resumes on a new branch
# (`resumed`), so every other token of the lost history is a fork from then on: reuse.
# Returns {status, data, up, then what UNDO_ROTATION needs: cur, prev, rot_ms, grace, handed, gen, branch}
# for rotated/resumed; {'grace', data, up, sealed}; {'reuse', up}; or {unknown|mismatch|expired}.
ROTATE_REFRESH = """
local f = redis.call('HMGET', KEYS[1], 'cur', 'prev', 'rot_ms', 'grace', 'abs_exp', 'data', 'up', 'client',
                     'handed', 'rot_at', 'gen', 'branch')
if not f[3] and f[10] then f[3] = tostring(tonumber(f[10]) * 1000) end  -- rotated by a version before rot_ms
if not f[1] then return {'unknown'} end
if f[8] ~= ARGV[7] then return {'mismatch'} end
local now = tonumber(ARGV[4])
local left = tonumber(f[5]) * 1000 - now
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return {'expired'}
end
local stored_gen = tonumber(f[11] or '0')
local stored_branch = tonumber(f[12] or '0')
local presented_gen, presented_branch = tonumber(ARGV[9]) or 0, tonumber(ARGV[10]) or 0
local status, successor, sealed, gen, branch
if f[1] == ARGV[1] then
  status, successor, sealed = 'rotated', ARGV[2], ARGV[3]
  gen, branch = presented_gen + 1, presented_branch
elseif f[2] == ARGV[1] and f[3] and now - tonumber(f[3]) < tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'handed', '1')
  return {'grace', f[6], f[7] or '', f[4]}
elseif ARGV[8] == '1' and ARGV[9] ~= '' and presented_gen > stored_gen
       and (presented_branch == stored_branch or presented_branch > stored_gen) then
  status, successor, sealed = 'resumed', ARGV[11], ARGV[12]
  gen, branch = presented_gen + 1, presented_gen
elseif f[2] == ARGV[1] or ARGV[8] == '1' then
  redis.call('DEL', KEYS[1])
  return {'reuse', f[7] or ''}
else
  return {'unknown'}
end
redis.call('HSET', KEYS[1], 'prev', ARGV[1], 'cur', successor, 'rot_ms', ARGV[4], 'grace', sealed,
           'gen', gen, 'branch', branch)
redis.call('HDEL', KEYS[1], 'handed')
redis.call('EXPIRE', KEYS[1], math.min(tonumber(ARGV[6]), math.ceil(left / 1000)))
return {status, f[6], f[7] or '', f[1], f[2] or '', f[3] or '', f[4] or '', f[9] or '', f[11] or '', f[12] or ''}
"""

# KEYS: family
# ARGV: 1 successor hash (must still be current), 2 the cur before, 3-8 prev, rot_ms, grace, handed, gen,
#       branch before ('' = absent), 9 now (ms)
# Undo a rotation whose upstream refresh could not be done (or whose request was invalid), so the
# client's token stays valid. A field that was absent before ('' here) is removed again, so the
# family reads exactly as it did. Unless a racer already received the successor in the grace window:
# then the rotation stands (undoing it would turn the racer's next use into reuse) and the grace
# window restarts, so the failed request's retry with the old token gets that same successor.
UNDO_ROTATION = """
if redis.call('HGET', KEYS[1], 'cur') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'handed') then
  redis.call('HSET', KEYS[1], 'rot_ms', ARGV[9])
  return 2
end
redis.call('HSET', KEYS[1], 'cur', ARGV[2])
local fields = {'prev', 'rot_ms', 'grace', 'handed', 'gen', 'branch'}
for i = 1, 6 do
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

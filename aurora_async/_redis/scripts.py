"""The Lua scripts of the Redis backend, and the little that runs them.

Every script reads the server's clock (``TIME``, microseconds) itself, so no worker's
clock ever enters the shared state: workers send durations (a caller's longest wait)
and receive durations (how long to wait for a reservation). Times in Redis are whole
microseconds of the server's clock, stored as integers (``%.0f``: exact up to 2^53);
every rounding is upwards, so it can only make a token slower, never faster.

State of one token (``{aurora:ns}:t:<id>``: one ``GET`` and one ``SET`` a lease)
    A MessagePack array (Redis's bundled ``cmsgpack``: C, and exact for the 64-bit
    integers of microsecond times, which its ``cjson`` is not)
    ``[n, kc, cool, b1, e1, t1, b2, e2, t2, ...]``: ``n`` windows; ``kc`` the key cost
    (``min(1, smallest burst)``); ``cool`` cooled until; for window ``k``: ``bk`` burst
    (units), ``ek`` microseconds per unit (``1e6 / rate``) and ``tk`` its GCRA theoretical
    arrival time (when the bucket is empty). A lease of cost ``c`` fits window ``k`` at
    time ``s`` iff ``tk + (c - bk) * ek <= s``; taking it sets ``tk = max(tk, s) + c * ek``.
    That is exactly the pool's leaky bucket (aiolimiter's), as one number per window.
    After the windows: ``lv`` the limits' version (bumped on every change of them),
    ``learned`` (1: set by a worker's calibration, ``scripts_limits.RELIMIT``; 0:
    registered), ``dg`` the digest of the declared limits they belong to, ``ls`` the
    learned limits as text (``rate/per/burst;...``, empty when registered). Then, only
    for a token with windows of other resources, scopes or the calendar, ``d``: five
    fields a window (its unit, scope or "", calendar key or "", and for a calendar
    window its period's start and reset in wall-clock µs; its ``tk`` is then the units
    used in that period), or ``false``; and, only while some scope of the token cools,
    ``[scope, until, ...]`` (``false`` if none cools but scopes follow); then, only for a
    token with templates (``Limit(..., scope="*")``) that has made windows for scopes,
    ``[scope, t, cp, cr (per template), scope, ...]``: those windows (``lua_scopes.py``;
    the templates' own ``t`` is the level new scopes' windows start at). A lease
    counts in window ``k`` its part (requests, or the units of ``k``'s resource; nothing
    in another scope's window, nor in a template): ``lua.part``.

The index (sorted set ``{aurora:ns}:ready``)
    Every enabled token by the time it can fire its key cost (in no scope, nothing of
    other resources, a quota with any room counting as ready: a lower bound of when it
    can fire any lease), so the soonest token is the lowest score; disabled tokens are
    not in it (their reasons are in the hash ``{aurora:ns}:disabled``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .lua import COMPARE, PRELUDE
from .scripts_limits import LIMITS, RELIMIT
from .scripts_reserve import RESERVE
from .scripts_settle import SETTLE

# Shared token states: cool (for a duration, from the server's now), disable, enable.
# A cooldown may also fill some windows (flags "1 0 ..."), as the pool does locally when
# the API said the quota is spent: to all but one key cost as of the cooldown's end, so
# the token resumes at its steady rate, not with a burst the API would refuse again.
# A cooldown of a scope (scope given) holds only the token's leases of that scope; a
# flag on a template (``Limit(..., scope="*")``) fills that scope's window made from it.
# KEYS: ready, meta, disabled; ARGV: token prefix, id, op, argument, ttl ms, fill flags,
#   scope ('' or absent: the token)
# Returns 1 when something changed.
TOKEN_OP = (
    PRELUDE
    + r"""
local now = now_us()
local id, op = ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[5])
local st = load(ARGV[1] .. id)
if op == 'cool' then
  if st == nil then return 0 end
  local cool = math.ceil(now + tonumber(ARGV[4]))
  local scope = ARGV[7] or ''
  local changed = false
  local kc = st.kc
  if scope ~= '' then
    -- A scope cools: only the token's leases of that scope wait (their spent windows
    -- are filled for one call, as the pool's own cool_scope does).
    st.sc = st.sc or {}
    if cool > (st.sc[scope] or 0) then
      st.sc[scope] = cool
      changed = true
    end
    kc = 1
  elseif cool > st.cool then
    st.cool = cool
    changed = true
  end
  local k, base = 0, nil
  for flag in string.gmatch(ARGV[6] or '', '%S+') do
    k = k + 1
    local w = k
    if flag == '1' and k <= st.n and st.s ~= nil and st.s[k] == '*' then
      -- A template: the scope's own window made from it (made now if need be; none
      -- when the token holds SCOPES_MAX scopes none of which has drained: the
      -- cooldown alone holds the scope, as in one process). Not the token's cooldown.
      w = nil
      if scope ~= '' and st.tk ~= nil then
        base = base or make(st, scope, now, now)
        for q, j in ipairs(st.tk) do
          if j == k and base ~= nil then w = base + q end
        end
      end
    end
    if flag == '1' and w ~= nil and k <= st.n then
      local full = math.ceil(cool + (st.b[w] - kc) * st.e[w])
      if st.c ~= nil and st.c[w] ~= '' then full = st.b[w] end  -- a quota: spent
      if full > st.t[w] then
        st.t[w] = full
        changed = true
      end
    end
  end
  if not changed then return 0 end
  save(st, now, ttl)
  redis.call('ZADD', KEYS[1], 'XX', key_of(st), id)
  return 1
end
local changed = 0
if op == 'disable' then
  if redis.call('HSET', KEYS[3], id, ARGV[4]) == 1 then changed = 1 end
  redis.call('ZREM', KEYS[1], id)
  redis.call('PEXPIRE', KEYS[3], ttl)
else
  changed = redis.call('HDEL', KEYS[3], id)
  if changed == 1 and st ~= nil then redis.call('ZADD', KEYS[1], key_of(st), id) end
end
if changed == 1 then bump(KEYS[2], now, ttl) end
return changed
"""
)

# Register tokens (one chunk of a worker's set): create missing state, keep the state of
# tokens whose limits are unchanged, keep limits learned from the same declared ones
# (the worker adopts them), restart from full those whose limits changed otherwise.
# A missing state starts empty, unless the worker registered the token before (lost 1):
# then Redis has lost it (a restart, keys expired, a reset) and nobody knows how much of
# the bucket was just used, so it starts full.
# KEYS: ready, staging set, ids, disabled
# ARGV: token prefix, ttl ms, then per token: id, key cost, declared digest, lost, n,
#   (burst, us per unit) * n
# Returns: how many tokens had different limits in Redis, then per token its limits'
#   version and what to adopt ("" to keep the worker's own; else as shared_of says).
SYNC_CHUNK = (
    PRELUDE
    + r"""
local now = now_us()
local prefix = ARGV[1]
local ttl = tonumber(ARGV[2])
local changed = 0
local out = {0}
local i = 3
while i <= #ARGV do
  local id, kc, dg, lost = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3] == '1'
  local n = tonumber(ARGV[i + 4])
  i = i + 5
  local key = prefix .. id
  local st = load(key)
  -- Each window: burst, us per unit, unit, scope ('' none), calendar key ('' none).
  local plain = true
  for k = 1, n do
    local j = i + 5 * (k - 1)
    if ARGV[j + 2] ~= 'requests' or ARGV[j + 3] ~= '' or ARGV[j + 4] ~= '' then plain = false end
  end
  local same = st ~= nil and st.n == n and (st.u == nil) == plain
  if same then
    for k = 1, n do
      local j = i + 5 * (k - 1)
      if st.b[k] ~= tonumber(ARGV[j]) or st.e[k] ~= tonumber(ARGV[j + 1]) then same = false end
      if not plain and (st.u[k] ~= ARGV[j + 2] or st.s[k] ~= ARGV[j + 3]
          or st.c[k] ~= ARGV[j + 4]) then
        same = false
      end
    end
  end
  local adopt = ''
  if same then
    if st.dg ~= dg then st.dg, st.learned, st.ls = dg, 0, '' end
  elseif st ~= nil and st.learned == 1 and st.dg == dg then
    adopt = shared_of(st)  -- learned by some worker from the same declared limits
  else
    -- New, or other limits than before: a fresh token starts with empty buckets, one
    -- whose limits changed or whose state was lost with full ones (nothing is known of
    -- how they were spent; a calendar window: spent for the period the next call finds).
    local fresh = st == nil
    if not fresh then changed = changed + 1 end
    st = {key = key, n = n, kc = tonumber(kc), cool = fresh and 0 or st.cool, sc = st and st.sc,
          b = {}, e = {}, t = {}, lv = fresh and 0 or st.lv + 1, learned = 0, dg = dg, ls = ''}
    if not plain then st.u, st.s, st.c, st.cp, st.cr = {}, {}, {}, {}, {} end
    for k = 1, n do
      local j = i + 5 * (k - 1)
      st.b[k] = tonumber(ARGV[j])
      st.e[k] = tonumber(ARGV[j + 1])
      st.t[k] = 0
      local full = lost or not fresh
      if not plain then
        st.u[k], st.s[k], st.c[k] = ARGV[j + 2], ARGV[j + 3], ARGV[j + 4]
        st.cp[k], st.cr[k] = 0, 0
        if st.c[k] ~= '' then
          if full then st.cp[k] = -1 end
          full = false
        end
      end
      if full then st.t[k] = math.ceil(now + st.b[k] * st.e[k]) end
    end
  end
  save(st, now, ttl)
  out[#out + 1] = tostring(st.lv)
  out[#out + 1] = adopt
  i = i + 5 * n
  redis.call('SADD', KEYS[2], id)
  redis.call('SADD', KEYS[3], id)
  if redis.call('HEXISTS', KEYS[4], id) == 0 then
    redis.call('ZADD', KEYS[1], key_of(st), id)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
out[1] = changed
return out
"""
)

# Finish a worker's sync: its staged token set becomes its set; forget workers not seen
# for a while; drop tokens no live worker holds from the index; compare token sets.
# KEYS: staging, worker set, procs, digests, ready, meta, disabled, ids
# ARGV: worker id, digest, ttl ms, liveness ms, worker prefix
# Returns: version, other live workers, how many of them differ, 1 (registered), then
#   (id, reason) * disabled
SYNC_DONE = (
    PRELUDE
    + COMPARE
    + r"""
local now = now_us()
local now_ms = math.floor(now / 1000)
local worker, digest = ARGV[1], ARGV[2]
local ttl, live = tonumber(ARGV[3]), tonumber(ARGV[4])
local pprefix = ARGV[5]
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
else
  redis.call('DEL', KEYS[2])
end
local old = redis.call('HGET', KEYS[4], worker)
redis.call('ZADD', KEYS[3], now_ms, worker)
redis.call('HSET', KEYS[4], worker, digest)
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. (now_ms - live))
for _, d in ipairs(dead) do
  redis.call('ZREM', KEYS[3], d)
  redis.call('HDEL', KEYS[4], d)
  redis.call('DEL', pprefix .. d, pprefix .. d .. ':next')
end
if #dead > 0 or (old and old ~= digest) then
  local alive = redis.call('ZRANGE', KEYS[3], 0, -1)
  for _, id in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
    local held = false
    for _, p in ipairs(alive) do
      if redis.call('SISMEMBER', pprefix .. p, id) == 1
          or redis.call('SISMEMBER', pprefix .. p .. ':next', id) == 1 then
        held = true
        break
      end
    end
    if not held then redis.call('ZREM', KEYS[5], id) end
  end
end
if old ~= digest then bump(KEYS[6], now, ttl) end
for k = 2, 8 do
  if k ~= 5 then redis.call('PEXPIRE', KEYS[k], ttl) end
end
local others, differ = compare(KEYS[3], KEYS[4], worker, digest)
local out = {version_of(KEYS[6]), others, differ, 1}
for _, x in ipairs(redis.call('HGETALL', KEYS[7])) do out[#out + 1] = x end
return out
"""
)

# What a worker needs to catch up with: the version, membership and disabled tokens.
# KEYS: meta, procs, digests, disabled, worker set; ARGV: worker id, digest
# Returns: version, other live workers, how many differ, registered (0/1), then
#   (id, reason) * disabled
STATE = (
    PRELUDE
    + COMPARE
    + r"""
local others, differ = compare(KEYS[2], KEYS[3], ARGV[1], ARGV[2])
local out = {version_of(KEYS[1]), others, differ, redis.call('EXISTS', KEYS[5])}
for _, x in ipairs(redis.call('HGETALL', KEYS[4])) do out[#out + 1] = x end
return out
"""
)

# After an outage, a worker that served leases on its local limiter (``degrade``) is back.
# Unless the namespace's reserve calls went on meanwhile (none silent for longer than
# tau now, no gap that ended within hold: then Redis was there for the others, and
# only this worker's calls were slow), it holds: each window of its tokens becomes full
# as of ``hold`` from now at the least, so nothing is reserved in Redis before every
# worker that served locally has stopped doing so (each stops within ``hold`` of its
# own call; ``failover.py`` and docs/redis.md). ``force`` 1: hold without asking (the
# later chunks of a worker's tokens).
# KEYS: ready; ARGV: token prefix, ttl ms, hold us, tau us, force, then ids.
# Returns 1 if it held, else 0.
RESUME = (
    PRELUDE
    + r"""
local now = now_us()
local ttl, hold, tau = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[5] ~= '1' then
  local tag = string.sub(KEYS[1], 1, -7)  -- less ':ready'
  local last = tonumber(redis.call('GET', tag .. ':last') or nil)
  local gap = tonumber(redis.call('GET', tag .. ':gap') or nil)
  if last ~= nil and now - last <= tau and (gap == nil or now - gap > hold) then
    return 0
  end
end
local held = now + hold
for i = 6, #ARGV do
  local id = ARGV[i]
  local st = load(ARGV[1] .. id)
  if st ~= nil then
    for _, k in ipairs(all_ks(st)) do
      -- (Calendar windows: no worker served them locally; failover.py.) Templates too:
      -- the scopes made from them start full until then.
      if st.c == nil or st.c[k] == '' then
        local full = math.ceil(held + st.b[k] * st.e[k])
        if full > st.t[k] then st.t[k] = full end
      end
    end
    save(st, now, ttl)
    redis.call('ZADD', KEYS[1], 'XX', key_of(st), id)
  end
end
return 1
"""
)

# Every key of the namespace, gone. KEYS: the namespace's fixed keys (ids at 6, procs
# at 4); ARGV: token prefix, worker prefix. Returns how many keys were deleted.
RESET = (
    PRELUDE
    + r"""
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[6])) do
  n = n + redis.call('DEL', ARGV[1] .. id)
end
for _, p in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  n = n + redis.call('DEL', ARGV[2] .. p, ARGV[2] .. p .. ':next')
end
return n + redis.call('DEL', unpack(KEYS))
"""
)

# The shared state of every registered token, for inspection.
# KEYS: ready, ids, disabled; ARGV: token prefix
# Returns: server now, then per token: id, cool, score, reason, limits ("b/e;b/e")
INSPECT = (
    PRELUDE
    + r"""
local now = now_us()
local out = {fmt(now)}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local st = load(ARGV[1] .. id)
  local limits, cool = {}, ''
  if st ~= nil then
    cool = fmt(st.cool)
    for k = 1, st.n do limits[#limits + 1] = tostring(st.b[k]) .. '/' .. tostring(st.e[k]) end
  end
  out[#out + 1] = id
  out[#out + 1] = cool
  out[#out + 1] = redis.call('ZSCORE', KEYS[1], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or ''
  out[#out + 1] = table.concat(limits, ';')
end
return out
"""
)

#: A trivial script, for the benchmark's raw round trips.
ECHO = "return ARGV[1]"


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA1 (what ``EVALSHA`` names it by)."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


SCRIPTS = {
    name: Script(name, source)
    for name, source in {
        "reserve": RESERVE,
        "settle": SETTLE,
        "token_op": TOKEN_OP,
        "sync_chunk": SYNC_CHUNK,
        "sync_done": SYNC_DONE,
        "state": STATE,
        "resume": RESUME,
        "reset": RESET,
        "inspect": INSPECT,
        "relimit": RELIMIT,
        "limits": LIMITS,
    }.items()
}

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
    ``[scope, until, ...]``. A lease counts in window ``k`` its part (requests, or the
    units of ``k``'s resource; nothing in another scope's window): ``lua.part``.

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
from .scripts_settle import SETTLE

# Give back the reservations of waiters that left, then reserve leases for a batch of
# waiters, in order (one script call per batch; a batch is whatever queued up locally
# while the previous call was in flight). A reservation is given back exactly when no
# later reservation of that token followed it (every window still ends with it);
# otherwise it stays spent, which is safe: it can only make the token slower.
# KEYS: ready, worker set (the other keys of the namespace are named from their tag)
# ARGV: one JSON array (every argument costs the client to pack and the server to
#   parse; cjson decodes in C), [ttl ms, worker id, emax, tau, flags, gives, caps,
#   leases]: flags 1 for a heartbeat plus 2 to audit; emax the most us per unit of any
#   window; tau the worker's call timeout (us: a silence that long is a gap, below);
#   gives [[id, at, cost, [before, after, ...]], ...] (reservations to give back);
#   caps [id, budget, ...] (this worker's in-flight budgets that a batch this size
#   could use up); leases [cost, longest wait us or -1, ...] in queue order, a cost
#   being requests or [requests, scope or '', unit, units, ...]; then, if this worker has
#   calendar windows, its wall clock (us) and {calendar key: [5 resets, us], ...}.
# Returns one string (one bulk reply parses far faster than an array):
#   "version resync given workers|status delay id at lv undo...|..." with, per lease,
#   the status
#   0 reserved (at: server us of the reservation; lv: the token's limits version;
#   undo: "before after" per window: server us, or a quota's units used),
#   1 too late for its wait (nothing written; delay: the soonest it could be),
#   2 blocked by this worker's in-flight caps, 3 no token of this worker at all;
#   resync is 1 when some token had lost its state (register again); workers counts the
#   namespace's workers (this one too, and any not yet found dead: never too few).
# Every call also keeps the time of the namespace's last reserve call ({..}:last) and,
# when it comes after a silence longer than tau (or after Redis lost the namespace), the
# time that gap ended ({..}:gap): what RESUME asks to tell an outage from one worker's
# slow call.
RESERVE = (
    PRELUDE
    + r"""
local now = now_us()
local zkey, pset = KEYS[1], KEYS[2]
local tag = string.sub(zkey, 1, -7)  -- less ':ready'
local prefix = tag .. ':t:'
local p = cjson.decode(ARGV[1])
local ttl, worker, emax, tau, flags = p[1], p[2], p[3], p[4], p[5]
local touch, audit = flags % 2 == 1, flags >= 2
set_calendars(now, p[9], p[10])
local given = 0
for _, g in ipairs(p[6]) do
  local id, at, c, u = g[1], g[2], g[3], g[4]
  local st = load(prefix .. id)
  local latest = st ~= nil and st.n * 2 == #u
  if latest then
    for k = 1, st.n do
      if st.t[k] ~= u[2 * k] then latest = false end
      if st.c ~= nil and st.c[k] ~= '' and period(st.c[k], at - OFF) ~= st.cp[k] then
        latest = false  -- a calendar window in another period since
      end
    end
  end
  if latest then
    for k = 1, st.n do st.t[k] = u[2 * k - 1] end
    save(st, now, ttl)
    redis.call('ZADD', zkey, 'XX', key_of(st), id)
    if audit then
      local entry = fmt(at) .. ' ' .. id .. ' -' .. tostring(c) .. ' ' .. worker
      redis.call('RPUSH', tag .. ':audit', entry)
    end
    given = given + 1
  end
end
local budget = {}
local caps = p[7]
for j = 1, #caps, 2 do budget[caps[j]] = caps[j + 1] end
local leases = p[8]
local cache, member = {}, {}
local version = version_of(tag .. ':meta')
local resync = 0
local out = {''}
for L = 1, #leases, 2 do
  local c, w = leases[L], leases[L + 1]
  local req, parts, scope, shown = c, nil, '', tostring(c)
  if type(c) == 'table' then
    -- [requests, scope, unit, units, ...]: a lease of several resources, or in a scope
    req, scope, parts = c[1], c[2], {}
    local pieces = {tostring(req)}
    for i = 3, #c, 2 do
      parts[c[i]] = c[i + 1]
      pieces[#pieces + 1] = c[i] .. '=' .. tostring(c[i + 1])
    end
    if scope ~= '' then pieces[#pieces + 1] = '@' .. scope end
    shown = table.concat(pieces, ',')
  end
  local slack = 0
  if req < 1 then slack = (1 - req) * emax end
  local best, best_t, capped_t = nil, INF, INF
  local stale = {}
  local start, size, more = 0, 1, true
  while more do
    local items = redis.call('ZRANGE', zkey, start, start + size - 1, 'WITHSCORES')
    local m = #items
    for j = 1, m, 2 do
      if best_t <= now or tonumber(items[j + 1]) - slack >= best_t then
        more = false
        break
      end
      local id = items[j]
      local mine = member[id]
      if mine == nil then
        mine = redis.call('SISMEMBER', pset, id) == 1
        member[id] = mine
      end
      if mine then
        local st = cache[id]
        if st == nil then
          st = load(prefix .. id) or false
          cache[id] = st
          if not st then
            stale[#stale + 1] = id
            resync = 1
          end
        end
        if st then
          local t = ready(st, req, parts, scope)
          if t < best_t then
            local left = budget[id]
            if left ~= nil and left <= 0 then
              if t < capped_t then capped_t = t end
            else
              best, best_t = id, t
            end
          end
        end
      end
    end
    if m < 2 * size then more = false end
    start = start + size
    size = size * 4
  end
  for _, id in ipairs(stale) do redis.call('ZREM', zkey, id) end
  if best == nil then
    if capped_t < INF then out[#out + 1] = '2 0' else out[#out + 1] = '3 0' end
  else
    local s = math.ceil(best_t)
    if s < now then s = now end
    local delay = s - now
    if w >= 0 and delay > w then
      if capped_t - now <= w then out[#out + 1] = '2 0' else out[#out + 1] = '1 ' .. delay end
    else
      local st = cache[best]
      local undo = {'0', fmt(delay), best, fmt(s), tostring(st.lv)}
      for k = 1, st.n do
        local units = part(st, k, req, parts, scope)
        local cal = st.c ~= nil and st.c[k] ~= ''
        if cal and units ~= nil and units > 0 and s - OFF >= st.cr[k] then
          roll(st, k, s - OFF)  -- the reservation falls in a later period
        end
        local before = st.t[k]
        local after = before
        if units ~= nil and units > 0 then
          if cal then
            after = before + units
          else
            local base = before
            if s > base then base = s end
            after = math.ceil(base + units * st.e[k])
          end
        end
        st.t[k] = after
        if cal then  -- units used, not a time: every digit
          undo[#undo + 1] = num(before)
          undo[#undo + 1] = num(after)
        else
          undo[#undo + 1] = fmt(before)
          undo[#undo + 1] = fmt(after)
        end
      end
      save(st, now, ttl)
      redis.call('ZADD', zkey, key_of(st), best)
      local left = budget[best]
      if left ~= nil then budget[best] = left - 1 end
      if audit then
        local entry = fmt(s) .. ' ' .. best .. ' ' .. shown .. ' ' .. worker
        redis.call('RPUSH', tag .. ':audit', entry)
      end
      out[#out + 1] = table.concat(undo, ' ')
    end
  end
end
if touch then
  redis.call('ZADD', tag .. ':procs', math.floor(now / 1000), worker)
  for _, key in ipairs({zkey, pset, ':meta', ':procs', ':digests', ':disabled', ':ids'}) do
    if string.sub(key, 1, 1) == ':' then key = tag .. key end
    redis.call('PEXPIRE', key, ttl)
  end
end
if audit then redis.call('PEXPIRE', tag .. ':audit', ttl) end
local last = tonumber(redis.call('GET', tag .. ':last') or nil)
if last == nil or now - last > tau then redis.call('SET', tag .. ':gap', fmt(now), 'PX', ttl) end
redis.call('SET', tag .. ':last', fmt(now), 'PX', ttl)
local procs = tag .. ':procs'
local workers = redis.call('ZCARD', procs)
if not redis.call('ZSCORE', procs, worker) then workers = workers + 1 end
out[1] = version .. ' ' .. resync .. ' ' .. given .. ' ' .. workers
return table.concat(out, '|')
"""
)

# Shared token states: cool (for a duration, from the server's now), disable, enable.
# A cooldown may also fill some windows (flags "1 0 ..."), as the pool does locally when
# the API said the quota is spent: to all but one key cost as of the cooldown's end, so
# the token resumes at its steady rate, not with a burst the API would refuse again.
# A cooldown of a scope (scope given) holds only the token's leases of that scope.
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
  local k = 0
  for flag in string.gmatch(ARGV[6] or '', '%S+') do
    k = k + 1
    if flag == '1' and k <= st.n then
      local full = math.ceil(cool + (st.b[k] - kc) * st.e[k])
      if st.c ~= nil and st.c[k] ~= '' then full = st.b[k] end  -- a quota: spent
      if full > st.t[k] then
        st.t[k] = full
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
    for k = 1, st.n do
      -- (Calendar windows: no worker served them locally; failover.py.)
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

"""The reserve script: give back the reservations of waiters that left, then reserve
a batch of leases (``RESERVE``). ``scripts.py`` documents a token's state; ``lua.py`` has
the parts of a lease each window counts, and ``lua_scopes.py`` the windows made for
scopes from templates.
"""

from __future__ import annotations

from .lua import PRELUDE

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
#   gives [[id, at, cost, [before, after, ...], scope], ...] (reservations to give back);
#   caps [id, budget, ...] (this worker's in-flight budgets that a batch this size
#   could use up); leases [cost, longest wait us or -1, ...] in queue order, a cost
#   being requests or [requests, scope or '', unit, units, ...]; then, if this worker has
#   calendar windows, its wall clock (us) and {calendar key: [5 resets, us], ...}.
# Returns one string (one bulk reply parses far faster than an array):
#   "version resync given workers|status delay id at lv undo...|..." with, per lease,
#   the status
#   0 reserved (at: server us of the reservation; lv: the token's limits version;
#   undo: "before after" per window the lease counts in, ``lua_scopes.lease_ks``: the
#   token's own, then those made for its scope from templates; server us, or a quota's
#   units used),
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
  local ks = st ~= nil and lease_ks(st, g[5] or '')
  local latest = st ~= nil and #ks * 2 == #u
  if latest then
    for i, k in ipairs(ks) do
      if st.t[k] ~= u[2 * i] then latest = false end
      if st.c ~= nil and st.c[k] ~= '' and period(st.c[k], at - OFF) ~= st.cp[k] then
        latest = false  -- a calendar window in another period since
      end
    end
  end
  if latest then
    for i, k in ipairs(ks) do st.t[k] = u[2 * i - 1] end
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
      make(st, scope, now, s)  -- the scope's windows from the templates, if need be
      for _, k in ipairs(lease_ks(st, scope)) do
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

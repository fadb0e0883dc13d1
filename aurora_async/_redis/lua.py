"""The Lua every script of the backend shares: the server's clock, a token's state and
the namespace's version (``PRELUDE``), and the comparison of workers' token sets
(``COMPARE``). ``scripts.py`` documents the state; the scripts themselves are there and
in ``scripts_limits.py``.
"""

from __future__ import annotations

from .lua_scopes import SCOPES

PRELUDE = (
    r"""
local INF = math.huge

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function fmt(x)
  return string.format('%.0f', x)
end

local function num(x)
  return string.format('%.17g', x)
end

-- The namespace's version: "<epoch>.<counter>", bumped on every change of disabled
-- states or membership. The epoch (the server time the namespace's meta was created)
-- keeps versions from repeating after Redis lost its data.
local function version_of(meta)
  local x = redis.call('HMGET', meta, 'e', 'v')
  return (x[1] or '0') .. '.' .. (x[2] or '0')
end

local function bump(meta, now, ttl)
  redis.call('HSETNX', meta, 'e', fmt(now))
  redis.call('HINCRBY', meta, 'v', 1)
  redis.call('PEXPIRE', meta, ttl)
end

-- The calendars of the call (``set_calendars``): key -> consecutive resets (wall-clock
-- Unix us, from the caller's calendar arithmetic); OFF, the server's clock less the
-- caller's wall clock (us); WALL, the caller's wall clock when it made the call. Empty
-- (nil) in scripts that take none: their calendar windows stay in the period they are.
local CAL, OFF, WALL = {}, 0, nil

local function set_calendars(now, wall, cals)
  if wall then
    OFF, CAL, WALL = now - wall, cals, wall
  end
end

-- The calendar period (start, reset) that holds the wall time x, from the resets the
-- caller sent for calendar key; nil when they do not cover x.
local function period(key, x)
  local r = CAL[key]
  if r == nil then return nil end
  for i = 1, #r - 1 do
    if r[i] <= x and x < r[i + 1] then return r[i], r[i + 1] end
  end
  return nil
end

-- Bring calendar window k to the period holding the wall time x, unless the namespace
-- is in that period or a later one already (periods only move forward). A window made
-- full while nobody knew the period (cp -1: its state was lost, or an outage) is full
-- in the first period found. Returns false when the period of x is unknown.
local function roll(st, k, x)
  local s, r = period(st.c[k], x)
  if s == nil then return false end
  if st.cp[k] < 0 then
    st.cp[k], st.cr[k], st.t[k] = s, r, st.b[k]
  elseif s > st.cp[k] then
    st.cp[k], st.cr[k], st.t[k] = s, r, 0
  end
  return true
end

"""
    + SCOPES
    + r"""
-- A token's shared state, or nil when it has none. After the windows: the limits'
-- version, whether they were learned, the digest of the declared limits they come
-- from, and the learned limits' text (absent in a state written by an older version);
-- then, for a token with windows of other resources, scopes or the calendar, five
-- fields per window (unit, scope or '', calendar key or '', and for a calendar window
-- its period's start and reset, wall-clock us: its t is then the units used in that
-- period), else false; then the scopes cooling, "scope until ..." (or nothing).
local function load(key)
  local raw = redis.call('GET', key)
  if not raw then return nil end
  local f = cmsgpack.unpack(raw)
  local n = f[1]
  local st = {key = key, n = n, kc = f[2], cool = f[3], b = {}, e = {}, t = {}}
  for k = 1, n do
    local j = 1 + 3 * k
    st.b[k] = f[j]
    st.e[k] = f[j + 1]
    st.t[k] = f[j + 2]
  end
  local j = 4 + 3 * n
  st.lv, st.learned, st.dg, st.ls = f[j] or 0, f[j + 1] or 0, f[j + 2] or '', f[j + 3] or ''
  local d = f[j + 4]
  if d then
    st.u, st.s, st.c, st.cp, st.cr = {}, {}, {}, {}, {}
    for k = 1, n do
      local i = 5 * (k - 1)
      st.u[k], st.s[k], st.c[k] = d[i + 1], d[i + 2], d[i + 3]
      st.cp[k], st.cr[k] = d[i + 4], d[i + 5]
    end
  end
  local sc = f[j + 5]
  if sc then
    st.sc = {}
    for i = 1, #sc, 2 do st.sc[sc[i]] = sc[i + 1] end
  end
  if d then load_scopes(st, f[j + 6]) end
  return st
end

-- What a lease of req requests, parts (unit -> units, or nil) in scope ('' for none)
-- takes from window k of st: nil when the window does not count it (another scope's).
local function part(st, k, req, parts, scope)
  if st.u == nil then return req end
  local s = st.s[k]
  if s ~= '' and s ~= scope then return nil end
  local u = st.u[k]
  if u == 'requests' then return req end
  if parts == nil then return 0 end
  return parts[u] or 0
end

-- The earliest server time (us) at which window k takes units (INF if never).
local function window_ready(st, k, units)
  local b = st.b[k]
  if units > b then return INF end
  if st.c ~= nil and st.c[k] ~= '' then
    if WALL ~= nil and not roll(st, k, WALL) then return INF end
    if st.t[k] + units <= b then return -INF end
    return st.cr[k] + OFF
  end
  return st.t[k] + (units - b) * st.e[k]
end

-- The earliest server time (us) at which the token can fire a lease of req requests
-- (and parts, in scope: see part).
local function ready(st, req, parts, scope)
  local r = st.cool
  if st.sc ~= nil and scope ~= nil and scope ~= '' then
    local until_ = st.sc[scope]
    if until_ ~= nil and until_ > r then r = until_ end
  end
  local n, base = st.n, st.tk ~= nil and st.made[scope]
  if base then n = n + #st.tk end  -- the scope's windows made from templates follow
  for i = 1, n do
    local k = i
    if i > st.n then k = base + i - st.n end
    local units = part(st, k, req, parts, scope)
    if units ~= nil then
      local x = window_ready(st, k, units)
      if x > r then r = x end
    end
  end
  if not base and templated(st, scope) then
    -- Windows not made yet: as their templates (the floor they would be made at); and a
    -- token full of scopes makes them once the first of those drains.
    if st.nm >= SCOPES_MAX then
      local x = first_drain(st)
      if x > r then r = x end
    end
    for _, k in ipairs(st.tk) do
      local units = req
      if st.u[k] ~= 'requests' then units = parts ~= nil and parts[st.u[k]] or 0 end
      local x = window_ready(st, k, units)
      if x > r then r = x end
    end
  end
  return r
end

-- The token's key in the index: when it can fire its key cost of requests in no scope
-- and nothing of other resources, a calendar window counting as ready while it has
-- any room: a lower bound of when it can fire any lease.
local function key_of(st)
  if st.u == nil then return math.ceil(ready(st, st.kc)) end
  local r = st.cool
  for k = 1, st.n do
    if st.s[k] == '' then
      local x
      if st.c[k] ~= '' then
        x = -INF
        if st.t[k] >= st.b[k] and st.cp[k] >= 0 then x = st.cr[k] + OFF end
      else
        local units = 0
        if st.u[k] == 'requests' then units = st.kc end
        x = st.t[k] + (units - st.b[k]) * st.e[k]
      end
      if x > r then r = x end
    end
  end
  return math.ceil(r)
end

-- Write a token's state back; it expires after ttl ms idle, never while it matters.
local function save(st, now, ttl)
  local f = {st.n, st.kc, st.cool}
  local last = st.cool
  local cal = st.c ~= nil
  for k = 1, st.n do
    f[#f + 1] = st.b[k]
    f[#f + 1] = st.e[k]
    f[#f + 1] = st.t[k]
    if cal and st.c[k] ~= '' then
      if st.cr[k] + OFF > last then last = st.cr[k] + OFF end
    elseif st.t[k] > last then
      last = st.t[k]
    end
  end
  f[#f + 1] = st.lv or 0
  f[#f + 1] = st.learned or 0
  f[#f + 1] = st.dg or ''
  f[#f + 1] = st.ls or ''
  local md
  md, last = saved_scopes(st, last)
  if st.u ~= nil or st.sc ~= nil then
    local d = false
    if st.u ~= nil then
      d = {}
      for k = 1, st.n do
        d[#d + 1] = st.u[k]
        d[#d + 1] = st.s[k]
        d[#d + 1] = st.c[k]
        d[#d + 1] = st.cp[k]
        d[#d + 1] = st.cr[k]
      end
    end
    f[#f + 1] = d
    if st.sc ~= nil then
      local sc = {}
      for scope, until_ in pairs(st.sc) do
        if until_ > now then
          sc[#sc + 1] = scope
          sc[#sc + 1] = until_
          if until_ > last then last = until_ end
        end
      end
      if #sc > 0 then f[#f + 1] = sc end
    end
    if md ~= nil then
      f[9 + 3 * st.n] = f[9 + 3 * st.n] or false  -- (no scope cooling)
      f[10 + 3 * st.n] = md
    end
  end
  local ms = math.ceil((last - now) / 1000) + 1000
  if ms < ttl then ms = ttl end
  redis.call('SET', st.key, cmsgpack.pack(f), 'PX', ms)
end

-- A token's limits as a worker adopts them: "<text>|<burst> <us per unit> ...", the
-- text (rate/per/burst;...) empty when they were registered rather than learned.
local function shared_of(st)
  local be = {}
  for k = 1, st.n do
    be[#be + 1] = string.format('%.17g', st.b[k])
    be[#be + 1] = string.format('%.17g', st.e[k])
  end
  return st.ls .. '|' .. table.concat(be, ' ')
end

-- New windows (bursts nb, us per unit ne) for a token, from its state at now: a window
-- that is unchanged keeps its theoretical arrival time; a changed one starts full
-- (as the pool's own Scheduler.relimit does) and holds at least what any old window j
-- still has reserved (every reservation went through every window), so it never admits
-- more than its limit on top of reservations made under the old limits.
local function carry(st, now, nb, ne)
  local t = {}
  for k = 1, #nb do
    local keep = nil
    for j = 1, st.n do
      if st.b[j] == nb[k] and st.e[j] == ne[k] then keep = st.t[j] break end
    end
    if keep == nil then
      local best = INF
      for j = 1, st.n do
        local tj = st.t[j]
        local units = 0
        if tj > now then units = (tj - now) / st.e[j] end
        if units < nb[k] then units = nb[k] end
        local x = now + units * ne[k]
        if tj > x then x = tj end
        if x < best then best = x end
      end
      if best == INF then best = now + nb[k] * ne[k] end
      keep = math.ceil(best)
    end
    t[k] = keep
  end
  return t
end

"""
)

COMPARE = r"""
-- How many other live workers there are, and how many of them hold a different token set.
local function compare(procs, digests, worker, digest)
  local others, differ = 0, 0
  for _, p in ipairs(redis.call('ZRANGE', procs, 0, -1)) do
    if p ~= worker then
      others = others + 1
      local d = redis.call('HGET', digests, p)
      if d and d ~= digest then differ = differ + 1 end
    end
  end
  return others, differ
end
"""

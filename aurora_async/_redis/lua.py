"""The Lua every script of the backend shares: the server's clock, a token's state and
the namespace's version (``PRELUDE``), and the comparison of workers' token sets
(``COMPARE``). ``scripts.py`` documents the state; the scripts themselves are there and
in ``scripts_limits.py``.
"""

from __future__ import annotations

PRELUDE = r"""
local INF = math.huge

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function fmt(x)
  return string.format('%.0f', x)
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

-- A token's shared state, or nil when it has none. After the windows: the limits'
-- version, whether they were learned, the digest of the declared limits they come
-- from, and the learned limits' text (absent in a state written by an older version).
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
  return st
end

-- The earliest server time (us) at which the token can fire cost c.
local function ready(st, c)
  local r = st.cool
  for k = 1, st.n do
    local b = st.b[k]
    if c > b then return INF end
    local x = st.t[k] + (c - b) * st.e[k]
    if x > r then r = x end
  end
  return r
end

local function key_of(st)
  return math.ceil(ready(st, st.kc))
end

-- Write a token's state back; it expires after ttl ms idle, never while it matters.
local function save(st, now, ttl)
  local f = {st.n, st.kc, st.cool}
  local last = st.cool
  for k = 1, st.n do
    f[#f + 1] = st.b[k]
    f[#f + 1] = st.e[k]
    f[#f + 1] = st.t[k]
    if st.t[k] > last then last = st.t[k] end
  end
  f[#f + 1] = st.lv or 0
  f[#f + 1] = st.learned or 0
  f[#f + 1] = st.dg or ''
  f[#f + 1] = st.ls or ''
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

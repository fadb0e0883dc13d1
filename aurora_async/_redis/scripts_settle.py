"""The Lua script that settles a lease's true cost in the shared state (``Lease.settle``
under ``RedisBackend``). ``scripts.py`` documents a token's state; ``lua.py`` has the
parts of a lease each window counts, and the calendar periods.
"""

from __future__ import annotations

from .lua import PRELUDE

# A lease's true cost differed from what it reserved (``Lease.settle``): every window
# that counted the lease takes the difference of its part now. Less comes back at once
# (never below an empty bucket); more is debt: the window's theoretical arrival time
# goes past a full bucket's, and nothing fits until it has drained. A calendar window
# moves to the caller's period first, and counts the difference there, except a refund of
# a lease granted in an earlier period (that period's count is gone; this one never
# counted the reservation: CalendarWindow.adjust's rule). A lease in a scope that counts
# in windows made from templates (``lua_scopes.py``) settles in that scope's windows,
# made again if they were forgotten (unless the token holds SCOPES_MAX scopes none of
# which has drained: then, as in one process, the scope's windows take nothing).
# KEYS: ready, the token's state; ARGV: one JSON array [id, ttl ms, scope ('' none),
#   [unit, difference, ...], the grant's wall clock (us), then the calendars, as the
#   reserve call's]
# Returns 1 if something changed (0: no such token, or nothing to settle).
SETTLE = (
    PRELUDE
    + r"""
local now = now_us()
local p = cjson.decode(ARGV[1])
local id, ttl, scope, d, granted = p[1], p[2], p[3], p[4], p[5]
set_calendars(now, p[6], p[7])
local st = load(KEYS[2])
if st == nil then return 0 end
local deltas = {}
for i = 1, #d, 2 do deltas[d[i]] = d[i + 1] end
local changed = 0
make(st, scope, now, now)  -- a scope's windows from the templates, as a grant makes them
for _, k in ipairs(lease_ks(st, scope)) do
  local delta = part(st, k, deltas['requests'] or 0, deltas, scope)
  if delta ~= nil and delta ~= 0 then
    if st.c ~= nil and st.c[k] ~= '' then
      if WALL ~= nil then roll(st, k, WALL) end
      if delta < 0 and st.cp[k] >= 0 and granted < st.cp[k] then
        delta = 0  -- granted in an earlier period: nothing of it to give back
      else
        local used = st.t[k] + delta
        if used < 0 then used = 0 end
        st.t[k] = used
      end
    else
      local base = st.t[k]
      if now > base then base = now end
      local t = math.ceil(base + delta * st.e[k])
      if t < now then t = now end
      st.t[k] = t
    end
    if delta ~= 0 then changed = 1 end
  end
end
if changed == 1 then
  save(st, now, ttl)
  redis.call('ZADD', KEYS[1], 'XX', key_of(st), id)
end
return changed
"""
)

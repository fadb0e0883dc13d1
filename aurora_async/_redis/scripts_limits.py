"""The Lua scripts that share learned limits: a worker's calibration changed a token's
effective limits (``RELIMIT``), or a worker reads the limits a token has now
(``LIMITS``). ``scripts.py`` documents a token's state; ``lua.py`` has ``carry``, the
rule that moves a token's buckets to new limits.
"""

from __future__ import annotations

from .lua import PRELUDE

# A worker's calibration changed a token's limits from ``was`` to ``new``. Applied when
# ``was`` are the shared limits (the worker decided from what every worker enforces), or
# when the new limits are no higher in any window (a lower limit is always safe, even
# decided from another belief); refused otherwise, and the worker adopts the shared
# ones. The windows carry over (``carry``: changed ones start full, never admitting
# more than the new limit on top of what was reserved under the old one).
# KEYS: ready, the token's state; ARGV: id, ttl ms, text of the new limits
#   ("rate/per/burst;..."), n, (burst, us per unit) * n, m, (burst, us per unit) * m
#   (was)
# Returns: status (1 applied or already so, 0 refused, 2 the token has no state: the
#   worker registers again), the limits' version, what to adopt ("" or as shared_of)
RELIMIT = (
    PRELUDE
    + r"""
local id, ttl, text = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local st = load(KEYS[2])
if st == nil then return {2, '0', ''} end
local n = tonumber(ARGV[4])
local nb, ne = {}, {}
for k = 1, n do
  nb[k] = tonumber(ARGV[3 + 2 * k])
  ne[k] = tonumber(ARGV[4 + 2 * k])
end
local m = tonumber(ARGV[5 + 2 * n])
local same, based, lower = st.n == n, st.n == m, st.n == n
for k = 1, st.n do
  if same and (st.b[k] ~= nb[k] or st.e[k] ~= ne[k]) then same = false end
  if lower and (nb[k] > st.b[k] or ne[k] < st.e[k]) then lower = false end
  if based then
    local j = 4 + 2 * n + 2 * k
    if st.b[k] ~= tonumber(ARGV[j]) or st.e[k] ~= tonumber(ARGV[j + 1]) then based = false end
  end
end
if same then return {1, tostring(st.lv), ''} end
if not based and not lower then return {0, tostring(st.lv), shared_of(st)} end
local now = now_us()
if st.tk ~= nil then
  -- Scopes made from templates go back into them (each keeps the fuller), which carry
  -- moves to the new limits: the scopes are made again from them.
  for _, scope in ipairs(st.ms) do
    if st.made[scope] then forget(st, scope) end
  end
  st.tk = nil
end
st.t = carry(st, now, nb, ne)
st.n, st.b, st.e = n, nb, ne
local kc = 1
for k = 1, n do
  if nb[k] < kc then kc = nb[k] end
end
st.kc = kc
st.lv, st.learned, st.ls = st.lv + 1, 1, text
save(st, now, ttl)
redis.call('ZADD', KEYS[1], 'XX', key_of(st), id)
return {1, tostring(st.lv), ''}
"""
)

# The limits a token has now. KEYS: the token's state
# Returns: the limits' version ("" when the token has no state), what to adopt
LIMITS = (
    PRELUDE
    + r"""
local st = load(KEYS[1])
if st == nil then return {'', ''} end
return {tostring(st.lv), shared_of(st)}
"""
)

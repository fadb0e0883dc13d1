"""The Lua of scope templates (``Limit(..., scope="*")``) in a token's shared state: the
windows made for each scope from the token's templates, kept bounded as one process
keeps them (``aurora_async._core.slot``: ``SCOPES_KEPT``, ``SCOPES_MAX``).

``lua.py`` puts this in the prelude every script shares, after the calendar periods and
before ``load`` (which makes the saved scopes' windows again with ``add_scope``).

A template is a window of the token's state like any other (burst, us per unit, unit,
scope ``*``, calendar) that counts no lease: ``*`` is no lease's scope. Its level is the
*floor* of the windows it makes: a scope's windows are made as copies of their
templates (a template registered fresh is empty, so a new scope's windows are; one
registered full, after a loss or a change of limits, or held full by ``RESUME``, makes
them full), and a scope's windows forgotten go back into their templates (each keeps the
fuller of the two). So whatever a forgotten scope still held, its next windows hold at
least that: forgetting a scope never lets it fire early, even one forgotten before it
drained (at ``SCOPES_MAX``, for a reservation due once it has drained).

In a loaded state, the windows made for scopes follow the token's own ``n`` in the
window arrays, ``m`` (the templates) per scope: ``st.tk`` the templates' indexes,
``st.made[scope]`` the index before that scope's first window (``false``: forgotten in
this call), ``st.ms`` the scopes in the order they were first made (each once; a
forgotten one stays listed until the state is saved, and is not listed again if made
again), ``st.nm`` how many are made, ``st.nw`` the windows in the arrays.
Saved after the scopes cooling: ``[scope, t, cp, cr (per template), scope, ...]``.
"""

from __future__ import annotations

from .._core.slot import SCOPES_KEPT, SCOPES_MAX

SCOPES = (
    f"""
local SCOPES_KEPT, SCOPES_MAX = {SCOPES_KEPT}, {SCOPES_MAX}
"""
    + r"""
-- Make windows for scope from the templates, at the templates' levels (their floors);
-- returns the index before the first of them.
local function add_scope(st, scope)
  local base = st.nw
  for q, j in ipairs(st.tk) do
    local k = base + q
    st.b[k], st.e[k], st.t[k] = st.b[j], st.e[j], st.t[j]
    st.u[k], st.s[k], st.c[k], st.cp[k], st.cr[k] = st.u[j], scope, st.c[j], st.cp[j], st.cr[j]
  end
  st.nw = base + #st.tk
  if st.made[scope] == nil then st.ms[#st.ms + 1] = scope end  -- (false: listed, forgotten)
  st.made[scope] = base
  st.nm = st.nm + 1
  return base
end

-- The windows a lease in scope counts in, by index: the token's own, and those made
-- for scope (none made here).
local function lease_ks(st, scope)
  local ks = {}
  for k = 1, st.n do ks[k] = k end
  local base = st.made ~= nil and scope ~= nil and st.made[scope]
  if base then
    for q = 1, #st.tk do ks[#ks + 1] = base + q end
  end
  return ks
end

-- When window k is empty (server us) if nothing more is put in it; a quota used in a
-- period nobody can name (no calendars in this call) counts as never.
local function drain_at(st, k)
  if st.c[k] == '' then return st.t[k] end
  if WALL ~= nil then roll(st, k, WALL) end
  if st.t[k] <= 0 and st.cp[k] >= 0 then return -INF end
  if WALL == nil or st.cp[k] < 0 then return INF end
  return st.cr[k] + OFF
end

local function drain_of(st, scope)
  local base, r = st.made[scope], -INF
  for q = 1, #st.tk do
    local x = drain_at(st, base + q)
    if x > r then r = x end
  end
  return r
end

-- When the first of the scopes made drains (and so may give way to another): the
-- soonest a token holding SCOPES_MAX of them takes a new scope. The scope, too.
local function first_drain(st)
  local r, first = INF, nil
  for _, scope in ipairs(st.ms) do
    if st.made[scope] then
      local x = drain_of(st, scope)
      if x < r then r, first = x, scope end
    end
  end
  return r, first
end

-- Forget scope's windows: each goes back into its template, which keeps the fuller
-- (a quota: the later period's use, or the larger in the same period).
local function forget(st, scope)
  local base = st.made[scope]
  for q, j in ipairs(st.tk) do
    local k = base + q
    if st.c[k] ~= '' then
      if st.cp[k] > st.cp[j] or (st.cp[k] == st.cp[j] and st.t[k] > st.t[j]) then
        st.t[j], st.cp[j], st.cr[j] = st.t[k], st.cp[k], st.cr[k]
      end
    elseif st.t[k] > st.t[j] then
      st.t[j] = st.t[k]
    end
  end
  st.made[scope] = false  -- still listed in st.ms: made again, it is not listed twice
  st.nm = st.nm - 1
end

-- Whether a lease in scope counts in windows made from the templates (the token has
-- templates and declares no window of that scope itself).
local function templated(st, scope)
  if st.tk == nil or scope == nil or scope == '' then return false end
  if st.made[scope] then return true end
  for k = 1, st.n do
    if st.s[k] == scope then return false end
  end
  return true
end

-- The windows of scope, made now if need be: the index before the first, or nil (the
-- scope has its own windows, or the token no templates; or it holds SCOPES_MAX scopes
-- of which none drains by ``by``). Past SCOPES_KEPT, the scopes drained by now are
-- forgotten; at SCOPES_MAX, the first to drain gives way (it has drained by ``by``, the
-- reservation's time: ``ready`` waited for it; its windows go into the templates).
local function make(st, scope, now, by)
  if not templated(st, scope) then return nil end
  local base = st.made[scope]
  if base then return base end
  if st.nm >= SCOPES_KEPT then
    for _, name in ipairs(st.ms) do
      if st.made[name] and drain_of(st, name) <= now then forget(st, name) end
    end
    if st.nm >= SCOPES_MAX then
      local at, first = first_drain(st)
      if at > by then return nil end
      forget(st, first)
    end
  end
  return add_scope(st, scope)
end

-- Every window's index, the token's own and every scope's made.
local function all_ks(st)
  local ks = lease_ks(st, '')
  if st.tk ~= nil then
    for _, scope in ipairs(st.ms) do
      local base = st.made[scope]
      if base then
        for q = 1, #st.tk do ks[#ks + 1] = base + q end
      end
    end
  end
  return ks
end

-- Read the templates of a loaded state, and the windows saved for its scopes (md).
local function load_scopes(st, md)
  local tk = {}
  for k = 1, st.n do
    if st.s[k] == '*' then tk[#tk + 1] = k end
  end
  if #tk == 0 then return end
  st.tk, st.ms, st.made, st.nm, st.nw = tk, {}, {}, 0, st.n
  if not md then return end
  local i, m = 1, #tk
  while i <= #md do
    local base = add_scope(st, md[i])
    for q = 1, m do
      local j = i + 3 * q - 2
      st.t[base + q], st.cp[base + q], st.cr[base + q] = md[j], md[j + 1], md[j + 2]
    end
    i = i + 1 + 3 * m
  end
end

-- The windows made for scopes, as saved ([scope, t, cp, cr, ...]), or nil; and the
-- latest time one of them matters until (for the state's expiry).
local function saved_scopes(st, last)
  if st.tk == nil or st.nm == 0 then return nil, last end
  local md = {}
  for _, scope in ipairs(st.ms) do
    local base = st.made[scope]
    if base then
      md[#md + 1] = scope
      for q = 1, #st.tk do
        local k = base + q
        md[#md + 1] = st.t[k]
        md[#md + 1] = st.cp[k]
        md[#md + 1] = st.cr[k]
        local x = st.t[k]
        if st.c[k] ~= '' then x = st.cr[k] + OFF end
        if x > last then last = x end
      end
    end
  end
  return md, last
end
"""
)

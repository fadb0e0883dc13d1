"""The scheduler's index on random histories of everything that moves a token's entry
(grants on every path, waiters, cancels, refunds, releases, settles, cooldowns, limits
learned or stated, caps, disabling, removing and reviving, pruning, clock shifts, lane
compaction): after each step every token has exactly one current entry (``seq`` equal to
its own) in all lanes together if it is indexed and none otherwise, in its own lane, and
it is indexed exactly when it may take a lease. A stale entry taken for current (a number
kept when its old entry stayed behind) would break the first rule.
"""

from __future__ import annotations

import random

import pytest

from aurora_async import Costs, Limit, Token
from aurora_async._core.costs import settled
from aurora_async._core.scheduler import INF, Scheduler, Waiter

OPS = [
    "adv",
    "take",
    "vtake",
    "other",
    "enq",
    "enq",
    "disp",
    "cancel",
    "refund",
    "rel",
    "rel",
    "settle",
    "cool",
    "coolnow",
    "relimit",
    "keep",
    "restate",
    "cap",
    "dis",
    "en",
    "rem",
    "restore",
    "revive",
    "prune",
    "shift",
    "charge",
    "scope",
]

TIERS = [
    (Limit(4, per=1, burst=2),),
    (Limit(3, per=1, burst=2), Limit(10, per=8)),
    (Limit(1, per=2, burst=3),),
    (Limit(5, per=1), Limit(1000, per=1, unit="tokens")),
    (Limit(2, per=1, burst=0.5),),
]


def run(seed: int, steps: int = 300) -> None:
    R = random.Random(seed)
    s = Scheduler(trial_in_flight=R.choice([None, 1]))
    now = 0.0
    same = R.random() < 0.5
    slots = []
    values = []
    for i in range(R.randint(1, 5)):
        v = f"secret-token-{i:03d}"
        values.append(v)
        t = TIERS[0 if same else R.randrange(len(TIERS))]
        slots.append(
            s.add(Token(v), f"t{i}", t, R.choice([None, 1, 2]), now, full=R.random() < 0.5)
        )
    held = []  # (slot, cost, granted_at, waiter)
    queued = []
    vec = Costs(1, {"tokens": 5})

    def all_slots():
        return list(s.slots.values()) + [sl for _, sl in s.retired_items()]

    def check(op):
        lanes = s._lane_list
        for sl in all_slots():
            cur = [
                (li, e)
                for li, lane in enumerate(lanes)
                for e in (*lane.fifo, *lane.heap)
                if e[2] is sl and e[1] == sl.seq
            ]
            want = 1 if sl.indexed else 0
            assert len(cur) == want, (seed, op, sl.name, sl.seq, sl.indexed, cur)
            if cur:
                assert lanes[cur[0][0]] is sl.lane, (seed, op, "current entry in another lane")
            exp = sl.usable and sl.in_flight < sl.cap and not sl.removed
            assert sl.indexed == exp, (seed, op, sl.name, sl.indexed, exp)

    def took(sl, cost, w=None):
        held.append((sl, cost, now, w))

    for _step in range(steps):
        op = R.choice(OPS)
        live = list(s.slots.values())
        pick = R.choice(live) if live else None  # the token the step changes, if any
        if op == "adv":
            now += R.choice([0.0, 0.001, 0.1, 0.5, 2.0])
        elif op == "take":
            c = R.choice([1.0, 0.5, 2.0, 1])
            if s.fits(c):
                sl = s.try_take(c, now)
                if sl:
                    took(sl, c)
        elif op == "vtake":
            try:
                s.check_cost(vec)
            except Exception:
                continue
            sl = s.try_take_vector(vec, now)
            if sl:
                took(sl, vec)
        elif op == "other":
            sl0 = pick
            if sl0:
                sl = s.take_other(1.0, now, sl0)
                if sl:
                    took(sl, 1.0)
        elif op == "enq":
            for _ in range(R.randint(1, 6)):
                c = R.choice([1.0, 1.0, 0.5, 2.0, vec])
                try:
                    s.check_cost(c)
                except Exception:
                    continue
                w = Waiter(c, now + R.choice([INF, 0.5, 2.0]), now)
                queued.append(w)
                if s.enqueue(w):
                    g, _, _ = s.dispatch(now)
                    for x in g:
                        took(x.slot, x.cost, x)
        elif op == "disp":
            g, _e, _ = s.dispatch(now)
            for x in g:
                took(x.slot, x.cost, x)
        elif op == "cancel":
            lv = [w for w in queued if w.live]
            if lv:
                s.cancel(R.choice(lv))
        elif op == "refund" and held:
            sl, c, at, w = held.pop(R.randrange(len(held)))
            s.refund(sl, c, at, now, w)
        elif op == "rel" and held:
            sl, c, at, w = held.pop(R.randrange(len(held)))
            s.release(sl)
        elif op == "settle" and held:
            i = R.randrange(len(held))
            sl, c, at, w = held[i]
            if type(c) is Costs:
                a = settled(c, {"tokens": R.choice([0, 2, 5, 9, 40])})
            else:
                a = float(c) + R.choice([-0.5, 0.0, 1.0, 3.0])
                a = max(a, 0.0)
            if not sl.removed:
                s.settle(sl, c, a, now, at)
                held[i] = (sl, a, at, w)
        elif op in ("cool", "coolnow"):
            sl = pick
            if sl:
                s.cool(sl, now + R.choice([0.0, 0.25, 1.0, 5.0]), now if op == "coolnow" else None)
        elif op in ("relimit", "keep"):
            sl = pick
            if sl:
                s.relimit(sl, R.choice(TIERS), now, keep_same=op == "keep")
        elif op == "restate":
            sl = pick
            if sl:
                s.restate(sl, R.choice(TIERS), now)
        elif op == "cap":
            sl = pick
            if sl:
                s.set_cap(sl, R.choice([None, 1, 2]))
        elif op == "dis":
            sl = pick
            if sl:
                s.disable(sl, "x")
        elif op == "en":
            sl = pick
            if sl:
                s.enable(sl)
        elif op == "rem":
            sl = pick
            if sl and len(live) > 1:
                s.remove(sl)
        elif op == "restore":
            rm = [x for x in s.slots.values() if x.removed]
            if rm:
                s.restore(R.choice(rm))
        elif op == "revive":
            s.prune_retired(now)
            vals = [v for v, _ in s.retired_items()]
            if vals:
                sl = s.revive(R.choice(vals))
                if sl:
                    s.restore(sl)
        elif op == "prune":
            s.prune_retired(now)
        elif op == "shift":
            s.shift(R.choice([0.0, 0.5, 3.0]))
            now += 0  # times moved; keep our clock (monotonic enough)
        elif op == "charge":
            sl = pick
            if sl and sl.usable:
                s.charge(sl, 1.0, now)
        elif op == "scope":
            sl = pick
            if sl:
                s.cool_scope(sl, "chat", now + 1.0, now)
        if R.random() < 0.05:
            for lane in s._lane_list:
                lane.compact()
        check(op)


@pytest.mark.parametrize("block", range(10))
def test_every_indexed_token_has_one_current_entry(block: int) -> None:
    for seed in range(block * 25, block * 25 + 25):
        run(seed)

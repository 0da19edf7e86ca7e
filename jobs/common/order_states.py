"""The one order state machine every platform's status maps onto, and its one vocabulary.

    pending --> paid --> shipped --> completed
       |          |         |            |
       +--> closed <--------+            +--> refunded
                  |                              ^
                  +------------------------------+  (a paid or shipped order refunded in full)

`ORDER_STATES` is the single source of the vocabulary: spec mappings are validated against it
(jobs/common/silver_mapping.py), the GX suite of silver.orders checks it, and dbt's
accepted-values tests read it through the `order_states` var that jobs/profiles/dbt_runner.py
passes.
"""

from __future__ import annotations

ORDER_STATES: tuple[str, ...] = ("pending", "paid", "shipped", "completed", "refunded", "closed")

# The transitions an order may take (a re-sync can skip states: a paid order may arrive shipped).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "pending": ("paid", "closed"),
    "paid": ("shipped", "completed", "refunded", "closed"),
    "shipped": ("completed", "refunded", "closed"),
    "completed": ("refunded",),
    "refunded": (),
    "closed": (),
}

# How far along an order is: a re-sync never moves an order back (a late file with an older
# state loses to the state already known).
RANK: dict[str, int] = {
    "pending": 0,
    "paid": 1,
    "shipped": 2,
    "completed": 3,
    "refunded": 4,
    "closed": 4,
}

TERMINAL: frozenset[str] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def can_move(old: str, new: str) -> bool:
    """May an order in `old` be seen next in `new` (equal states included)?"""
    if old == new:
        return True
    frontier, seen = [old], set()
    while frontier:
        state = frontier.pop()
        for nxt in TRANSITIONS[state]:
            if nxt == new:
                return True
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return False

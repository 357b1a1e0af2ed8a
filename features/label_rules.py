"""Labels from rules (``labels.source: rules``) as SQL: ordered conditions over the customers table,
the first that holds gives the row its tier, a row no rule holds for stays unlabelled."""

from __future__ import annotations

from collections.abc import Sequence

from leadtier.features.inputs import lit


def condition(when: str) -> str:
    """A rule's condition that is never NULL (a missing value makes it false, not unknown)."""
    return f"coalesce(({when}), false)"


def rule_label_query(rules: Sequence[tuple[str, str]], table: str = "customers") -> str:
    """``customer_id``, ``tier`` (NULL: no rule holds) and ``rule`` (1-based number of the rule that
    gave the tier, NULL: none) for every row of ``table``; ``rules`` are ``(tier, when)`` in order."""
    tiers = " ".join(f"WHEN {condition(when)} THEN {lit(tier)}" for tier, when in rules)
    numbers = " ".join(f"WHEN {condition(when)} THEN {i}" for i, (_, when) in enumerate(rules, start=1))
    return f"SELECT customer_id, CASE {tiers} END AS tier, CASE {numbers} END AS rule FROM {table}"

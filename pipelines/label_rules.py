"""Labels from rules (``labels.source: rules``): the rules of the config run on the registered
customers table (DuckDB); each rule's count and the unlabelled rows are logged."""

from __future__ import annotations

import logging

import pandas as pd
from leadtier.features.label_rules import condition, rule_label_query
from leadtier.pipelines.config import Config
from leadtier.pipelines.sources import InputError

log = logging.getLogger(__name__)


def rule_labels(con, cfg: Config) -> tuple[pd.DataFrame, dict[str, int]]:
    """``customer_id`` and ``tier`` of every customer a rule holds for, and the rows per rule
    (``'1: 90'`` ...) with ``'unlabelled'``. A rule that is not valid SQL over the customers table stops
    the run naming it."""
    import duckdb

    rules = cfg.labels.rules
    for i, rule in enumerate(rules, start=1):
        try:  # binds the condition, scans nothing
            con.execute(f"SELECT {condition(rule.when)} FROM customers LIMIT 0").fetchall()
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0]
            typed = (
                " (a leaky column is text: compare it with text, '3', or CAST it)"
                if cfg.data.tables.customers.leaky
                else ""
            )
            raise InputError(
                f"labels.rules[{i - 1}] (tier {rule.tier!r}): 'when' must be a SQL condition over the customers "
                f"table's columns (list a column the rule reads under categorical, numeric or leaky{typed}). Got "
                f"{rule.when!r} instead: {first}"
            ) from None
    sql = rule_label_query([(r.tier, r.when) for r in rules])
    lab = con.execute(sql).df()
    counts = {f"{i}: {r.tier}": int((lab["rule"] == i).sum()) for i, r in enumerate(rules, start=1)}
    counts["unlabelled"] = int(lab["tier"].isna().sum())
    log.info("labels from %d rules (first match wins): %s", len(rules), counts)
    for name, n in counts.items():
        if n == 0 and name != "unlabelled":
            log.warning("labels.rules[%d] (rule %s): no row meets this rule", int(name.split(":")[0]) - 1, name)
    return lab.loc[lab["tier"].notna(), ["customer_id", "tier"]].reset_index(drop=True), counts

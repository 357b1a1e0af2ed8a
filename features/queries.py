"""Render the feature SQL files into one query: one row per customer, as of a date.

The SQL files are Jinja templates over canonical table names (``customers``, ``transactions``,
``interactions``) with the snapshot date written as ``:as_of``. Rendering is pure string work;
``pipelines/features.py`` runs the result on DuckDB (or Spark).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from importlib import resources

import jinja2

FAMILY_TABLES = {
    "customers": "customers",
    "rfm": "transactions",
    "interactions": "interactions",
    "stages": "stages",
}
# the column of a family that counts, per customer, every row of its table dated before :as_of
FAMILY_ROW_COUNTS = {"rfm": "rfm_lines", "interactions": "ix_count"}
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


def slug(name: str) -> str:
    """A column name as a lower-case identifier: 'Total Time Spent' -> 'total_time_spent', '城市' -> '城市'
    (letters and digits of any script; every other run of characters is one '_')."""
    s = re.sub(r"[\W_]+", "_", unicodedata.normalize("NFC", name)).strip("_").lower()
    if not s:
        raise ValueError(f"column name {name!r} has no letters or digits to build a feature name from")
    return s if not s[0].isdigit() else f"c_{s}"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_text(family: str) -> str:
    if family not in FAMILY_TABLES:
        raise ValueError(f"unknown feature family {family!r}; known families: {sorted(FAMILY_TABLES)}")
    return resources.files("leadtier.features").joinpath("sql", f"{family}.sql").read_text(encoding="utf-8")


def render_family(
    family: str,
    as_of: dt.date,
    windows: Sequence[int] = (7, 30, 90),
    interaction_types: Sequence[str] = (),
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    population: str = "customers",
    tenure: bool = True,
    stage_order: Sequence[str] = (),
    entity_days: int | None = None,
) -> str:
    """One family's SQL with the as-of date bound as a DATE literal. ``population`` names the table whose
    customers RFM quintiles rank against (a scoring run that replaces ``customers`` keeps the full base).
    ``tenure=False`` (entities on their own clock, features as of each one's start) leaves out
    ``cust_tenure_days``: days since the start as of the snapshot measure how long the outcome was
    observed, a censoring proxy. ``stage_order``: the stages family's stages, first to last.
    ``entity_days`` (entities on their own clock): the stages and interactions families see each entity as of
    its start (``customers.created_at``) plus that many days, or ``as_of`` when earlier; None: all as of
    ``as_of``."""
    if not isinstance(as_of, dt.date):
        raise TypeError(f"as_of must be a date. Got {type(as_of).__name__} instead")
    sql = _ENV.from_string(sql_text(family)).render(
        windows=list(windows),
        types=list(interaction_types),
        categorical=[(quote_ident(c), slug(c)) for c in categorical],
        numeric=[(quote_ident(c), slug(c)) for c in numeric],
        population=population,
        tenure=tenure,
        stage_order=[st.replace("'", "''") for st in stage_order],
        entity_days=None if entity_days is None else int(entity_days),
    )
    return sql.replace(":as_of", f"DATE '{as_of.isoformat()}'")


# outcome kinds labelled from a snapshot date for every customer (labels_<kind>.sql)
SNAPSHOT_OUTCOMES = ("days_to_next_purchase", "revenue_next_days", "purchase_stage")


def label_query(
    kind: str,
    as_of: dt.date,
    observed_until: dt.date,
    levels: Sequence[str],
    thresholds: Sequence[int] = (30, 90, 180),
    horizon: int = 365,
    cut_points: Sequence[float] = (),
    loyal_purchases: int = 3,
) -> str:
    """Outcome-label SQL: one row per customer existing at ``as_of`` with a tier or NULL (censored)."""
    if kind not in SNAPSHOT_OUTCOMES:
        raise ValueError(f"unknown outcome kind {kind!r}; known: {', '.join(SNAPSHOT_OUTCOMES)}")
    if kind == "purchase_stage" and len(levels) != 4:
        raise ValueError(f"purchase_stage makes 4 levels (loyal, repeat, first-time, prospect). Got {len(levels)}")
    if observed_until < as_of:
        raise ValueError(f"observed_until ({observed_until}) must not precede as_of ({as_of})")
    text = resources.files("leadtier.features").joinpath("sql", f"labels_{kind}.sql").read_text(encoding="utf-8")
    sql = _ENV.from_string(text).render(
        levels=[c.replace("'", "''") for c in levels],
        thresholds=list(thresholds),
        horizon=int(horizon),
        cut_points=[float(c) for c in cut_points],
        loyal=int(loyal_purchases),
    )
    return sql.replace(":observed_until", f"DATE '{observed_until.isoformat()}'").replace(
        ":as_of", f"DATE '{as_of.isoformat()}'"
    )


def entity_label_query(
    as_of: dt.date,
    levels: Sequence[str],
    thresholds: Sequence[int] = (30, 90, 180),
    horizon: int = 365,
    observed_from: dt.date | None = None,
    entity_days: int = 0,
) -> str:
    """Outcome labels on each entity's own clock (``labels_days_to_win.sql``): one row per entity of
    ``customers`` with its start, days to its win, a tier or NULL, and why an unlabelled one is not
    censored (NULL reason and NULL tier: horizon not over at ``as_of``, open or not). ``entity_days``: the
    features describe each entity as of its start + that many days, so one closed before then gets no
    label."""
    if not isinstance(as_of, dt.date):
        raise TypeError(f"as_of must be a date. Got {type(as_of).__name__} instead")
    if len(levels) != len(thresholds) + 2:
        raise ValueError(
            f"days_to_win needs thresholds + 2 levels. Got {list(levels)} for thresholds {list(thresholds)}"
        )
    text = resources.files("leadtier.features").joinpath("sql", "labels_days_to_win.sql").read_text(encoding="utf-8")
    sql = _ENV.from_string(text).render(
        levels=[c.replace("'", "''") for c in levels],
        thresholds=[int(t) for t in thresholds],
        horizon=int(horizon),
        observed_from=observed_from.isoformat() if observed_from else None,
        entity_days=int(entity_days),
    )
    return sql.replace(":as_of", f"DATE '{as_of.isoformat()}'")


def _ordered(families: Sequence[str]) -> list[str]:
    if "customers" not in families:
        raise ValueError("the 'customers' family is required: it defines one row per customer")
    return ["customers", *[f for f in families if f != "customers"]]


def join_query(families: Sequence[str]) -> str:
    """The families' results (``f_<family>``) joined on customer_id, the customers family deciding
    which rows exist, ordered by customer_id."""
    first, *others = _ordered(families)
    joins = "".join(f"\nLEFT JOIN f_{f} USING (customer_id)" for f in others)
    return f"SELECT *\nFROM f_{first}" + joins + "\nORDER BY customer_id"


def feature_query(families: Sequence[str], as_of: dt.date, **params) -> str:
    """All families in one query: each family a CTE ``f_<family>``, then :func:`join_query`."""
    ctes = [f"f_{f} AS (\n{render_family(f, as_of, **params)}\n)" for f in _ordered(families)]
    return "WITH " + ",\n".join(ctes) + "\n" + join_query(families)


def survival_query(
    kind: str,
    as_of: dt.date,
    observed_until: dt.date,
    horizon: int = 365,
    observed_from: dt.date | None = None,
    entity_days: int = 0,
) -> str:
    """Survival labels (``survival_<kind>.sql``): one row per entity with ``event``, ``duration`` (the
    event's day, or the last day observed without one) and ``followup`` (days observed), censored
    entities included; the same point in time as the tier labels of ``kind``. ``days_to_win`` reads
    outcomes dated before ``as_of`` (``observed_until`` is not used)."""
    if kind not in ("days_to_next_purchase", "days_to_win"):
        raise ValueError(f"survival labels exist for days_to_next_purchase and days_to_win. Got {kind!r} instead")
    if kind == "days_to_next_purchase" and observed_until <= as_of:
        raise ValueError(f"observed_until ({observed_until}) must come after as_of ({as_of})")
    # the rows, days and exclusions are the tier labels' own; their tier column is not used here
    unused = ["later", "never"]
    tier_labels = (
        label_query(kind, as_of, observed_until, unused, (), horizon)
        if kind == "days_to_next_purchase"
        else entity_label_query(as_of, unused, (), horizon, observed_from, entity_days)
    )
    text = resources.files("leadtier.features").joinpath("sql", f"survival_{kind}.sql").read_text(encoding="utf-8")
    sql = _ENV.from_string(text).render(horizon=int(horizon), tier_labels=tier_labels)
    return sql.replace(":observed_until", f"DATE '{observed_until.isoformat()}'").replace(
        ":as_of", f"DATE '{as_of.isoformat()}'"
    )

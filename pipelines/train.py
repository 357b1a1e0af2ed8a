"""Stage: train the tier model and the segmenter, compare with baselines, track and register.

``leadtier train`` = features as of the snapshot -> labelled rows split (stratified, seeded)
-> Optuna-tuned LightGBM on the training rows (cross-validated) -> same-split baselines ->
MLflow run with metrics, plots, the config and the registered pyfunc -> champion gate.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
from leadtier.features.queries import entity_label_query, label_query, slug
from leadtier.models.baselines import LogisticBaseline, MajorityBaseline, RfmScorecard, StageNowBaseline
from leadtier.models.candidates import (
    DECISION_METRICS,
    AveragedTiers,
    Choice,
    Validation,
    choose,
    choose_balance,
    validation_predictions,
)
from leadtier.models.catboost_tiers import CatBoostTiers
from leadtier.models.classifier import TierClassifier
from leadtier.models.drift import reference_profile
from leadtier.models.explain import reason_groups
from leadtier.models.frame import ID_COLUMN, OPEN_DAYS
from leadtier.models.metrics import (
    HIGHER_IS_BETTER,
    adjacent_miss_share,
    beaten_on,
    compare,
    level_shares,
    mean_probability_gap,
    paired_bootstrap,
    share_gaps,
    tier_metrics,
)
from leadtier.models.proxies import label_presence_auc, tier_giveaway_auc
from leadtier.models.schemes import TierScheme
from leadtier.models.scorer import TierScorer, open_shares
from leadtier.models.segments import Segmenter
from leadtier.models.semi import self_train
from leadtier.models.text import clip, signed
from leadtier.models.tuning import tune
from leadtier.pipelines import features as feature_stage
from leadtier.pipelines import orphans, plots, tracking, train_log
from leadtier.pipelines import survival as survival_stage
from leadtier.pipelines.config import Config
from leadtier.pipelines.console import TuningProgress, show_progress, table, wrap
from leadtier.pipelines.errors import UserError
from leadtier.pipelines.label_rules import rule_labels
from leadtier.pipelines.sources import InputError, register_all
from leadtier.pipelines.validate import as_records, validate
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

log = logging.getLogger(__name__)
HEADLINE = ["macro_f1", "balanced_accuracy", "qwk", "log_loss"]
# compared with every baseline, metric by metric (those a run has: the AUC-type ones need two tiers)
VERDICT = [*HEADLINE, "brier", "ece", "roc_auc", "pr_auc", "lift_top_decile"]
SURVIVAL = ["c_index", "c_index_uno", "integrated_brier"]  # shown for the model and the other kind (train.model)


def headline(cfg: Config) -> list[str]:
    """The summary table's columns: the primary metric, then the headline metrics."""
    return list(dict.fromkeys([cfg.train.primary_metric, *HEADLINE]))


LABEL_ITSELF = 0.999  # an attribute this good at telling every tier apart is the label, not a feature


class TrainingDataError(UserError, ValueError):
    """The labelled data cannot support a trustworthy model."""


@dataclass
class TrainResult:
    run_id: str
    model_version: str
    alias: str
    reasons: list[str]
    metrics: dict[str, dict[str, float]]
    beats: dict[str, dict[str, bool]]
    gains: dict[str, dict[str, dict[str, float]]]  # baseline -> metric -> {gain, low, high}; {} without bootstrap
    best_params: dict
    n_train: int
    n_test: int
    seconds: float
    n_trials: int
    segments_k: int
    protocol: dict  # the evaluation protocol, row counts, model choice and entity counts
    bootstrap_resamples: int


def labels_known_at(labels: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """The labels a snapshot may use: those without a ``labelled_at`` date or assigned by ``as_of``.

    A tier assigned after the snapshot date may reflect what happened after it, so it is left out of
    that snapshot (and logged). One assigned on the day itself judges what was known that day. Of a
    customer's dated labels (a history of ratings) the latest by ``as_of`` counts.
    """
    if "labelled_at" not in labels.columns:
        return labels
    when = pd.to_datetime(labels["labelled_at"])
    later = when.notna() & (when > pd.Timestamp(as_of))
    if later.any():
        log.warning(
            "labels: %d label(s) were assigned after the as-of date %s (column labelled_at) and are not "
            "used for that snapshot",
            int(later.sum()),
            as_of,
        )
    if len(labels) and later.all():
        raise TrainingDataError(
            f"every one of the {len(labels)} labels was assigned after the as-of date {as_of} (column labelled_at): "
            "use a later as-of date"
        )
    known, when = labels.loc[~later], when[~later]
    # a history of ratings: a customer's latest dated one by the snapshot replaces the earlier ones
    latest = when.groupby(known["customer_id"]).transform("max")
    superseded = latest.notna() & ~(when == latest)
    if superseded.any():
        log.info(
            "labels: %d earlier label(s) replaced by the customer's latest one by %s (column labelled_at)",
            int(superseded.sum()),
            as_of,
        )
    return known.loc[~superseded, ["customer_id", "tier"]]


def warn_unknown_tiers(cfg: Config, labels: pd.DataFrame) -> None:
    """Warn of values anywhere in the labels table that are no level of the scheme once ``labels.mapping``
    is applied. A snapshot stops on those it uses; these may sit in rows no snapshot of this run reads (a
    rating replaced by a later one, or given after the last snapshot) until a later run needs them."""
    raw = labels["tier"].dropna().astype(str).str.strip()
    tiers = raw.map(lambda v: cfg.labels.mapping.get(v, v))
    bad = raw[~tiers.isin(set(cfg.scheme.codes))]
    if len(bad):
        log.warning(
            "%s: %d of the %d labels are not levels of scheme %r %s, whether or not a snapshot of this run uses "
            "them; e.g. %s (map them with labels.mapping)",
            labels_where(cfg),
            len(bad),
            len(raw),
            cfg.labels.scheme,
            cfg.scheme.codes,
            ", ".join(clip(v, quote=True) for v in sorted(bad.unique())[:5]),
        )


def labels_where(cfg: Config) -> str:
    """Where the tiers come from, for a message: the labels file(s) and their tier column, or the rule."""
    spec = cfg.data.tables.labels
    if cfg.labels.source != "table" or spec is None:
        return f"labels (labels.source: {cfg.labels.source})"
    files = [f"{cfg.data_path(fs.path)}, column {fs.columns.get('tier', 'tier')!r}" for fs in spec.files]
    return "labels " + "; ".join(files)


def attach_labels(cfg: Config, feats: pd.DataFrame, labels: pd.DataFrame | None) -> pd.DataFrame:
    """Feature rows of labelled customers with a ``tier`` column in scheme codes."""
    if labels is None or labels.empty:
        if cfg.labels.source == "table" and cfg.data.tables.labels is not None:
            raise TrainingDataError(f"no labels: {labels_where(cfg)} holds no labelled customers")
        raise TrainingDataError("no labels: configure data.tables.labels with at least some labelled customers")
    lab = labels.dropna(subset=["tier"]).copy()
    lab["tier"] = lab["tier"].astype(str).str.strip()
    if cfg.labels.mapping:
        lab["tier"] = lab["tier"].map(lambda v: cfg.labels.mapping.get(v, v))
    codes = set(cfg.scheme.codes)
    bad = lab.loc[~lab["tier"].isin(codes), "tier"]
    if len(bad):
        examples = ", ".join(clip(v, quote=True) for v in sorted(bad.unique())[:5])
        raise InputError(
            f"{labels_where(cfg)}: {len(bad)} of the {len(lab)} labels this snapshot uses (of dated ones, each "
            f"customer's latest by the as-of date) are not levels of scheme "
            f"{cfg.labels.scheme!r} {cfg.scheme.codes}; e.g. {examples} (map them with labels.mapping)"
        )
    dup = lab["customer_id"].duplicated(keep=False)
    if dup.any():
        conflicting = lab[dup].groupby("customer_id")["tier"].nunique()
        if (conflicting > 1).any():
            raise InputError(
                f"{labels_where(cfg)}: {int((conflicting > 1).sum())} customer(s) carry different tiers; "
                f"e.g. {', '.join(clip(v, quote=True) for v in conflicting[conflicting > 1].index[:3])} (of a "
                "history of ratings with dates, tables.labels.columns.labelled_at, the latest by the as-of date "
                "counts; two on the same date must agree)"
            )
        lab = lab.drop_duplicates("customer_id")
    dangling = ~lab["customer_id"].isin(feats[ID_COLUMN])
    if dangling.any():
        log.warning(
            "labels: %d label(s) name customers absent from the snapshot (unknown id or created after "
            "the as-of date) and are not used; e.g. %s",
            int(dangling.sum()),
            ", ".join(clip(v, quote=True) for v in lab.loc[dangling, "customer_id"].head(3)),
        )
    return feats.merge(lab[["customer_id", "tier"]], on=ID_COLUMN, how="inner")


def check_minimum(cfg: Config, tiers: pd.Series) -> None:
    counts = tiers.value_counts()
    short = {c: int(counts.get(c, 0)) for c in cfg.scheme.codes if counts.get(c, 0) < cfg.train.min_per_tier}
    if short:
        raise TrainingDataError(
            f"too few labelled customers per tier (train.min_per_tier = {cfg.train.min_per_tier}): {short}. "
            "Label more customers, merge tiers with a coarser scheme, or lower train.min_per_tier."
        )


def _is_weekday(column: str) -> bool:
    """Whether the feature metadata says ``column`` holds a day of the week (1 = Monday .. 7)."""
    from leadtier.features.meta import meta_of

    found = meta_of(column)
    return found is not None and found[0].unit == "weekday"


def segment_columns(feats: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Behaviour columns for K-means: RFM and interaction numbers; without an event log (lead-level
    data), the numeric attributes but weekday codes (unless nothing else is left). ``exclude``
    (``segments.exclude_columns``) are never used."""
    unknown = sorted(set(exclude) - set(feats.columns))
    if unknown:
        raise TrainingDataError(
            f"segments.exclude_columns names columns the feature table does not have: {unknown}. "
            f"Feature columns: {[c for c in feats.columns if c != ID_COLUMN]}"
        )
    numeric = [c for c in feats.columns if c not in set(exclude) and pd.api.types.is_numeric_dtype(feats[c])]
    cols = [c for c in numeric if c.startswith(("rfm_", "ix_"))]
    if not cols:  # a weekday is a code (7 is not 'more' than 1): it parts segments only when nothing else can
        cols = [c for c in numeric if c != ID_COLUMN and not _is_weekday(c)]
        cols = cols or [c for c in numeric if c != ID_COLUMN]
    if not cols:
        raise TrainingDataError(
            f"no numeric feature column is left for the K-means segments (segments.exclude_columns = {list(exclude)})"
        )
    return cols


@dataclass
class Prepared:
    """Labelled rows for training and evaluation, and the snapshot used for segments."""

    train: pd.DataFrame
    test: pd.DataFrame | None  # None: k-fold (out-of-fold evaluation on ``train``)
    features: pd.DataFrame  # the latest snapshot (segments, drift reference)
    stats: dict
    protocol: dict
    problems: list = field(default_factory=list)
    unlabelled: pd.DataFrame | None = None  # customers of the (last) snapshot without a label
    survival: pd.DataFrame | None = None  # train.model survival or best: the survival model's training entities
    closed_early: set = field(default_factory=set)  # entities closed within the days their features describe


def outcome_labels(con, cfg: Config, as_of: dt.date, observed_until: dt.date) -> pd.DataFrame:
    oc = cfg.labels.outcome
    sql = label_query(
        oc.kind,
        as_of,
        observed_until,
        cfg.scheme.codes,
        oc.thresholds_days,
        oc.horizon_days,
        oc.cut_points,
        oc.loyal_purchases,
    )
    lab = feature_stage.fetch_frame(con, sql)
    return lab[["customer_id", "tier"]]


# the reason labels_days_to_win.sql gives an entity won or lost within the days its features describe
CLOSED_EARLY = "closed within its first"
# what the labels of an entity on its own clock say beside its tier: its start, and the days from it to
# its first win or loss (NaN: neither); never features
ENTITY_CLOCK = ["started_on", "closed_after"]


def entity_labels(con, cfg: Config, as_of: dt.date) -> tuple[pd.DataFrame, dict, set]:
    """Outcome labels on each entity's own clock (``labels.outcome.kind: days_to_win``), evaluated at
    ``as_of``; how many entities are labelled, censored (horizon not observed by ``as_of``: no
    label, never the last level, even when already won or lost) and unlabelled for another reason (logged);
    and the ids of those closed within the days their features describe (never scored as open ones)."""
    oc = cfg.labels.outcome
    sql = entity_label_query(
        as_of, cfg.scheme.codes, oc.thresholds_days, oc.horizon_days, oc.observed_from, feature_stage.entity_days(cfg)
    )
    lab = feature_stage.fetch_frame(con, sql)
    labelled = lab["tier"].notna()
    censored = ~labelled & lab["unlabelled"].isna()
    reasons = lab.loc[~labelled & ~censored, "unlabelled"].value_counts()
    counts = {
        "entities": len(lab),
        "labelled": int(labelled.sum()),
        "censored": int(censored.sum()),
        "unlabelled": int(len(lab) - labelled.sum() - censored.sum()),
        "unlabelled_reasons": {str(k): int(v) for k, v in reasons.items()},
        "evaluated_at": as_of.isoformat(),
        "horizon_days": oc.horizon_days,
    }
    log.info("entities: %s", entity_words(counts))
    early = lab.loc[lab["unlabelled"].eq(WON_EARLY), "customer_id"]
    if len(early):  # a date typed wrong: the user can look these up
        log.warning(
            "%s a win dated before the start (created_at), e.g. %s: left unlabelled; check these dates",
            "1 entity has" if len(early) == 1 else f"{len(early)} entities have",
            ", ".join(clip(str(v), quote=True) for v in sorted(early)[:3]),
        )
    closed = set(lab.loc[lab["unlabelled"].str.startswith(CLOSED_EARLY, na=False), "customer_id"])
    lab["closed_after"] = lab[["days_to_win", "days_to_loss"]].apply(pd.to_numeric).min(axis=1)  # NaN: neither
    return lab.loc[labelled, ["customer_id", "tier", *ENTITY_CLOCK]], counts, closed


WON_EARLY = "won before the start"  # the reason features/sql/labels_days_to_win.sql gives


def entity_words(counts: dict) -> str:
    """'8000 entities: 4823 labelled, 1377 censored (...), 1800 unlabelled (...)' on one line."""
    why = ", ".join(f"{n} {r}" for r, n in counts["unlabelled_reasons"].items())
    return (
        f"{counts['entities']} entities: {counts['labelled']} labelled, {counts['censored']} censored (their "
        f"{counts['horizon_days']}-day horizon not observed by {counts['evaluated_at']}), "
        f"{counts['unlabelled']} unlabelled" + (f" ({why})" if why else "")
    )


def drop_empty_tiers(cfg: Config, tiers: pd.Series) -> list[str]:
    """Levels that no labelled row reaches. With ``labels.allow_empty_tiers`` the run goes on with the
    levels that exist: the config's scheme is narrowed to them for this run (so the registered model
    has them) and the empty ones are returned (and logged); without it, nothing changes here and
    :func:`check_minimum` stops the run."""
    present = set(tiers.dropna().unique())
    empty = [c for c in cfg.scheme.codes if c not in present]
    if not empty or not cfg.labels.allow_empty_tiers:
        return []
    kept = [lv for lv in cfg.scheme.levels if lv.code in present]
    if len(kept) < 2:
        raise TrainingDataError(f"the labelled rows reach only the tiers {sorted(present)}: a model needs two")
    scheme = cfg.scheme
    cfg.schemes[cfg.labels.scheme] = TierScheme(title_en=scheme.title_en, title_zh=scheme.title_zh, levels=kept)
    log.warning(
        "tiers %s: no labelled row reaches them; going on with %s (labels.allow_empty_tiers)",
        empty,
        [lv.code for lv in kept],
    )
    return empty


def label_outcome(cfg: Config, protocol: dict) -> dict | None:
    """``labels.outcome`` as the model keeps it (the report says what happened to earn each tier), with
    the codes its windows were labelled in: all the scheme's, also when empty tiers were left out."""
    if cfg.labels.source != "outcome":
        return None
    return cfg.labels.outcome.model_dump(mode="json") | {"codes": protocol.get("label_codes", cfg.scheme.codes)}


def check_horizon(cfg: Config, as_of: dt.date, observed_until: dt.date) -> None:
    """Refuse a snapshot whose label horizon is not fully observed by ``observed_until``.

    Censoring alone would still label the customers who bought early, but only them: a training set
    of fast buyers. ``days_to_next_purchase`` needs days 0 to ``horizon_days`` seen (day
    ``horizon_days`` still counts as D), ``revenue_next_days`` and ``purchase_stage`` days 0 to
    ``horizon_days - 1``.
    """
    oc = cfg.labels.outcome
    need = oc.horizon_days + 1 if oc.kind == "days_to_next_purchase" else oc.horizon_days
    span = (observed_until - as_of).days
    if span < need:
        raise TrainingDataError(
            f"the data after the snapshot {as_of} spans {span} days (until {observed_until}), but the label horizon "
            f"needs {need} (labels.outcome.horizon_days = {oc.horizon_days}): use an earlier snapshot or a shorter "
            "horizon"
        )


def feature_column(name: str, columns: Sequence[str], key: str) -> str:
    """The feature-table column that config key ``key`` names: the column itself, or a customers
    attribute by its name in the file (``Lead Number`` -> ``cust_lead_number``)."""
    if name in columns:
        return name
    attribute = f"cust_{slug(name)}"
    if attribute in columns:
        return attribute
    raise TrainingDataError(
        f"{key} names {name!r}, which is neither a feature column nor a customers attribute (declare it under "
        f"categorical or numeric). Feature columns: {[c for c in columns if c != ID_COLUMN]}"
    )


def excluded_columns(cfg: Config, columns: Sequence[str]) -> set[str]:
    """The feature columns ``features.exclude`` keeps out of the model and the segments, and
    :data:`~leadtier.models.frame.OPEN_DAYS` (read by the scorer, never a feature)."""
    named = {feature_column(name, columns, "features.exclude") for name in cfg.features.exclude}
    return named | ({OPEN_DAYS} & set(columns))


def model_columns(cfg: Config, prep: Prepared) -> list[str]:
    """The feature columns the tier model reads: all but the id, those :func:`excluded_columns` names and those
    without a value in any training row."""
    excluded = excluded_columns(cfg, list(prep.features.columns))  # a wrong name stops here, before tuning
    cols = [c for c in prep.features.columns if c != ID_COLUMN and c not in excluded]
    empty = [c for c in cols if c in prep.train.columns and prep.train[c].isna().all()]
    if empty and len(empty) < len(cols):  # e.g. the tenure of customers without a created_at column
        log.info("feature(s) %s have no value in any training row: left out of the model", empty)
        cols = [c for c in cols if c not in empty]
    if not cols:
        raise TrainingDataError(f"no feature column is left for the model: features.exclude names all of {excluded}")
    return cols


def ordered_split(cfg: Config, data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``ordered_holdout``: rows in time order by ``train.order_by`` (ties by id); the newest
    ``test_size`` share is evaluated, the rest trains (kept in time order, oldest first)."""
    name = cfg.train.order_by
    if name == "created_at" and "started_on" in data.columns:  # entities on their own clock: by start
        order = pd.to_datetime(data["started_on"])
    elif name == "created_at" and "cust_tenure_days" in data.columns:
        order = -data["cust_tenure_days"]  # created later = fewer days before the snapshot
    else:
        order = data[feature_column(name, data.columns, "train.order_by")]
    if order.isna().any():
        raise TrainingDataError(
            f"train.order_by: column {name!r} is missing for {int(order.isna().sum())} labelled rows; "
            "every row needs a place in time"
        )
    data = data.assign(_order=order.to_numpy()).sort_values(["_order", ID_COLUMN], kind="stable")
    data = data.drop(columns="_order").reset_index(drop=True)
    cut = len(data) - max(1, int(round(len(data) * cfg.train.test_size)))
    return data.iloc[:cut].reset_index(drop=True), data.iloc[cut:].reset_index(drop=True)


def unseen_customers(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """Backtest with labels from people: a rep's tier belongs to the customer, not to a date, so the
    evaluation keeps only customers whose label training did not use."""
    seen = test[ID_COLUMN].isin(train[ID_COLUMN])
    if seen.all():
        raise TrainingDataError(
            f"backtest: all {len(test)} labelled customers of the evaluation snapshots were used in training; "
            "evaluation needs customers labelled after the training snapshots (labelled_at) or created after them"
        )
    if seen.any():
        log.info(
            "backtest: %d evaluation row(s) left out: their customer's label was used in training", int(seen.sum())
        )
    return test.loc[~seen].reset_index(drop=True)


def check_disjoint(train: pd.DataFrame, evaluation: pd.DataFrame, label_source: str) -> int:
    """The number of evaluation rows that training also used, which must be 0: the same customer for
    labels from people, the same customer and snapshot for outcome labels. Raises otherwise."""
    keys = [ID_COLUMN] if label_source != "outcome" else [ID_COLUMN, "snapshot"]
    shared = int(evaluation[keys].merge(train[keys].drop_duplicates(), on=keys).shape[0])
    if shared:
        raise RuntimeError(f"{shared} evaluation row(s) were also training rows (keys {keys}): the figures would lie")
    return shared


def warn_not_yet_customers(con, cfg: Config, as_of: dt.date) -> int:
    """Customers without ``created_at`` count as customers at every snapshot. Those whose first transaction
    comes after ``as_of`` were most likely not customers yet: labelled from outcomes there, they teach
    the model that a customer with no history buys soon. A warning says how many (returned)."""
    if cfg.data.tables.transactions is None:
        return 0
    (n,) = con.execute(
        "SELECT count(*) FROM customers AS c WHERE c.created_at IS NULL AND EXISTS (SELECT 1 FROM transactions AS t "
        "WHERE t.customer_id = c.customer_id) AND NOT EXISTS (SELECT 1 FROM transactions AS t WHERE "
        "t.customer_id = c.customer_id AND CAST(t.ts AS DATE) < $as_of)",
        {"as_of": as_of},
    ).fetchall()[0]
    if n:
        log.warning(
            "snapshot %s: %d customer(s) without created_at have their first transaction after it, and count as "
            "customers with no purchase yet there, labelled by what they bought after: map tables.customers."
            "created_at (a signup date), or derive the customers from the transactions (tables.customers.derive_from)",
            as_of,
            n,
        )
    return int(n)


class _Snapshots:
    """Features and labels of one snapshot at a time, on one open connection with the inputs registered.

    ``entities`` collects what the labels say about the entities (rule-label counts, own-clock counts,
    tiers no row reaches) for the run's protocol."""

    def __init__(self, con, cfg: Config):
        self.con, self.cfg, self.entities = con, cfg, {}
        self.closed_early: set = set()  # days_to_win: entities closed within the days their features describe
        self.table_labels = None
        if cfg.labels.source == "table":
            self.table_labels = feature_stage.fetch_frame(
                con, "SELECT customer_id, CAST(tier AS VARCHAR) AS tier, labelled_at FROM labels"
            )
            warn_unknown_tiers(cfg, self.table_labels)
        elif cfg.labels.source == "rules":  # a customer's tier from its columns, like a tier from people
            self.table_labels, self.entities["label_rules"] = rule_labels(con, cfg)

    def labels(self, as_of: dt.date, observed_until: dt.date | None) -> pd.DataFrame:
        cfg = self.cfg
        if cfg.labels.source != "outcome":
            return labels_known_at(self.table_labels, as_of)
        if cfg.labels.outcome.kind == "days_to_win":  # each entity's own clock, censored at as_of
            lab, self.entities["entities"], self.closed_early = entity_labels(self.con, cfg, as_of)
            return lab
        if observed_until is None or observed_until <= as_of:
            raise TrainingDataError(
                f"no transactions after the snapshot {as_of}: outcome labels need an observed future"
            )
        check_horizon(cfg, as_of, observed_until)
        warn_not_yet_customers(self.con, cfg, as_of)
        return outcome_labels(self.con, cfg, as_of, observed_until)

    def build(self, as_of: dt.date, observed_until: dt.date | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(features of every customer, labelled rows with their ``snapshot``) as of ``as_of``."""
        feats = feature_stage.build_in(self.con, self.cfg, as_of)
        lab = self.labels(as_of, observed_until)
        data = attach_labels(self.cfg, feats, lab)
        if "started_on" in lab.columns:
            data = data.merge(lab[["customer_id", *ENTITY_CLOCK]], on=ID_COLUMN, how="left")
        data.insert(1, "snapshot", as_of)
        if self.cfg.train.evaluation != "backtest":  # a backtest narrows after its last snapshot
            self.narrow(data["tier"])
        return feats, data

    def narrow(self, tiers: pd.Series) -> None:
        """:func:`drop_empty_tiers`; when it narrows the scheme, ``entities`` keeps the tiers left out and
        the codes the labels were made in (an outcome's windows name tiers by position among them)."""
        codes = list(self.cfg.scheme.codes)
        self.entities["empty_tiers"] = drop_empty_tiers(self.cfg, tiers)
        if self.entities["empty_tiers"]:
            self.entities["label_codes"] = codes


def backtest_rows(cfg: Config, snaps: _Snapshots, end: dt.date | None):
    """Training rows from every training snapshot (labels observed until the first evaluation snapshot),
    evaluation rows from the evaluation snapshots; with labels from people or rules only customers the
    training rows do not hold."""
    eval_date = min(cfg.snapshots.eval_as_of)
    train = pd.concat([snaps.build(d, eval_date)[1] for d in cfg.snapshots.train_as_of], ignore_index=True)
    tests = [snaps.build(d, end) for d in cfg.snapshots.eval_as_of]
    test = pd.concat([t[1] for t in tests], ignore_index=True)
    if cfg.labels.source != "outcome":
        test = unseen_customers(train, test)
    snaps.narrow(pd.concat([train["tier"], test["tier"]]))
    protocol = {
        "evaluation": "backtest",
        "train_snapshots": [d.isoformat() for d in cfg.snapshots.train_as_of],
        "eval_snapshots": [d.isoformat() for d in cfg.snapshots.eval_as_of],
        "train_labels_observed_until": eval_date.isoformat(),
        "eval_labels_observed_until": end.isoformat() if end else None,
    }
    return train, test, tests[-1][0], protocol


def one_snapshot_rows(cfg: Config, snaps: _Snapshots, end: dt.date | None):
    """Training and evaluation rows from the one snapshot ``data.as_of``: k-fold (no separate
    evaluation rows), the newest rows held out, or a stratified random holdout."""
    feats, data = snaps.build(cfg.data.as_of, end)
    as_of, kind = cfg.data.as_of.isoformat(), cfg.train.evaluation
    if kind == "kfold":
        return data, None, feats, {"evaluation": "kfold", "folds": cfg.train.folds, "as_of": as_of}
    if kind == "ordered_holdout":
        train, test = ordered_split(cfg, data)
        protocol = {"order_by": cfg.train.order_by, "newest_share": cfg.train.test_size}
        return train, test, feats, {"evaluation": kind, **protocol, "as_of": as_of}
    check_minimum(cfg, data["tier"])
    train, test = train_test_split(data, test_size=cfg.train.test_size, stratify=data["tier"], random_state=cfg.seed)
    return train, test, feats, {"evaluation": "holdout", "test_size": cfg.train.test_size, "as_of": as_of}


def unlabelled_pool(cfg: Config, feats: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame | None):
    """Customers of the snapshot with no label, for self-training; None when it is off."""
    if not cfg.train.semi_supervised.enabled:
        return None
    if cfg.labels.source == "outcome":
        raise TrainingDataError(
            "train.semi_supervised needs labels from people or rules (labels.source: table or rules): with "
            "outcome labels the unlabelled customers are censored ones or the evaluation snapshot itself"
        )
    labelled_ids = set(train[ID_COLUMN]) | (set(test[ID_COLUMN]) if test is not None else set())
    return feats[~feats[ID_COLUMN].isin(labelled_ids)]


def _snapshot_outcomes(cfg: Config) -> bool:
    """Whether the labels are outcomes observed after a snapshot date (not on each entity's own clock)."""
    return cfg.labels.source == "outcome" and cfg.labels.outcome.kind != "days_to_win"


def unread_settings(cfg: Config) -> list[str]:
    """Settings the configured protocol does not read, in words (a user who set one expects an effect)."""
    unread = []
    if cfg.train.order_by and cfg.train.evaluation != "ordered_holdout":
        unread.append(
            f"train.order_by ({cfg.train.order_by!r}) is read only by train.evaluation: ordered_holdout; "
            f"this run evaluates by {cfg.train.evaluation}, with rows in no time order"
        )
    if not cfg.train.refit and cfg.train.evaluation == "kfold":
        unread.append(
            "train.refit: false is read only by holdout, ordered_holdout and backtest; k-fold's registered model is "
            "always fitted on every labelled row (each row was evaluated by a fold model)"
        )
    if cfg.labels.outcome.observed_until and not _snapshot_outcomes(cfg):
        unread.append(
            "labels.outcome.observed_until is read only by outcome labels days_to_next_purchase, "
            "revenue_next_days and purchase_stage; these labels do not read it"
        )
    return unread


def prepare(cfg: Config) -> Prepared:
    """Build features (and outcome labels) for every snapshot the evaluation protocol needs."""
    for unread in unread_settings(cfg):
        log.warning("%s", unread)
    if cfg.labels.source == "table" and cfg.data.tables.labels is None:
        raise TrainingDataError(
            "labels.source is 'table' (tiers given by people, the default) but data.tables.labels is not "
            "configured: add a labels table (it may be the customers file, with its tier column mapped), or set "
            "labels.source to outcome (tiers from what customers did after the snapshot) or rules"
        )
    feature_stage.check_families(cfg)
    feature_stage.warn_unread_attributes(cfg)
    con = feature_stage.connect(cfg)
    try:
        stats = register_all(con, cfg, with_labels=cfg.labels.source == "table")
        if not stats["customers"].rows:
            raise InputError(f"{', '.join(stats['customers'].files)}: no customers to train on (a header only?)")
        problems = validate(con, cfg, stats, max([cfg.data.as_of, *cfg.snapshots.eval_as_of]))
        snaps = _Snapshots(con, cfg)
        rows = backtest_rows if cfg.train.evaluation == "backtest" else one_snapshot_rows
        end = feature_stage.observed_until(con, cfg) if _snapshot_outcomes(cfg) and "transactions" in stats else None
        train, test, feats, protocol = rows(cfg, snaps, end)
    finally:
        con.close()
    check_minimum(cfg, train["tier"])
    unlabelled = unlabelled_pool(cfg, feats, train, test)
    if test is not None and test.empty:
        raise TrainingDataError("the evaluation snapshot has no labelled customer (all censored?)")
    survival = survival_stage.training_survival(cfg, train, test) if cfg.train.model != "classifier" else None
    return Prepared(
        train=train,
        test=test,
        features=feats,
        stats={k: v.as_dict() for k, v in stats.items()},
        protocol=protocol | snaps.entities,
        problems=as_records(problems),
        unlabelled=unlabelled,
        survival=survival,
        closed_early=snaps.closed_early,
    )


AVERAGES = {  # candidates scored from their members' probabilities
    "average": ("lightgbm", "logreg"),
    "average3": ("lightgbm", "logreg", "catboost"),
}


def model_factories(
    cfg: Config, params: dict, decision_balance: float | None = None
) -> dict[str, Callable[[], object]]:
    """Unfitted tier models by candidate name: the tuned LightGBM, the logistic regression, CatBoost (its
    own settings, not tuned) and the probability averages of :data:`AVERAGES`, with the class weights,
    decision rule, seed and threads of the config and ``decision_balance`` (None: as the class weights
    ask)."""
    levels = cfg.scheme.codes
    calibration = {
        "calibration": cfg.train.calibration,
        "calibration_size": cfg.train.calibration_size,
        "calibration_cv": cfg.train.calibration_cv,
    }
    fixed = fixed_params(cfg)

    def lightgbm() -> TierClassifier:
        return TierClassifier(
            levels=levels, random_state=cfg.seed, decision_balance=decision_balance, **params, **calibration
        )

    untuned = {"levels": levels, "random_state": cfg.seed, "decision_balance": decision_balance}
    untuned |= {k: fixed[k] for k in ("class_weight", "decision", "cost_matrix")}

    def logreg() -> LogisticBaseline:
        return LogisticBaseline(**untuned)

    def catboost() -> CatBoostTiers:
        return CatBoostTiers(**untuned, n_jobs=fixed["n_jobs"])

    def average() -> AveragedTiers:
        return AveragedTiers([lightgbm(), logreg()])

    def average3() -> AveragedTiers:
        return AveragedTiers([lightgbm(), logreg(), catboost()])

    return {"lightgbm": lightgbm, "logreg": logreg, "catboost": catboost, "average": average, "average3": average3}


def choice_splits(cfg: Config, rows: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validation rows for choosing the tier model, from training ``rows`` only, disjoint from the rows
    that fit it as the evaluation is (:func:`check_disjoint`).

    Time-ordered protocols validate on the newest part of the training window (``ordered_holdout``:
    the newest ``test_size`` share of rows, which :func:`prepare` keeps in time order; ``backtest``:
    the last training snapshot when there are several, with labels from people only its customers that
    the older snapshots lack); otherwise stratified folds, grouped by customer when a customer has several
    rows. [] when a tier has fewer than two rows."""
    n = len(rows)
    if cfg.train.evaluation == "ordered_holdout":
        cut = n - max(1, int(round(n * cfg.train.test_size)))
        return [(np.arange(cut), np.arange(cut, n))]
    if cfg.train.evaluation == "backtest" and rows["snapshot"].nunique() > 1:
        newest = (rows["snapshot"] == rows["snapshot"].max()).to_numpy()
        validate = newest.copy()
        if cfg.labels.source != "outcome":  # a rep's tier belongs to the customer: seen in training, not new
            validate &= ~rows[ID_COLUMN].isin(rows.loc[~newest, ID_COLUMN]).to_numpy()
        if validate.any() and pd.Series(rows["tier"].to_numpy()[validate]).nunique() > 1:
            return [(np.flatnonzero(~newest), np.flatnonzero(validate))]
        log.info(
            "model choice: the newest training snapshot has too few customers the older ones lack (fewer than two "
            "tiers); folds grouped by customer instead"
        )
    y = rows["tier"].to_numpy(dtype=object)
    per_tier = rows.groupby("tier")[ID_COLUMN].nunique()  # a customer's rows share a fold
    k = min(cfg.train.choice.folds, int(per_tier.min()))
    if k < 2:
        return []
    if rows[ID_COLUMN].duplicated().any():
        groups = rows[ID_COLUMN].to_numpy()
        folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=cfg.seed)
        return list(folds.split(np.zeros(n), y, groups))
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=cfg.seed).split(np.zeros(n), y))


def choose_model(cfg: Config, rows: pd.DataFrame, feature_cols: list[str], params: dict) -> Choice:
    """Which candidate becomes the tier model, and how balanced its decision is, judged on validation
    rows inside ``rows`` (the training rows), never on evaluation rows."""
    candidates = list(cfg.train.choice.candidates)
    splits = choice_splits(cfg, rows)
    fixed = configured_balance(cfg)
    if not splits or (len(candidates) == 1 and not balance_matters(cfg)):
        why = "the only candidate" if len(candidates) == 1 else "a tier has fewer than two training rows to validate on"
        return Choice(
            candidates[0], {}, cfg.train.primary_metric, 0, [f"{candidates[0]}: {why}"], decision_balance=fixed
        )
    make = {k: f for k, f in model_factories(cfg, params, fixed).items() if k not in AVERAGES}
    X, y = rows[feature_cols].reset_index(drop=True), rows["tier"].tolist()
    if len(candidates) == 1:
        validation = validation_predictions(make, X, y, splits, candidates, AVERAGES)
        choice = Choice(
            candidates[0], {}, cfg.train.primary_metric, len(validation.truth), [f"{candidates[0]}: the only candidate"]
        )
    else:
        choice, validation = choose(
            make,
            X,
            y,
            splits,
            cfg.scheme.codes,
            cfg.train.primary_metric,
            candidates=candidates,
            averages=AVERAGES,
            rule=cfg.train.choice.rule,
            tolerance=cfg.train.choice.tolerance,
            seed=cfg.seed,
            balance_of=(lambda v, c: balance_on(cfg, v, c)[0]) if balance_matters(cfg) else None,
        )
    choice.decision_balance = fixed
    if balance_matters(cfg):
        choice.decision_balance, choice.balance_scores, why = balance_on(cfg, validation, choice.name)
        choice.reasons.append(
            f"decision balance (1: every tier as if equally frequent, 0: the most probable tier), {choice.name}: {why}"
        )
    return choice


def balance_matters(cfg: Config) -> bool:
    """Is the decision's balance chosen on validation rows: auto, and a primary metric of the tiers
    decided (not of the probabilities)?"""
    return cfg.train.decision_balance == "auto" and cfg.train.primary_metric in DECISION_METRICS


def configured_balance(cfg: Config) -> float | None:
    """``train.decision_balance`` as a number, or None (auto: the class weights' own until chosen)."""
    return None if cfg.train.decision_balance == "auto" else float(cfg.train.decision_balance)


def balance_on(cfg: Config, validation: Validation, candidate: str) -> tuple[float, dict[float, float], str]:
    """:func:`~leadtier.models.candidates.choose_balance` for ``candidate`` under the config's metric
    and choice rule."""
    return choose_balance(
        validation,
        candidate,
        cfg.scheme.codes,
        cfg.train.primary_metric,
        rule=cfg.train.choice.rule,
        tolerance=cfg.train.choice.tolerance,
        seed=cfg.seed,
    )


def keep_self_training(
    cfg: Config, rows: pd.DataFrame, feature_cols: list[str], make: Callable[[], object], pool: pd.DataFrame
) -> tuple[bool, str]:
    """Does self-training on ``pool`` beat supervised-only training? Judged like the model choice, on
    validation rows inside the training ``rows`` (the first of :func:`choice_splits`); a tie keeps the
    supervised model."""
    splits = choice_splits(cfg, rows)
    if not splits:
        return False, "self-training discarded: no validation rows to judge it on"
    fit, val = splits[0]
    X, y = rows[feature_cols], rows["tier"].tolist()
    X_fit, y_fit = X.iloc[fit], [y[i] for i in fit]
    semi, primary = cfg.train.semi_supervised, cfg.train.primary_metric
    plain = make().fit(X_fit, y_fit)
    trained, _ = self_train(make, X_fit, y_fit, pool, semi.threshold, semi.max_rounds)
    y_val = [y[i] for i in val]
    a, b = (
        tier_metrics(y_val, m.predict_proba(X.iloc[val]), cfg.scheme.codes, y_pred=list(m.predict(X.iloc[val]))).get(
            primary, np.nan
        )
        for m in (plain, trained)
    )
    kept = bool(b > a if HIGHER_IS_BETTER[primary] else b < a)
    verdict = "kept" if kept else "discarded"
    return kept, f"self-training {verdict} on {len(val)} validation rows: {primary} {b:.4f} vs {a:.4f} without"


def stage_baseline(cfg: Config, columns: Sequence[str]) -> StageNowBaseline | None:
    """The stage-at-the-snapshot baseline of purchase-stage labels (None for other labels, or without the
    RFM purchase count); it tells loyal customers apart when the features count the purchases of the
    horizon's length before the snapshot (``features.windows_days`` holds ``horizon_days``)."""
    oc = cfg.labels.outcome
    if cfg.labels.source != "outcome" or oc.kind != "purchase_stage" or "rfm_frequency" not in columns:
        return None
    window = f"rfm_frequency_{oc.horizon_days}d"
    return StageNowBaseline(cfg.scheme.codes, oc.loyal_purchases, window if window in columns else None)


def fit_models(
    cfg: Config,
    rows: pd.DataFrame,
    feature_cols: list[str],
    params: dict,
    unlabelled: pd.DataFrame | None = None,
    survival: pd.DataFrame | None = None,
    chosen: Choice | None = None,
) -> tuple[dict, Choice]:
    """The chosen tier model (and its self-training variant, when enabled) and every baseline, fitted
    on the same training ``rows``; the choice with its reasons. With ``survival`` rows (train.model
    survival or best) the survival model is fitted too: the tier model or, beside it, a comparison.
    ``chosen``: a choice made before, fitted again as it is (train.refit: the evaluated candidate, decision
    balance and self-training verdict on more rows), not made again."""
    levels = cfg.scheme.codes
    X, y = rows[feature_cols], rows["tier"].tolist()
    choice = copy.deepcopy(chosen) if chosen is not None else choose_model(cfg, rows, feature_cols, params)
    make = model_factories(cfg, params, choice.decision_balance)
    models = {"model": make[choice.name]().fit(X, y)}
    semi = cfg.train.semi_supervised
    if semi.enabled and choice.name == "lightgbm" and unlabelled is not None and len(unlabelled):
        pool = unlabelled[feature_cols]
        models["model_supervised_only"] = models["model"]
        models["model_self_training"], _ = self_train(make["lightgbm"], X, y, pool, semi.threshold, semi.max_rounds)
        if chosen is None or chosen.self_training is None:
            kept, why = keep_self_training(cfg, rows, feature_cols, make["lightgbm"], pool)
            choice.self_training = "kept" if kept else "discarded"
            choice.reasons.append(why)
        models["model"] = models["model_self_training" if choice.self_training == "kept" else "model_supervised_only"]
    elif semi.enabled:
        why = f"self-training not tried: it refits the LightGBM alone, and the tier model is {choice.name}"
        log.warning("%s (train.choice.candidates: [lightgbm] keeps it)", why)
        choice.reasons.append(why)
    models |= {"majority": MajorityBaseline(levels=levels).fit(X, y), "logreg": make["logreg"]().fit(X, y)}
    if "rfm_score" in X.columns:
        models["rfm_scorecard"] = RfmScorecard(levels=levels).fit(X, y)
    stage_now = stage_baseline(cfg, feature_cols)
    if stage_now is not None:
        models["stage_now"] = stage_now.fit(X, y)
    if survival is not None:
        kind, balance, why = choose_kind(cfg, rows, survival, feature_cols, params, choice)
        hazard = survival_stage.fit_hazard(cfg, survival, feature_cols, {**params, "decision_balance": balance})
        choice.reasons.extend(why)
        if kind == "survival":
            models["classifier"], models["model"] = models["model"], hazard
            choice.name = "survival"
        else:
            models["survival"] = hazard
    return models, choice


def choose_kind(
    cfg: Config, rows: pd.DataFrame, survival: pd.DataFrame, feature_cols: list[str], params: dict, choice: Choice
) -> tuple[str, float | None, list[str]]:
    """``train.model``: survival, classifier, or (best) the better by the primary metric on validation
    rows inside the training ``rows`` (the first of :func:`choice_splits`; a tie keeps the classifier);
    the survival model's decision balance, chosen as the classifier's is (:func:`choose_model`) on the
    same validation rows; the reasons in words."""
    fixed = configured_balance(cfg)
    survival_kind = "survival model (train.model: survival); the classifier is scored beside it"
    splits = choice_splits(cfg, rows)
    if not splits or (cfg.train.model == "survival" and not balance_matters(cfg)):
        if cfg.train.model == "survival":
            return "survival", fixed, [survival_kind]
        return "classifier", fixed, ["best: no validation rows inside the training rows, the classifier is kept"]
    fit, val = rows.iloc[splits[0][0]], rows.iloc[splits[0][1]]
    surv = survival_stage.before_validation(cfg, survival, fit, val)
    hazard = survival_stage.fit_hazard(cfg, surv, feature_cols, {**params, "decision_balance": fixed})
    primary, y_val, codes = cfg.train.primary_metric, val["tier"].tolist(), cfg.scheme.codes
    proba = hazard.predict_proba(val[feature_cols])
    balance, reasons = fixed, []
    if balance_matters(cfg):
        balance, _, why = balance_on(cfg, Validation(y_val, {"survival": [(proba, hazard)]}), "survival")
        reasons.append(f"decision balance of the survival model: {why}")
    if cfg.train.model == "survival":
        return "survival", balance, [survival_kind, *reasons]
    classifier = model_factories(cfg, params, choice.decision_balance)[choice.name]()
    classifier.fit(fit[feature_cols], fit["tier"].tolist())
    a = tier_metrics(y_val, proba, codes, y_pred=list(hazard.classes_[hazard.tier_index(proba, balance)]))[primary]
    b = tier_metrics(
        y_val, classifier.predict_proba(val[feature_cols]), codes, y_pred=list(classifier.predict(val[feature_cols]))
    )[primary]
    kind = "survival" if (a > b if HIGHER_IS_BETTER[primary] else a < b) else "classifier"
    return (
        kind,
        balance,
        [
            *reasons,
            f"best by {primary} on {len(val)} validation rows inside the training rows: {kind} "
            f"(survival {a:.4f}, classifier {b:.4f}); the other is scored beside it",
        ],
    )


def fixed_params(cfg: Config) -> dict:
    """The classifier settings that come from config, not from tuning."""
    return {
        "class_weight": None if cfg.train.class_weight == "none" else "balanced",
        "n_jobs": cfg.train.n_jobs,
        "decision": cfg.train.decision,
        "cost_matrix": cfg.train.cost_matrix,
    }


def tune_with(cfg: Config, X: pd.DataFrame, y: list[str], callbacks=(), groups=None) -> optuna.Study:
    """An Optuna study over ``cfg.train.tuning``'s search space and budget on these rows, with a
    progress display (trial n/N, best score so far, time left) on a terminal or when
    ``train.tuning.progress`` asks for one."""
    tuning = cfg.train.tuning
    shown = show_progress(tuning.progress)
    with TuningProgress(tuning.n_trials, tuning.timeout_s, cfg.train.primary_metric, shown) as progress:
        return tune(
            X,
            y,
            cfg.scheme.codes,
            {k: v.model_dump() for k, v in tuning.search_space.items()},
            n_trials=tuning.n_trials,
            timeout_s=tuning.timeout_s,
            cv_folds=tuning.cv_folds,
            metric=cfg.train.primary_metric,
            seed=cfg.seed,
            base_params=fixed_params(cfg),
            callbacks=[*callbacks, progress],
            groups=groups,
        )


@dataclass
class Evaluation:
    """The tier model and every baseline scored on the same evaluation rows.

    ``rows`` are the evaluation rows (k-fold: every training row, each scored out of fold); ``preds``
    maps a model key (``model``, its self-training variants, the baselines) to its probabilities and
    tiers for them; ``models``, the registered ones, are fitted on the rows ``fitted``: every training
    row, or (k-fold, ``train.refit``) every labelled row; ``choices`` holds the tier-model choice made for
    the scores (inside each outer fold), then the registered model's."""

    rows: pd.DataFrame
    y_true: list[str]
    preds: dict[str, tuple[np.ndarray, list]]
    models: dict[str, object]
    choices: list[Choice]
    overlap: int
    fitted: pd.DataFrame  # the rows ``models`` were fitted on
    refitted: bool = False  # ``models`` were fitted on the evaluation rows too (k-fold, train.refit)
    outer_folds: list[dict] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    share_gaps: dict[str, dict[str, float]] = field(default_factory=dict)  # tiers whose probabilities are off
    beats: dict[str, dict[str, bool]] = field(default_factory=dict)
    gains: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    @property
    def chosen(self) -> Choice:
        """The registered model's choice."""
        return self.choices[-1]


def predict_all(models: dict, X: pd.DataFrame) -> dict[str, tuple[np.ndarray, list]]:
    return {k: (m.predict_proba(X), list(m.predict(X))) for k, m in models.items()}


def fit_and_predict(cfg: Config, prep: Prepared, feature_cols: list[str], params: dict, tune_fold=None) -> Evaluation:
    """Fit the tier model and every baseline on the training rows and score the evaluation rows.

    k-fold: ``tune_fold(i, X, y)`` returns the hyper-parameters for outer fold ``i`` tuned on that
    fold's training rows only (nested cross-validation), so no held-out fold influences its own model,
    and the tier model is chosen inside each outer fold's training rows.
    """
    train = prep.train
    if prep.test is None:
        return _kfold_predictions(cfg, prep, feature_cols, params, tune_fold)
    models, choice = fit_models(cfg, train, feature_cols, params, prep.unlabelled, prep.survival)
    overlap = check_disjoint(train, prep.test, cfg.labels.source)
    preds = predict_all(models, prep.test[feature_cols])
    ev = Evaluation(prep.test, prep.test["tier"].tolist(), preds, models, [choice], overlap, fitted=train)
    if cfg.train.refit and not train_log.refits(cfg):
        choice.reasons.append(
            "not refitted on the evaluation rows (train.refit): the survival model's training entities are those "
            "of the training window"
        )
    elif cfg.train.refit:
        every = pd.concat([train, prep.test], ignore_index=True)
        ev.models, refit = fit_models(cfg, every, feature_cols, params, prep.unlabelled, chosen=choice)
        refit.reasons.append(
            f"refitted (train.refit) on all {len(every)} labelled rows, training and evaluation together, as "
            f"chosen and evaluated: the figures measure it fitted on the {len(train)} training rows"
        )
        ev.choices.append(refit)
        ev.fitted, ev.refitted = every, True
    return ev


def _kfold_predictions(cfg: Config, prep: Prepared, feature_cols: list[str], params: dict, tune_fold) -> Evaluation:
    """Out-of-fold predictions for every labelled row; the registered models use all of them."""
    train = prep.train
    folds = StratifiedKFold(n_splits=cfg.train.folds, shuffle=True, random_state=cfg.seed)
    y = train["tier"].to_numpy(dtype=object)
    proba_parts: dict[str, np.ndarray] = {}
    pred_parts: dict[str, np.ndarray] = {}
    choices, overlap = [], 0
    for i, (tr, va) in enumerate(folds.split(train, y)):
        fold_train, held_out = train.iloc[tr], train.iloc[va]
        overlap += check_disjoint(fold_train, held_out, cfg.labels.source)
        fold_params = tune_fold(i, fold_train[feature_cols], list(y[tr])) if tune_fold is not None else params
        fold_models, choice = fit_models(cfg, fold_train, feature_cols, fold_params, prep.unlabelled)
        choices.append(choice)
        for k, (proba, pred) in predict_all(fold_models, held_out[feature_cols]).items():
            proba_parts.setdefault(k, np.zeros((len(train), len(cfg.scheme.codes))))[va] = proba
            pred_parts.setdefault(k, np.empty(len(train), dtype=object))[va] = pred
    # a variant fitted in only some folds (self-training follows each fold's choice) has no full set of rows
    fitted_in = Counter(
        k for c in choices for k in (["model_self_training", "model_supervised_only"] if c.self_training else [])
    )
    partial = {k for k, n in fitted_in.items() if n < len(choices)}
    preds = {k: (proba_parts[k], list(pred_parts[k])) for k in proba_parts if k not in partial}
    models, final_choice = fit_models(cfg, train, feature_cols, params, prep.unlabelled)
    return Evaluation(train, list(y), preds, models, [*choices, final_choice], overlap, fitted=train, refitted=True)


def judge(cfg: Config, ev: Evaluation, survival: pd.DataFrame | None = None) -> Evaluation:
    """Fill ``ev``'s metrics per model, the model's verdict against each baseline, and (with
    ``train.bootstrap_resamples``) its gains with paired-bootstrap 95 % intervals. With ``survival``
    training rows, the tier model and the other kind also get censoring-aware figures (C-index, IPCW
    integrated Brier)."""
    levels = cfg.scheme.codes
    for key, (proba, pred) in ev.preds.items():
        ev.metrics[key] = tier_metrics(ev.y_true, proba, levels, y_pred=pred)
        ev.metrics[key]["mean_proba_gap"] = mean_probability_gap(ev.y_true, proba, levels)
        ev.metrics[key] |= level_shares(ev.y_true, proba, levels)
        ev.metrics[key]["adjacent_miss_share"] = adjacent_miss_share(ev.y_true, pred, levels)
        if survival is not None and key in ("model", "classifier", "survival"):
            ev.metrics[key] |= survival_stage.censoring_aware(cfg, ev.y_true, proba)
    ev.share_gaps = share_gaps(ev.metrics["model"], levels, len(ev.y_true))
    if ev.share_gaps:
        timed = cfg.train.evaluation in ("ordered_holdout", "backtest")
        log.warning(
            "the model's probabilities are off on the %d evaluation rows by more than chance explains (%s): %s; "
            "read its probabilities as a ranking",
            len(ev.y_true),
            "; ".join(
                f"tier {k}: {100 * v['expected']:.1f} % expected, {100 * v['observed']:.1f} % were"
                for k, v in ev.share_gaps.items()
            ),
            "the tiers' shares moved between the older training rows and the newer evaluation rows"
            if timed
            else "they are not calibrated on rows like these",
        )
    compared = list(dict.fromkeys([cfg.train.primary_metric, *VERDICT]))
    baselines = [b for b in ev.metrics if not b.startswith("model")]
    if all(c.name == "logreg" for c in (ev.choices[:-1] or ev.choices)):  # the model is that baseline itself
        baselines.remove("logreg")
    ev.beats = {b: compare(ev.metrics["model"], ev.metrics[b], [*compared, *SURVIVAL]) for b in baselines}
    if cfg.train.bootstrap_resamples:
        ev.gains = paired_bootstrap(
            ev.y_true,
            {k: ev.preds[k] for k in ["model", *baselines]},
            "model",
            levels,
            compared,
            n_resamples=cfg.train.bootstrap_resamples,
            seed=cfg.seed,
        )
        warn_beaten(ev, cfg.train.primary_metric)
    return ev


BASELINES = ("logreg", "majority", "rfm_scorecard", "stage_now")  # not a rival model (classifier, survival)


def warn_beaten(ev: Evaluation, metric: str) -> None:
    """A warning for each baseline that scores better than the registered model on the primary ``metric``
    beyond noise on the evaluation rows: the run says so, not only a 'NO' in its table."""
    for baseline in beaten_on({b: g for b, g in ev.gains.items() if b in BASELINES}, [metric]):
        g = ev.gains[baseline][metric]
        log.warning(
            "the %s baseline scores better than the registered model on %s beyond noise: the model's gain "
            "over it is %+.4f [%+.4f, %+.4f] on the %d evaluation rows",
            baseline,
            metric,
            g["gain"],
            g["low"],
            g["high"],
            len(ev.y_true),
        )


def segment(cfg: Config, feats: pd.DataFrame, columns: list[str], ev: Evaluation, previous) -> tuple[Segmenter, float]:
    """K-means segments of the snapshot, and how much of the evaluation rows' tiers they explain
    (adjusted mutual information)."""
    seg = Segmenter(
        columns=columns,
        k=cfg.segments.k,
        k_range=tuple(cfg.segments.k_range),
        minibatch_above=cfg.segments.minibatch_above,
        silhouette_sample=cfg.segments.silhouette_sample,
        random_state=cfg.seed,
        type_words=cfg.words(),
    ).fit(feats, previous=previous)
    ami = float(adjusted_mutual_info_score(ev.rows["tier"], seg.predict(ev.rows)))
    return seg, ami


def attribute_names(cfg: Config) -> dict[str, str]:
    """Each customers attribute's feature -> its column as written ('cust_budget_eur' -> 'Budget (EUR)');
    a snake_case name ('lead_source') is left out: the reasons' words ('lead source') read better."""
    spec = cfg.data.tables.customers
    return {f"cust_{slug(a)}": a for a in [*spec.categorical, *spec.numeric] if a != slug(a)}


def make_scorer(
    cfg: Config, prep: Prepared, ev: Evaluation, seg: Segmenter, ami: float, feature_cols: list[str], run_id: str
) -> TierScorer:
    """The registered artefact: the tier model, the segmenter, the scheme and the run's evidence."""
    clf = ev.models["model"]
    scorer = TierScorer(
        scheme=cfg.scheme,
        classifier=clf,
        segmenter=seg,
        feature_columns=feature_cols,
        metadata={
            "config": cfg.name,
            "scheme_name": cfg.labels.scheme,
            "as_of": train_log.model_as_of(cfg).isoformat(),
            "protocol": prep.protocol,
            "run_id": run_id,
            "test_metrics": ev.metrics,
            "test_gains_95ci": ev.gains,
            "segments_tier_ami": ami,
            "seed": cfg.seed,
            "entity_days": feature_stage.entity_days(cfg),  # reasons then say the day they describe
            "label_rules": [{"tier": r.tier, "when": r.when} for r in cfg.labels.rules],  # the playbook shows them
            "label_outcome": label_outcome(cfg, prep.protocol),
            "attribute_names": attribute_names(cfg),  # reasons name an attribute as the user's file does
            "currency": cfg.report.currency,  # reasons over REST show money as the report does
            "type_words": cfg.words(),  # features.type_words and attribute_words
            "money_attributes": [f"cust_{slug(a)}" for a in cfg.data.tables.customers.money],
            "time_zone": cfg.data.time_zone,  # predict warns when it reads dates in another zone
        },
    )
    scorer.drift_reference = reference_profile(drift_rows(prep), feature_cols, clf.categories_)
    scorer.grade_bands = dict(cfg.train.grade_bands)
    scorer.reason_groups = reason_groups(prep.features, list(clf.feature_names_in_), seed=cfg.seed)
    scorer.latest_open_days = latest_open_days(cfg)
    if scorer.latest_open_days and "closed_after" in ev.fitted.columns:  # the rows the model was fitted on
        horizon = max(scorer.latest_open_days.values())
        scorer.still_open = open_shares(ev.fitted["tier"], ev.fitted["closed_after"], cfg.scheme.codes, horizon)
    return scorer


def drift_rows(prep: Prepared) -> pd.DataFrame:
    """The snapshot's rows that scoring is compared with: all but the entities closed within the days their
    features describe, whose features show the close (``predict`` skips closed and younger entities), so
    that scoring the very snapshot trained on shows no drift."""
    if not prep.closed_early:
        return prep.features
    rows = prep.features[~prep.features[ID_COLUMN].isin(prep.closed_early)]
    log.info(
        "drift reference: %d of %d entities (%d closed within their first days left out)",
        len(rows),
        len(prep.features),
        len(prep.features) - len(rows),
    )
    return rows


def latest_open_days(cfg: Config) -> dict[str, int]:
    """Entities on their own clock: each tier's most days from the start within which a win counts for it
    (A: 30, B: 90, ...; the last but one: the horizon), so that the scorer rules out the tiers an entity
    still open has passed; {} otherwise."""
    if not feature_stage.entity_clock(cfg):
        return {}
    oc, codes = cfg.labels.outcome, list(cfg.scheme.codes)
    return {code: days for code, days in zip(codes, [*oc.thresholds_days, oc.horizon_days], strict=False)}


def censoring_proxies(cfg: Config, prep: Prepared, feature_cols: list[str]) -> dict[str, float]:
    """Model features that alone tell the snapshot's labelled rows from its unlabelled ones (censored, or
    never labelled) with a ROC AUC of at least ``train.censoring_proxy_auc``; each is a warning."""
    level = cfg.train.censoring_proxy_auc
    if level is None or cfg.labels.source == "rules":  # rule labels are functions of the columns by design
        return {}
    rows = prep.train if prep.test is None else pd.concat([prep.train, prep.test], ignore_index=True)
    latest = rows.loc[rows["snapshot"] == rows["snapshot"].max(), ID_COLUMN]
    has_label = prep.features[ID_COLUMN].isin(latest).to_numpy()
    auc = label_presence_auc(prep.features[feature_cols], has_label, seed=cfg.seed)
    found = {name: round(float(v), 4) for name, v in auc.items() if v >= level}
    for name, v in found.items():
        log.warning(
            "feature %s alone tells labelled from unlabelled rows (AUC %.3f >= train.censoring_proxy_auc %.2f): "
            "it may stand in for whether a label is known (a censoring proxy), not for the tier; "
            "features.exclude keeps it out of the model",
            name,
            v,
            level,
        )
    return found


def tier_giveaways(cfg: Config, prep: Prepared, feature_cols: list[str]) -> dict[str, dict]:
    """Customer attributes (no date of their own, so never cut at the as-of date) that alone pick out one
    tier of the training rows with a ROC AUC of at least ``train.giveaway_auc``; each is a warning."""
    level = cfg.train.giveaway_auc
    if level is None or cfg.labels.source == "rules":  # rule labels are functions of the columns by design
        return {}
    spec = cfg.data.tables.customers
    attributes = [c for c in feature_cols if c in {f"cust_{slug(a)}" for a in [*spec.categorical, *spec.numeric]}]
    if not attributes:
        return {}
    auc = tier_giveaway_auc(prep.train[attributes], prep.train["tier"], seed=cfg.seed)
    itself = auc.index[auc["every_tier_auc"] >= LABEL_ITSELF].tolist()
    if itself:
        raise TrainingDataError(
            f"attribute(s) {itself} alone tell every tier of the training rows apart (ROC AUC "
            f"{auc.loc[itself[0], 'every_tier_auc']:.3f} for each tier): the tier itself, or written from it. "
            "List such a column under leaky in data.tables.customers; if it truly is known before the outcome, "
            "set train.giveaway_auc: null"
        )
    found = {name: {"tier": str(r.tier), "auc": round(float(r.auc), 4)} for name, r in auc.iterrows() if r.auc >= level}
    for name, v in found.items():
        log.warning(
            "attribute %s alone picks out tier %s of the training rows (AUC %.3f >= train.giveaway_auc %.2f): "
            "it is read as exported, not as of the as-of date; if it was recorded after the outcome (a current "
            "stage, a close date, a win probability), list it under leaky",
            name,
            v["tier"],
            v["auc"],
            level,
        )
    return found


def survival_counts(cfg: Config, prep: Prepared, ev: Evaluation) -> dict:
    """What the survival model trained on, for the protocol: {} without one."""
    if prep.survival is None:
        return {}
    hazard = ev.models["model" if ev.chosen.name == "survival" else "survival"]
    return {
        "survival": {
            "train_rows": len(prep.survival),
            "rows_recovered": survival_stage.rows_recovered(cfg, prep.survival),
            "extra_snapshot_rows": int(prep.survival["snapshot"].isin(list(cfg.snapshots.survival_as_of)).sum()),
            "person_periods": int(hazard.n_person_periods_),
            "calibration": hazard.calibration_,
        }
    }


def run(cfg: Config, config_path: str | Path | None = None) -> TrainResult:
    """``leadtier train``: prepare the rows, tune, evaluate against the baselines, segment, then log,
    register and gate the scorer in one MLflow run."""
    t0 = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # every trial is in MLflow; not a log line each
    prep = prepare(cfg)
    feature_cols = model_columns(cfg, prep)
    excluded = excluded_columns(cfg, list(prep.features.columns))
    seg_cols = segment_columns(prep.features, [*cfg.segments.exclude_columns, *sorted(excluded)])
    prep.protocol["censoring_proxies"] = censoring_proxies(cfg, prep, feature_cols)
    prep.protocol["giveaways"] = tier_giveaways(cfg, prep, feature_cols)
    client = tracking.setup(cfg)
    orphans.fail_orphans(client, cfg.mlflow.experiment)  # runs a killed train left RUNNING
    with mlflow.start_run(run_name=f"train-{cfg.name}", tags=orphans.process_tags()) as active:
        run_id = active.info.run_id
        train_log.log_inputs(cfg, prep, feature_cols)
        study, ev = tune_and_evaluate(cfg, prep, feature_cols)
        judge(cfg, ev, prep.survival)
        prep.protocol |= survival_counts(cfg, prep, ev) | {"share_gaps": ev.share_gaps}
        prep.protocol |= {
            "rows": {
                "train": len(prep.train),
                "evaluation": len(ev.rows),
                "overlap": ev.overlap,
                # a backtest's rows are customer snapshots: a customer evaluated later may be trained on earlier
                "customers_seen": int(ev.rows[ID_COLUMN].drop_duplicates().isin(prep.train[ID_COLUMN]).sum()),
                **({"refit": len(ev.fitted)} if ev.refitted and prep.test is not None else {}),
            },
            "model": ev.chosen.name,
            "model_choice": ev.chosen.reasons,
        }
        for reason in ev.chosen.reasons:  # the run's summary prints them: a log line each only with --verbose
            log.debug("tier model: %s", reason)
        with plots.glyphs_missing_said_once(log):  # the figures of the run, one warning for a missing font
            train_log.log_evaluation(cfg, prep, ev)
            seg, ami = segment(cfg, prep.features, seg_cols, ev, tracking.champion_segmenter(client, cfg))
            train_log.log_segments(cfg, seg, ami, ev)
        scorer = make_scorer(cfg, prep, ev, seg, ami, feature_cols, run_id)
        version, decision = train_log.register_and_gate(client, cfg, scorer, prep.train, ev)
        seconds = time.perf_counter() - t0
        mlflow.log_metric("train_seconds", seconds)
    return TrainResult(
        run_id=run_id,
        model_version=version,
        alias=decision.alias,
        reasons=decision.reasons,
        metrics=ev.metrics,
        beats=ev.beats,
        gains=ev.gains,
        best_params=dict(study.best_params),
        n_train=len(prep.train),
        n_test=len(ev.rows),
        seconds=seconds,
        n_trials=len(study.trials),
        segments_k=seg.n_clusters_,
        protocol=prep.protocol,
        bootstrap_resamples=cfg.train.bootstrap_resamples,
    )


def tune_and_evaluate(cfg: Config, prep: Prepared, feature_cols: list[str]) -> tuple[optuna.Study, Evaluation]:
    """Tune on every training row (the registered model's hyper-parameters), then fit and score the
    model and the baselines; k-fold evaluation tunes again inside each outer fold (nested CV)."""
    train = prep.train
    groups = train[ID_COLUMN].to_numpy() if train["snapshot"].nunique() > 1 else None
    study = run_study(cfg, train[feature_cols], train["tier"].tolist(), groups, "")
    base = fixed_params(cfg)
    outer: list[dict] = []

    def tune_fold(i: int, X, y) -> dict:
        fold_study = run_study(cfg, X, y, None, f"fold{i + 1}-")
        outer.append({"fold": i + 1, "cv_best": fold_study.best_value, **fold_study.best_params})
        return {**base, **fold_study.best_params}

    ev = fit_and_predict(
        cfg, prep, feature_cols, {**base, **study.best_params}, tune_fold if prep.test is None else None
    )
    ev.outer_folds = outer
    train_log.log_study(cfg, study, outer)
    return study, ev


def run_study(cfg: Config, X: pd.DataFrame, y: list[str], groups, prefix: str) -> optuna.Study:
    """A tuning study whose trials are logged as nested MLflow runs named ``<prefix>trial-NNN``."""
    return tune_with(cfg, X, y, callbacks=[train_log.trial_logger(cfg, prefix)], groups=groups)


def summary_text(cfg: Config, res: TrainResult) -> str:
    """What ``leadtier train`` prints: the run in a few lines, a table of the evaluation metrics with the
    model's verdict against each baseline, a table of the gains with their 95 % intervals, and the
    champion gate's reasons; everything fits ``console.WIDTH`` (100) columns."""
    protocol = res.protocol
    tuning = cfg.train.tuning
    trials = f"{res.n_trials} tuning trials"
    if res.n_trials < tuning.n_trials:  # the time limit stopped the study: another run may stop elsewhere
        trials = (
            f"{res.n_trials} of {tuning.n_trials} tuning trials: train.tuning.timeout_s ({tuning.timeout_s:g} s) "
            "ran out, so a run with the same seed may tune differently"
        )
    lines = wrap(
        f"trained {cfg.mlflow.model_name} v{res.model_version} -> alias '{res.alias}' "
        f"({protocol['evaluation']}, {trials}, {res.seconds:.0f} s)"
    )
    if "rows" in protocol:
        rows = protocol["rows"]
        lines.append(f"rows: {rows['train']} train, {rows['evaluation']} evaluation, {rows['overlap']} in both")
        if "refit" in rows:
            lines += wrap(
                f"registered model: refitted on all {rows['refit']} labelled rows once evaluated (train.refit); the "
                "figures below measure the same procedure on the training rows"
            )
        lines += wrap(f"evaluation: {protocol_words(protocol)}")
        if "entities" in protocol:
            lines += wrap(entity_words(protocol["entities"]))
        if "survival" in protocol:
            sv = protocol["survival"]
            lines += wrap(
                f"survival model: {sv['train_rows']} training entities, {sv['rows_recovered']} of them censored "
                "(the classifier had to drop those)"
            )
        if protocol.get("censoring_proxies"):
            named = ", ".join(f"{k} (AUC {v:.2f})" for k, v in protocol["censoring_proxies"].items())
            lines += wrap(f"censoring proxies (alone tell labelled from unlabelled rows; features.exclude): {named}")
        if protocol.get("giveaways"):
            named = ", ".join(f"{k} (tier {v['tier']}, AUC {v['auc']:.2f})" for k, v in protocol["giveaways"].items())
            lines += wrap(f"attributes that alone pick out a tier (recorded after the outcome? leaky): {named}")
        if protocol.get("share_gaps"):
            named = ", ".join(
                f"{k} {100 * v['expected']:.1f} % expected, {100 * v['observed']:.1f} % observed"
                for k, v in protocol["share_gaps"].items()
            )
            lines += wrap(f"probabilities off on the evaluation rows (shares moved?): {named}")
        if protocol.get("empty_tiers"):
            lines += wrap(f"tiers no labelled row reaches: {', '.join(protocol['empty_tiers'])} (left out)")
        for reason in protocol.get("model_choice", []):  # "<choice> (<rule>): <scores>" -> two lines
            head, _, scores = reason.partition("): ")
            lines += wrap(f"tier model: {head}" + ("):" if scores else "")) + (wrap(f"  {scores}") if scores else [])
    if "logreg" in res.metrics and res.beats and "logreg" not in res.beats:
        lines += wrap("the tier model is the logreg baseline itself: nothing to compare it with, no gain over it")
    lines += ["", *_metrics_table(cfg, res), *wrap(_shares_line(cfg, res.metrics["model"]))]
    if res.gains:
        lines += ["", *_gains_table(res)]
    lines += ["", *(line for r in res.reasons for line in wrap(r)), f"MLflow run {res.run_id}"]
    return "\n".join(lines)


def _metrics_table(cfg: Config, res: TrainResult) -> list[str]:
    """Rows: the model, its self-training variants, the baselines, then 'model beats <baseline>' yes/NO
    ('~' after it: within noise, as in the gains table); columns: every metric the verdicts compare (the
    AUC-type ones only for two tiers)."""
    shown = [m for m in dict.fromkeys([*headline(cfg), *VERDICT, *SURVIVAL]) if m in res.metrics["model"]]
    order = sorted(res.metrics, key=lambda k: (k != "model", not k.startswith("model")))
    rows = [[key, *(f"{res.metrics[key].get(m, float('nan')):.4f}" for m in shown)] for key in order]
    verdicts = {True: "yes", False: "NO", None: ""}  # "": not compared (a figure only survival models have)

    def verdict(b: str, beats: dict, m: str) -> str:
        g = res.gains.get(b, {}).get(m)
        noise = beats.get(m) is not None and g is not None and g["low"] <= 0 <= g["high"]
        return verdicts[beats.get(m)] + (" ~" if noise else "")  # as the gains table marks it

    rows += [[f"model beats {b}", *(verdict(b, v, m) for m in shown)] for b, v in res.beats.items()]
    return table(["evaluation metrics", *shown], rows)


def _shares_line(cfg: Config, metrics: dict) -> str:
    """Each tier's share of the evaluation rows beside the model's mean probability of it ('' for a model
    logged without them); brier, when shown, is summed over the tiers."""
    codes = [c for c in cfg.scheme.codes if f"observed_share_{c}" in metrics]
    if not codes:
        return ""
    shown = codes[:1] if len(codes) == 2 else codes  # two tiers: the positive one says it all
    pairs = ", ".join(
        f"{c} {100 * metrics[f'observed_share_{c}']:.1f} % / {100 * metrics[f'mean_proba_{c}']:.1f} %" for c in shown
    )
    brier = " (brier is summed over the tiers: twice the usual two-class figure)" if len(codes) == 2 else ""
    return f"tier shares of the evaluation rows, observed / the model's mean probability: {pairs}{brier}"


def _gains_table(res: TrainResult) -> list[str]:
    """Rows: metrics; columns: baselines; cells: the model's gain [95 % interval], '~' when the interval
    contains 0 (within noise)."""
    baselines = list(res.gains)
    metrics = list(dict.fromkeys(m for per_metric in res.gains.values() for m in per_metric))
    rows = []
    for m in metrics:
        cells = []
        for b in baselines:
            g = res.gains[b].get(m)
            noise = g is not None and g["low"] <= 0 <= g["high"]
            cells.append(
                ""
                if g is None
                else f"{signed(g['gain'], 3)} [{signed(g['low'], 3)}, {signed(g['high'], 3)}]{' ~' if noise else '  '}"
            )
        rows.append([m, *cells])
    intro = wrap(
        f"the model's gain over each baseline (positive = better), with a 95 % interval from "
        f"{res.bootstrap_resamples} paired bootstrap resamples of the evaluation rows; "
        "~ = within noise (the interval contains 0):"
    )
    return [*intro, *table(["gain", *(f"vs {b}" for b in baselines)], rows)]


def protocol_words(protocol: dict) -> str:
    """The evaluation protocol in one plain sentence."""
    kind = protocol.get("evaluation")
    if kind == "kfold":
        return (
            f"{protocol['folds']}-fold cross-validation: every labelled row scored by a model that did not train on it"
        )
    if kind == "ordered_holdout":
        share = round(100 * protocol["newest_share"])
        return f"the newest {share} % of rows by {protocol['order_by']} held out; the older rows trained"
    if kind == "backtest":
        return (
            f"trained on snapshots {', '.join(protocol['train_snapshots'])}, "
            f"evaluated on {', '.join(protocol['eval_snapshots'])}"
        )
    return f"a random stratified {round(100 * protocol.get('test_size', 0))} % of rows held out"


def result_json(res: TrainResult) -> str:
    return json.dumps(res.__dict__, default=lambda o: o if not isinstance(o, np.generic) else o.item(), indent=2)

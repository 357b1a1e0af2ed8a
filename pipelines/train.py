"""Stage: train the tier model and the segmenter, compare with baselines, track and register.

``leadtier train`` = features as of the snapshot -> labelled rows split (stratified, seeded)
-> Optuna-tuned LightGBM on the training rows (cross-validated) -> same-split baselines ->
MLflow run with metrics, plots, the config and the registered pyfunc -> champion gate.
"""

from __future__ import annotations

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
import yaml
from leadtier.features.queries import entity_label_query, label_query, slug
from leadtier.models.baselines import LogisticBaseline, MajorityBaseline, RfmScorecard
from leadtier.models.candidates import AveragedTiers, Choice, choose
from leadtier.models.classifier import TierClassifier
from leadtier.models.drift import reference_profile
from leadtier.models.frame import ID_COLUMN
from leadtier.models.metrics import (
    HIGHER_IS_BETTER,
    adjacent_miss_share,
    compare,
    confusion,
    mean_probability_gap,
    paired_bootstrap,
    tier_metrics,
)
from leadtier.models.schemes import TierScheme
from leadtier.models.scorer import TierScorer
from leadtier.models.segments import Segmenter
from leadtier.models.semi import self_train
from leadtier.models.text import clip
from leadtier.models.tuning import tune
from leadtier.pipelines import features as feature_stage
from leadtier.pipelines import orphans, tracking
from leadtier.pipelines.config import Config
from leadtier.pipelines.console import TuningProgress, show_progress, table, wrap
from leadtier.pipelines.errors import UserError
from leadtier.pipelines.label_rules import rule_labels
from leadtier.pipelines.sources import InputError, register_all
from leadtier.pipelines.validate import as_records, validate
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.model_selection import StratifiedKFold, train_test_split

log = logging.getLogger(__name__)
ENTITY_COUNTS = ("labelled", "censored", "unlabelled")
HEADLINE = ["macro_f1", "balanced_accuracy", "qwk", "log_loss"]
# compared with every baseline, metric by metric (those a run has: the AUC-type ones need two tiers)
VERDICT = [*HEADLINE, "brier", "ece", "roc_auc", "pr_auc", "lift_top_decile"]


def headline(cfg: Config) -> list[str]:
    """The summary table's columns: the primary metric, then the headline metrics."""
    return list(dict.fromkeys([cfg.train.primary_metric, *HEADLINE]))


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
    extra: dict = field(default_factory=dict)


def labels_known_at(labels: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """The labels a snapshot may use: those without a ``labelled_at`` date or assigned by ``as_of``.

    A tier assigned after the snapshot date may reflect what happened after it, so it is left out of
    that snapshot (and logged). One assigned on the day itself judges what was known that day.
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
    return labels.loc[~later, ["customer_id", "tier"]]


def attach_labels(cfg: Config, feats: pd.DataFrame, labels: pd.DataFrame | None) -> pd.DataFrame:
    """Feature rows of labelled customers with a ``tier`` column in scheme codes."""
    if labels is None or labels.empty:
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
            f"labels: column 'tier' has {len(bad)} value(s) that are not levels of scheme "
            f"{cfg.labels.scheme!r} {cfg.scheme.codes}; e.g. {examples} (map them with labels.mapping)"
        )
    dup = lab["customer_id"].duplicated(keep=False)
    if dup.any():
        conflicting = lab[dup].groupby("customer_id")["tier"].nunique()
        if (conflicting > 1).any():
            raise InputError(
                f"labels: {int((conflicting > 1).sum())} customer(s) carry different tiers; "
                f"e.g. {', '.join(clip(v, quote=True) for v in conflicting[conflicting > 1].index[:3])}"
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


def segment_columns(feats: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Behaviour columns for K-means: RFM and interaction numbers; without an event log (lead-level
    data), the numeric attributes. ``exclude`` (``segments.exclude_columns``) are never used."""
    unknown = sorted(set(exclude) - set(feats.columns))
    if unknown:
        raise TrainingDataError(
            f"segments.exclude_columns names columns the feature table does not have: {unknown}. "
            f"Feature columns: {[c for c in feats.columns if c != ID_COLUMN]}"
        )
    numeric = [c for c in feats.columns if c not in set(exclude) and pd.api.types.is_numeric_dtype(feats[c])]
    cols = [c for c in numeric if c.startswith(("rfm_", "ix_"))]
    if not cols:
        cols = [c for c in numeric if c != ID_COLUMN]
    if not cols:
        raise TrainingDataError(
            f"no numeric feature column is left for the K-means segments (segments.exclude_columns = {list(exclude)})"
        )
    return cols


def _plot_confusion(cm: pd.DataFrame, title: str):
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    ax.imshow(cm.to_numpy(), cmap="Blues")
    ax.set_xticks(range(len(cm.columns)), cm.columns)
    ax.set_yticks(range(len(cm.index)), cm.index)
    ax.set_xlabel("predicted tier")
    ax.set_ylabel("true tier")
    ax.set_title(title)
    vmax = cm.to_numpy().max() or 1
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            v = cm.iat[i, j]
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > vmax / 2 else "black")
    fig.tight_layout()
    return fig


def _plot_reliability(y_true: list[str], proba: np.ndarray, levels: list[str]):
    """Reliability diagram: top-label confidence vs accuracy, and one curve per tier (one-vs-rest)."""
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    y = np.asarray(y_true, dtype=object)
    correct = (np.asarray(levels, dtype=object)[proba.argmax(axis=1)] == y).astype(int)
    frac, mean = calibration_curve(correct, proba.max(axis=1), n_bins=10, strategy="quantile")
    axes[0].plot(mean, frac, marker="o", label="model")
    axes[0].set_title("top-label reliability")
    for i, code in enumerate(levels):
        if (y == code).any() and (y != code).any():
            f, m = calibration_curve((y == code).astype(int), proba[:, i], n_bins=8, strategy="quantile")
            axes[1].plot(m, f, marker=".", label=str(code))
    axes[1].set_title("per tier (one vs rest)")
    for ax in axes:
        ax.plot([0, 1], [0, 1], ls="--", color="grey")
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed frequency")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _plot_importance(imp: pd.Series, top: int = 20):
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    s = imp.head(top)[::-1]
    ax.barh(s.index, s.to_numpy(), color="#3b6ea5")
    ax.set_xlabel("total gain")
    ax.set_title(f"Top {min(top, len(imp))} features (LightGBM gain)")
    fig.tight_layout()
    return fig


def _plot_k(scores: list[dict]):
    df = pd.DataFrame(scores)
    fig = Figure(figsize=(11, 3.2))
    axes = fig.subplots(1, 3)
    for ax, col in zip(axes, ["silhouette", "calinski_harabasz", "inertia"], strict=True):
        ax.plot(df["k"], df[col], marker="o")
        ax.set_xticks(df["k"])  # whole numbers of clusters only
        ax.set_xlabel("k")
        ax.set_title(col)
    fig.tight_layout()
    return fig


def _flat(prefix: str, d: dict) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(_flat(key, v))
        else:
            out[key] = v
    return out


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


def outcome_labels(con, cfg: Config, as_of: dt.date, observed_until: dt.date) -> pd.DataFrame:
    oc = cfg.labels.outcome
    sql = label_query(
        oc.kind, as_of, observed_until, cfg.scheme.codes, oc.thresholds_days, oc.horizon_days, oc.cut_points
    )
    lab = feature_stage.fetch_frame(con, sql)
    return lab[["customer_id", "tier"]]


def entity_labels(con, cfg: Config, as_of: dt.date) -> tuple[pd.DataFrame, dict]:
    """Outcome labels on each entity's own clock (``labels.outcome.kind: days_to_win``), evaluated at
    ``as_of``, and how many entities are labelled, censored (still open, horizon not observed by
    ``as_of``: no label, never the last level) and unlabelled for another reason (logged)."""
    oc = cfg.labels.outcome
    sql = entity_label_query(as_of, cfg.scheme.codes, oc.thresholds_days, oc.horizon_days, oc.observed_from)
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
    return lab.loc[labelled, ["customer_id", "tier", "started_on"]], counts


def entity_words(counts: dict) -> str:
    """'8000 entities: 4823 labelled, 1377 censored (...), 1800 unlabelled (...)' on one line."""
    why = ", ".join(f"{n} {r}" for r, n in counts["unlabelled_reasons"].items())
    return (
        f"{counts['entities']} entities: {counts['labelled']} labelled, {counts['censored']} censored (still open, "
        f"their {counts['horizon_days']}-day horizon not observed by {counts['evaluated_at']}), "
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


def check_horizon(cfg: Config, as_of: dt.date, observed_until: dt.date) -> None:
    """Refuse a snapshot whose label horizon is not fully observed by ``observed_until``.

    Censoring alone would still label the customers who bought early, but only them: a training set
    of fast buyers. ``days_to_next_purchase`` needs days 0 to ``horizon_days`` seen (day
    ``horizon_days`` still counts as D), ``revenue_next_days`` days 0 to ``horizon_days - 1``.
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
    """The feature columns ``features.exclude`` keeps out of the model and the segments."""
    return {feature_column(name, columns, "features.exclude") for name in cfg.features.exclude}


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


def prepare(cfg: Config) -> Prepared:
    """Build features (and outcome labels) for every snapshot the evaluation protocol needs."""
    feature_stage.check_families(cfg)
    con = feature_stage.connect(cfg)
    try:
        stats = register_all(con, cfg, with_labels=cfg.labels.source == "table")
        if not stats["customers"].rows:
            raise InputError(f"{', '.join(stats['customers'].files)}: no customers to train on (a header only?)")
        problems = validate(con, cfg, stats, max([cfg.data.as_of, *cfg.snapshots.eval_as_of]))
        data_end = None
        if "transactions" in stats:
            last = con.execute("SELECT max(ts) FROM transactions").fetchall()[0][0]
            data_end = (last.date() + dt.timedelta(days=1)) if last is not None else None
        table_labels = (
            feature_stage.fetch_frame(con, "SELECT customer_id, CAST(tier AS VARCHAR) AS tier, labelled_at FROM labels")
            if cfg.labels.source == "table"
            else None
        )

        entities: dict = {}
        if cfg.labels.source == "rules":  # a customer's tier from its columns, like a tier from people
            table_labels, entities["label_rules"] = rule_labels(con, cfg)

        def snapshot(as_of: dt.date, observed_until: dt.date | None) -> tuple[pd.DataFrame, pd.DataFrame]:
            feats = feature_stage.build_in(con, cfg, as_of)
            if cfg.labels.source != "outcome":
                lab = labels_known_at(table_labels, as_of)
            elif cfg.labels.outcome.kind == "days_to_win":  # each entity's own clock, censored at as_of
                lab, entities["entities"] = entity_labels(con, cfg, as_of)
            else:
                if observed_until is None or observed_until <= as_of:
                    raise TrainingDataError(
                        f"no transactions after the snapshot {as_of}: outcome labels need an observed future"
                    )
                check_horizon(cfg, as_of, observed_until)
                lab = outcome_labels(con, cfg, as_of, observed_until)
            data = attach_labels(cfg, feats, lab)
            if "started_on" in lab.columns:
                data = data.merge(lab[["customer_id", "started_on"]], on=ID_COLUMN, how="left")
            data.insert(1, "snapshot", as_of)
            if cfg.train.evaluation != "backtest":  # a backtest narrows after its last snapshot
                entities["empty_tiers"] = drop_empty_tiers(cfg, data["tier"])
            return feats, data

        if cfg.train.evaluation == "backtest":
            eval_date = min(cfg.snapshots.eval_as_of)
            parts = [snapshot(d, eval_date)[1] for d in cfg.snapshots.train_as_of]
            train = pd.concat(parts, ignore_index=True)
            tests = [snapshot(d, data_end) for d in cfg.snapshots.eval_as_of]
            test = pd.concat([t[1] for t in tests], ignore_index=True)
            if cfg.labels.source != "outcome":
                test = unseen_customers(train, test)
            entities["empty_tiers"] = drop_empty_tiers(cfg, pd.concat([train["tier"], test["tier"]]))
            feats = tests[-1][0]
            protocol = {
                "evaluation": "backtest",
                "train_snapshots": [d.isoformat() for d in cfg.snapshots.train_as_of],
                "eval_snapshots": [d.isoformat() for d in cfg.snapshots.eval_as_of],
                "train_labels_observed_until": eval_date.isoformat(),
                "eval_labels_observed_until": data_end.isoformat() if data_end else None,
            }
        else:
            feats, data = snapshot(cfg.data.as_of, data_end)
            if cfg.train.evaluation == "kfold":
                train, test = data, None
                protocol = {"evaluation": "kfold", "folds": cfg.train.folds, "as_of": cfg.data.as_of.isoformat()}
            elif cfg.train.evaluation == "ordered_holdout":
                train, test = ordered_split(cfg, data)
                protocol = {
                    "evaluation": "ordered_holdout",
                    "order_by": cfg.train.order_by,
                    "newest_share": cfg.train.test_size,
                    "as_of": cfg.data.as_of.isoformat(),
                }
            else:
                check_minimum(cfg, data["tier"])
                train, test = train_test_split(
                    data, test_size=cfg.train.test_size, stratify=data["tier"], random_state=cfg.seed
                )
                protocol = {
                    "evaluation": "holdout",
                    "test_size": cfg.train.test_size,
                    "as_of": cfg.data.as_of.isoformat(),
                }
    finally:
        con.close()
    protocol |= entities
    check_minimum(cfg, train["tier"])
    unlabelled = None
    if cfg.train.semi_supervised.enabled:
        if cfg.labels.source == "outcome":
            raise TrainingDataError(
                "train.semi_supervised needs labels from people or rules (labels.source: table or rules): with "
                "outcome labels the unlabelled customers are censored ones or the evaluation snapshot itself"
            )
        labelled_ids = set(train[ID_COLUMN]) | (set(test[ID_COLUMN]) if test is not None else set())
        unlabelled = feats[~feats[ID_COLUMN].isin(labelled_ids)]
    if test is not None and test.empty:
        raise TrainingDataError("the evaluation snapshot has no labelled customer (all censored?)")
    return Prepared(
        train=train,
        test=test,
        features=feats,
        stats={k: v.as_dict() for k, v in stats.items()},
        protocol=protocol,
        problems=as_records(problems),
        unlabelled=unlabelled,
    )


AVERAGES = {"average": ("lightgbm", "logreg")}  # candidates scored from their members' probabilities


def model_factories(cfg: Config, params: dict) -> dict[str, Callable[[], object]]:
    """Unfitted tier models by candidate name: the tuned LightGBM, the logistic regression and their
    probability average, with the class weights and decision rule of the config."""
    levels = cfg.scheme.codes
    calibration = {
        "calibration": cfg.train.calibration,
        "calibration_size": cfg.train.calibration_size,
        "calibration_cv": cfg.train.calibration_cv,
    }
    fixed = fixed_params(cfg)

    def lightgbm() -> TierClassifier:
        return TierClassifier(levels=levels, random_state=cfg.seed, **params, **calibration)

    def logreg() -> LogisticBaseline:
        return LogisticBaseline(
            levels=levels,
            class_weight=fixed["class_weight"],
            decision=fixed["decision"],
            cost_matrix=fixed["cost_matrix"],
            random_state=cfg.seed,
        )

    def average() -> AveragedTiers:
        return AveragedTiers([lightgbm(), logreg()])

    return {"lightgbm": lightgbm, "logreg": logreg, "average": average}


def choice_splits(cfg: Config, rows: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validation rows for choosing the tier model, from training ``rows`` only.

    Time-ordered protocols validate on the newest part of the training window (``ordered_holdout``:
    the newest ``test_size`` share of rows, which :func:`prepare` keeps in time order; ``backtest``:
    the last training snapshot when there are several); otherwise stratified folds. [] when a tier has
    fewer than two rows."""
    n = len(rows)
    if cfg.train.evaluation == "ordered_holdout":
        cut = n - max(1, int(round(n * cfg.train.test_size)))
        return [(np.arange(cut), np.arange(cut, n))]
    if cfg.train.evaluation == "backtest" and rows["snapshot"].nunique() > 1:
        newest = (rows["snapshot"] == rows["snapshot"].max()).to_numpy()
        return [(np.flatnonzero(~newest), np.flatnonzero(newest))]
    y = rows["tier"].to_numpy(dtype=object)
    k = min(cfg.train.choice.folds, int(pd.Series(y).value_counts().min()))
    if k < 2:
        return []
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=cfg.seed).split(np.zeros(n), y))


def choose_model(cfg: Config, rows: pd.DataFrame, feature_cols: list[str], params: dict) -> Choice:
    """Which candidate becomes the tier model, judged on validation rows inside ``rows`` (the training
    rows), never on evaluation rows."""
    candidates = list(cfg.train.choice.candidates)
    splits = choice_splits(cfg, rows)
    if len(candidates) == 1 or not splits:
        why = "the only candidate" if len(candidates) == 1 else "a tier has fewer than two training rows to validate on"
        return Choice(candidates[0], {}, cfg.train.primary_metric, 0, [f"{candidates[0]}: {why}"])
    make = model_factories(cfg, params)
    return choose(
        {k: make[k] for k in ("lightgbm", "logreg")},
        rows[feature_cols].reset_index(drop=True),
        rows["tier"].tolist(),
        splits,
        cfg.scheme.codes,
        cfg.train.primary_metric,
        candidates=candidates,
        averages=AVERAGES,
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


def fit_models(
    cfg: Config,
    rows: pd.DataFrame,
    feature_cols: list[str],
    params: dict,
    unlabelled: pd.DataFrame | None = None,
) -> tuple[dict, Choice]:
    """The chosen tier model (and its self-training variant, when enabled) and every baseline, fitted
    on the same training ``rows``; the choice with its reasons."""
    levels = cfg.scheme.codes
    X, y = rows[feature_cols], rows["tier"].tolist()
    choice = choose_model(cfg, rows, feature_cols, params)
    make = model_factories(cfg, params)
    models = {"model": make[choice.name]().fit(X, y)}
    semi = cfg.train.semi_supervised
    if semi.enabled and choice.name == "lightgbm" and unlabelled is not None and len(unlabelled):
        pool = unlabelled[feature_cols]
        models["model_supervised_only"] = models["model"]
        models["model_self_training"], _ = self_train(make["lightgbm"], X, y, pool, semi.threshold, semi.max_rounds)
        kept, why = keep_self_training(cfg, rows, feature_cols, make["lightgbm"], pool)
        choice.self_training = "kept" if kept else "discarded"
        choice.reasons.append(why)
        models["model"] = models["model_self_training" if kept else "model_supervised_only"]
    elif semi.enabled:
        why = f"self-training not tried: it refits the LightGBM alone, and the tier model is {choice.name}"
        log.warning("%s (train.choice.candidates: [lightgbm] keeps it)", why)
        choice.reasons.append(why)
    models |= {"majority": MajorityBaseline(levels=levels).fit(X, y), "logreg": make["logreg"]().fit(X, y)}
    if "rfm_score" in X.columns:
        models["rfm_scorecard"] = RfmScorecard(levels=levels).fit(X, y)
    return models, choice


def _evaluate(cfg: Config, prep: Prepared, feature_cols: list[str], params: dict, tune_fold=None):
    """Predictions on the evaluation rows for the model and every baseline (same rows for all), the
    fitted models, the choice of the tier model, and the training/evaluation row keys per fit.

    k-fold: ``tune_fold(i, X, y)`` returns the hyper-parameters for outer fold ``i`` tuned on that
    fold's training rows only (nested cross-validation), so no held-out fold influences its own model,
    and the tier model is chosen inside each outer fold's training rows.
    """
    train = prep.train
    if prep.test is not None:
        models, choice = fit_models(cfg, train, feature_cols, params, prep.unlabelled)
        X_eval = prep.test[feature_cols]
        preds = {k: (m.predict_proba(X_eval), list(m.predict(X_eval))) for k, m in models.items()}
        overlap = check_disjoint(train, prep.test, cfg.labels.source)
        return prep.test["tier"].tolist(), preds, models, [choice], overlap
    # k-fold: out-of-fold predictions for every labelled row; the final model uses all of them
    folds = StratifiedKFold(n_splits=cfg.train.folds, shuffle=True, random_state=cfg.seed)
    y = train["tier"].to_numpy(dtype=object)
    proba_parts: dict[str, np.ndarray] = {}
    pred_parts: dict[str, np.ndarray] = {}
    choices = []
    overlap = 0
    for i, (tr, va) in enumerate(folds.split(train, y)):
        fold_train = train.iloc[tr]
        overlap += check_disjoint(fold_train, train.iloc[va], cfg.labels.source)
        fold_params = tune_fold(i, fold_train[feature_cols], list(y[tr])) if tune_fold is not None else params
        fold_models, choice = fit_models(cfg, fold_train, feature_cols, fold_params, prep.unlabelled)
        choices.append(choice)
        for k, m in fold_models.items():
            proba_parts.setdefault(k, np.zeros((len(train), len(cfg.scheme.codes))))[va] = m.predict_proba(
                train.iloc[va][feature_cols]
            )
            pred_parts.setdefault(k, np.empty(len(train), dtype=object))[va] = m.predict(train.iloc[va][feature_cols])
    # a variant fitted in only some folds (self-training follows each fold's choice) has no full set of rows
    fitted_in = Counter(
        k for c in choices for k in (["model_self_training", "model_supervised_only"] if c.self_training else [])
    )
    partial = {k for k, n in fitted_in.items() if n < len(choices)}
    preds = {k: (proba_parts[k], list(pred_parts[k])) for k in proba_parts if k not in partial}
    models, final_choice = fit_models(cfg, train, feature_cols, params, prep.unlabelled)
    return list(y), preds, models, [*choices, final_choice], overlap


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


def run(cfg: Config, config_path: str | Path | None = None) -> TrainResult:
    t0 = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # every trial is in MLflow; not a log line each
    prep = prepare(cfg)
    feats = prep.features
    levels = cfg.scheme.codes
    train, test = prep.train, prep.test
    excluded = excluded_columns(cfg, list(feats.columns))  # a wrong name stops here, before tuning
    feature_cols = [c for c in feats.columns if c != ID_COLUMN and c not in excluded]
    X_train, y_train = train[feature_cols], train["tier"].tolist()
    eval_rows = test if test is not None else train
    groups = train[ID_COLUMN].to_numpy() if train["snapshot"].nunique() > 1 else None
    seg_cols = segment_columns(feats, [*cfg.segments.exclude_columns, *sorted(excluded)])

    client = tracking.setup(cfg)
    orphans.fail_orphans(client, cfg.mlflow.experiment)  # runs a killed train left RUNNING
    with mlflow.start_run(run_name=f"train-{cfg.name}", tags=orphans.process_tags()) as active:
        run_id = active.info.run_id
        mlflow.set_tags(
            {
                "leadtier.stage": "train",
                "leadtier.config": cfg.name,
                "leadtier.scheme": cfg.labels.scheme,
                "leadtier.evaluation": cfg.train.evaluation,
            }
        )
        mlflow.log_params(
            {
                "as_of": cfg.data.as_of.isoformat(),
                "seed": cfg.seed,
                "scheme": cfg.labels.scheme,
                "label_source": cfg.labels.source,
                "evaluation": cfg.train.evaluation,
                "n_features": len(feature_cols),
                "n_customers": len(feats),
                "n_train": len(train),
                "n_eval": len(eval_rows),
                "primary_metric": cfg.train.primary_metric,
                **{
                    f"tuning.{k}": v
                    for k, v in _flat("", cfg.train.tuning.model_dump(exclude={"search_space"})).items()
                },
            }
        )
        mlflow.log_dict(yaml.safe_load(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)), "config.yaml")
        mlflow.log_dict({"protocol": prep.protocol, "tables": prep.stats}, "inputs/table_stats.json")
        mlflow.log_dict({"problems": prep.problems}, "inputs/validation.json")
        counts = {
            "train": {t: int(n) for t, n in train["tier"].value_counts().reindex(levels, fill_value=0).items()},
            "eval": {t: int(n) for t, n in eval_rows["tier"].value_counts().reindex(levels, fill_value=0).items()},
        }
        mlflow.log_dict(counts, "inputs/label_counts.json")

        # ---------------------------------------------------------- tuning (nested run per trial)
        base = fixed_params(cfg)

        def run_study(X, y, grp, prefix: str):
            def log_trial(study, trial) -> None:
                with mlflow.start_run(run_name=f"{prefix}trial-{trial.number:03d}", nested=True):
                    mlflow.log_params(trial.params)
                    mlflow.set_tags({"state": trial.state.name, "leadtier.study": prefix.rstrip("-") or "final"})
                    if trial.value is not None:
                        mlflow.log_metric(f"cv_{cfg.train.primary_metric}", trial.value)

            return tune_with(cfg, X, y, callbacks=[log_trial], groups=grp)

        # the registered model's hyper-parameters: tuned on every training row
        study = run_study(X_train, y_train, groups, "")
        best_params = dict(study.best_params)
        mlflow.log_params({f"best.{k}": v for k, v in best_params.items()})
        mlflow.log_metric(f"cv_best_{cfg.train.primary_metric}", study.best_value)
        trials = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration"))
        mlflow.log_table(
            trials.astype({c: str for c in trials.columns if trials[c].dtype == object}), "tuning/trials.json"
        )

        # ---------------------------------------------------------- final model + baselines, same rows
        outer: list[dict] = []

        def tune_fold(i: int, X, y) -> dict:  # k-fold evaluation: a study per outer fold (nested CV)
            fold_study = run_study(X, y, None, f"fold{i + 1}-")
            outer.append({"fold": i + 1, "cv_best": fold_study.best_value, **fold_study.best_params})
            return {**base, **fold_study.best_params}

        y_eval, preds, models, choices, overlap = _evaluate(
            cfg, prep, feature_cols, {**base, **best_params}, tune_fold if test is None else None
        )
        if outer:
            mlflow.log_table(pd.DataFrame(outer), "tuning/outer_folds.json")
        chosen = choices[-1]  # the registered model's; the others were made inside outer folds
        prep.protocol |= {
            "rows": {"train": len(train), "evaluation": len(eval_rows), "overlap": overlap},
            "model": chosen.name,
            "model_choice": chosen.reasons,
        }
        for reason in chosen.reasons:
            log.info("tier model: %s", reason)
        mlflow.set_tag("leadtier.model_kind", chosen.name)
        mlflow.log_metrics({"eval_train_overlap": overlap, "eval_rows": len(eval_rows), "train_rows": len(train)})
        if "entities" in prep.protocol:  # labels on each entity's own clock
            mlflow.log_metrics({f"entities_{k}": prep.protocol["entities"][k] for k in ENTITY_COUNTS})
        mlflow.log_dict(
            {"registered": vars(chosen), "per_evaluation_fit": [vars(c) for c in choices[:-1]]}, "model/choice.json"
        )
        metrics: dict[str, dict[str, float]] = {}
        for key, (proba, pred) in preds.items():
            metrics[key] = tier_metrics(y_eval, proba, levels, y_pred=pred)
            metrics[key]["mean_proba_gap"] = mean_probability_gap(y_eval, proba, levels)
            metrics[key]["adjacent_miss_share"] = adjacent_miss_share(y_eval, pred, levels)
        if chosen.self_training:  # decided inside the training rows (keep_self_training); both logged
            mlflow.set_tag("leadtier.semi_supervised", chosen.self_training)
        clf = models["model"]
        mlflow.log_figure(_plot_reliability(y_eval, preds["model"][0], levels), "plots/reliability_model.png")
        for key, (_, pred) in preds.items():
            mlflow.log_metrics({(f"test_{k}" if key == "model" else f"{key}_{k}"): v for k, v in metrics[key].items()})
            cm = confusion(y_eval, pred, levels)
            mlflow.log_figure(_plot_confusion(cm, f"{key}: confusion on evaluation rows"), f"plots/confusion_{key}.png")
            mlflow.log_text(cm.to_csv(), f"eval/confusion_{key}.csv")
        compared = list(dict.fromkeys([cfg.train.primary_metric, *VERDICT]))
        baselines = [b for b in metrics if not b.startswith("model")]
        if all(c.name == "logreg" for c in (choices[:-1] or choices)):  # the model is that baseline itself
            baselines.remove("logreg")
        beats = {b: compare(metrics["model"], metrics[b], compared) for b in baselines}
        gains = {}
        if cfg.train.bootstrap_resamples:
            gains = paired_bootstrap(
                y_eval,
                {k: preds[k] for k in ["model", *baselines]},
                "model",
                levels,
                compared,
                n_resamples=cfg.train.bootstrap_resamples,
                seed=cfg.seed,
            )
        mlflow.log_dict(
            {
                "protocol": prep.protocol,
                "metrics": metrics,
                "model_beats": beats,
                "model_gain_95ci": gains,
                "bootstrap_resamples": cfg.train.bootstrap_resamples,
            },
            "eval/summary.json",
        )

        imp = clf.feature_importances_
        mlflow.log_text(imp.to_csv(header=True), "model/feature_importance.csv")
        mlflow.log_figure(_plot_importance(imp), "plots/feature_importance.png")

        # ---------------------------------------------------------- segments
        seg = Segmenter(
            columns=seg_cols,
            k=cfg.segments.k,
            k_range=tuple(cfg.segments.k_range),
            minibatch_above=cfg.segments.minibatch_above,
            silhouette_sample=cfg.segments.silhouette_sample,
            random_state=cfg.seed,
        ).fit(feats, previous=tracking.champion_segmenter(client, cfg))
        mlflow.log_metric("segments_k", seg.n_clusters_)
        # how much of the predefined tiers do the exploratory segments explain?
        seg_eval = seg.predict(eval_rows)
        ami = float(adjusted_mutual_info_score(eval_rows["tier"], seg_eval))
        mlflow.log_metric("segments_tier_ami", ami)
        crosstab = pd.crosstab(
            pd.Series(seg_eval, name="segment_id").map(lambda i: seg.name(i)), eval_rows["tier"].to_numpy()
        ).reindex(columns=levels, fill_value=0)
        mlflow.log_text(crosstab.to_csv(), "segments/tier_by_segment.csv")
        mlflow.log_text(pd.DataFrame(seg.k_scores_).to_csv(index=False), "segments/k_scores.csv")
        mlflow.log_figure(_plot_k(seg.k_scores_), "plots/segments_k_selection.png")
        profile = seg.profile_.copy()
        profile.insert(0, "name_en", [seg.name(i, "en") for i in profile.index])
        profile.insert(1, "name_zh", [seg.name(i, "zh") for i in profile.index])
        mlflow.log_text(profile.to_csv(), "segments/profile.csv")

        # ---------------------------------------------------------- log, register, gate
        scorer = TierScorer(
            scheme=cfg.scheme,
            classifier=clf,
            segmenter=seg,
            feature_columns=feature_cols,
            metadata={
                "config": cfg.name,
                "scheme_name": cfg.labels.scheme,
                "as_of": cfg.data.as_of.isoformat(),
                "protocol": prep.protocol,
                "run_id": run_id,
                "test_metrics": metrics,
                "test_gains_95ci": gains,
                "segments_tier_ami": ami,
                "seed": cfg.seed,
            },
        )
        scorer.drift_reference = reference_profile(feats, feature_cols, clf.categories_)
        scorer.grade_bands = dict(cfg.train.grade_bands)
        X_eval = eval_rows[feature_cols]
        tracking.log_train_keys(train)  # what a later gate must not re-score this model on
        tracking.log_eval_predictions(eval_rows, *preds["model"], levels)  # what a later k-fold gate pairs with
        info = tracking.log_scorer(scorer, X_eval)
        version = tracking.register(info.model_uri, cfg.mlflow.model_name)  # last: a killed run registers nothing
        decision = tracking.champion_gate(
            client,
            cfg,
            version,
            metrics["model"],
            X_eval,
            y_eval,
            refit_on_eval=test is None,
            eval_keys=eval_rows[[ID_COLUMN, "snapshot"]],
            new_scores=preds["model"],
            new_train_keys=train[[ID_COLUMN, "snapshot"]],
        )
        mlflow.set_tags({"leadtier.model_version": version, "leadtier.alias": decision.alias})
        mlflow.log_text("\n".join(decision.reasons), "registry/gate.txt")
        seconds = time.perf_counter() - t0
        mlflow.log_metric("train_seconds", seconds)

    return TrainResult(
        run_id=run_id,
        model_version=version,
        alias=decision.alias,
        reasons=decision.reasons,
        metrics=metrics,
        beats=beats,
        gains=gains,
        best_params=best_params,
        n_train=len(train),
        n_test=len(eval_rows),
        seconds=seconds,
        extra={
            "n_trials": len(study.trials),
            "segments_k": seg.n_clusters_,
            "protocol": prep.protocol,
            "bootstrap_resamples": cfg.train.bootstrap_resamples,
        },
    )


def summary_text(cfg: Config, res: TrainResult) -> str:
    """What ``leadtier train`` prints: the run in a few lines, a table of the evaluation metrics with the
    model's verdict against each baseline, a table of the gains with their 95 % intervals, and the
    champion gate's reasons; everything fits ``console.WIDTH`` (100) columns."""
    protocol = res.extra["protocol"]
    lines = wrap(
        f"trained {cfg.mlflow.model_name} v{res.model_version} -> alias '{res.alias}' "
        f"({protocol['evaluation']}, {res.extra['n_trials']} tuning trials, {res.seconds:.0f} s)"
    )
    if "rows" in protocol:
        rows = protocol["rows"]
        lines.append(f"rows: {rows['train']} train, {rows['evaluation']} evaluation, {rows['overlap']} in both")
        lines += wrap(f"evaluation: {protocol_words(protocol)}")
        if "entities" in protocol:
            lines += wrap(entity_words(protocol["entities"]))
        if protocol.get("empty_tiers"):
            lines += wrap(f"tiers no labelled row reaches: {', '.join(protocol['empty_tiers'])} (left out)")
        for reason in protocol.get("model_choice", []):  # "<choice> (<rule>): <scores>" -> two lines
            head, _, scores = reason.partition("): ")
            lines += wrap(f"tier model: {head})" + (":" if scores else "")) + (wrap(f"  {scores}") if scores else [])
    lines += ["", *_metrics_table(cfg, res)]
    if res.gains:
        lines += ["", *_gains_table(res)]
    lines += ["", *(line for r in res.reasons for line in wrap(r)), f"MLflow run {res.run_id}"]
    return "\n".join(lines)


def _metrics_table(cfg: Config, res: TrainResult) -> list[str]:
    """Rows: the model, its self-training variants, the baselines, then 'model beats <baseline>' yes/NO;
    columns: every metric the verdicts compare (the AUC-type ones only for two tiers)."""
    shown = [m for m in dict.fromkeys([*headline(cfg), *VERDICT]) if m in res.metrics["model"]]
    order = sorted(res.metrics, key=lambda k: (k != "model", not k.startswith("model")))
    rows = [[key, *(f"{res.metrics[key].get(m, float('nan')):.4f}" for m in shown)] for key in order]
    rows += [[f"model beats {b}", *("yes" if v.get(m) else "NO" for m in shown)] for b, v in res.beats.items()]
    return table(["evaluation metrics", *shown], rows)


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
                "" if g is None else f"{g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]{' ~' if noise else '  '}"
            )
        rows.append([m, *cells])
    intro = wrap(
        f"the model's gain over each baseline (positive = better), with a 95 % interval from "
        f"{res.extra['bootstrap_resamples']} paired bootstrap resamples of the evaluation rows; "
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

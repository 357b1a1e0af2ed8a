"""Stage helper: the survival tier model's rows, its fit and its censoring-aware figures.

``leadtier train`` with ``train.model: survival`` or ``best`` trains :class:`DiscreteHazardTiers` on the
training window's entities, censored ones included (``features/sql/survival_*.sql``): labelled and
censored entities of the training snapshots, plus ``snapshots.survival_as_of`` (snapshots whose horizon
is not observed by the evaluation date, unusable by the classifier). No evaluation entity (same id and
snapshot) is ever a survival training row. :func:`compare` runs the same comparison outside MLflow
for the benchmarks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
from leadtier.features.queries import survival_query
from leadtier.models.frame import ID_COLUMN
from leadtier.models.metrics import paired_bootstrap, tier_metrics
from leadtier.models.survival import DiscreteHazardTiers, known_tiers, survival_metrics
from leadtier.pipelines import features as feature_stage
from leadtier.pipelines.config import Config
from leadtier.pipelines.errors import UserError
from leadtier.pipelines.sources import register_all

KEYS = ("macro_f1", "qwk", "log_loss")
SURVIVAL_PROTOCOLS = ("backtest", "ordered_holdout", "holdout")


class SurvivalDataError(UserError, ValueError):
    """The data cannot train the survival tier model."""


def survival_rows(cfg: Config, snapshots: Sequence[dt.date], observed_until: dt.date) -> pd.DataFrame:
    """Features and survival labels (``event``, ``duration``, ``followup``) of every entity of each
    snapshot, censored ones included; outcomes seen before ``observed_until`` (``days_to_win``: before
    the snapshot date itself, each entity on its own clock)."""
    oc = cfg.labels.outcome
    con = feature_stage.connect(cfg)
    try:
        register_all(con, cfg, with_labels=False)
        parts = []
        for as_of in snapshots:
            feats = feature_stage.build_in(con, cfg, as_of)
            sql = survival_query(
                oc.kind, as_of, observed_until, oc.horizon_days, oc.observed_from, feature_stage.entity_days(cfg)
            )
            lab = feature_stage.fetch_frame(con, sql)
            data = feats.merge(lab.drop(columns=["started_on"], errors="ignore"), on=ID_COLUMN, how="inner")
            if "started_on" in lab.columns:
                data = data.merge(lab[[ID_COLUMN, "started_on"]], on=ID_COLUMN, how="left")
            data.insert(1, "snapshot", as_of)
            parts.append(data)
    finally:
        con.close()
    return pd.concat(parts, ignore_index=True)


def data_end(cfg: Config) -> dt.date:
    """The day outcomes of a one-snapshot run are observed until (:func:`features.observed_until`)."""
    con = feature_stage.connect(cfg)
    try:
        register_all(con, cfg, with_labels=False)
        return feature_stage.observed_until(con, cfg)
    finally:
        con.close()


def training_survival(cfg: Config, train: pd.DataFrame, test: pd.DataFrame | None) -> pd.DataFrame:
    """The survival model's training entities: the classifier's training window with its censored
    entities, plus ``snapshots.survival_as_of``; never an evaluation entity (same id and snapshot).

    backtest: the training snapshots and the extra ones, outcomes observed until the evaluation date;
    ordered_holdout: the entities of ``data.as_of`` started no later than the newest training row (a
    censored entity of the evaluation period would tell the model about that period); holdout: every
    entity of ``data.as_of`` but the evaluation ones."""
    kind, extra = cfg.train.evaluation, list(cfg.snapshots.survival_as_of)
    if test is None or kind not in SURVIVAL_PROTOCOLS:
        raise SurvivalDataError(
            f"train.model {cfg.train.model!r} needs evaluation rows apart from training rows: train.evaluation "
            f"one of {list(SURVIVAL_PROTOCOLS)}. Got {kind!r} instead"
        )
    if kind == "backtest":
        rows = survival_rows(cfg, [*cfg.snapshots.train_as_of, *extra], min(cfg.snapshots.eval_as_of))
    else:
        days_to_win = cfg.labels.outcome.kind == "days_to_win"
        rows = survival_rows(cfg, [cfg.data.as_of], cfg.data.as_of if days_to_win else data_end(cfg))
        if kind == "ordered_holdout":
            order = "started_on" if "started_on" in rows.columns and "started_on" in train.columns else "snapshot"
            rows = rows[pd.to_datetime(rows[order]) <= pd.to_datetime(train[order]).max()]
    keys = test[[ID_COLUMN, "snapshot"]].assign(_eval=True)
    rows = rows.merge(keys, on=[ID_COLUMN, "snapshot"], how="left")
    rows = rows[rows["_eval"].isna()].drop(columns="_eval").reset_index(drop=True)
    if not rows["event"].any():
        raise SurvivalDataError("no training entity had its event (a purchase or a win): no hazard to learn")
    return rows


FIXED = ("class_weight", "n_jobs", "decision", "cost_matrix", "decision_balance")  # taken from the run


def make_hazard(cfg: Config, params: dict) -> DiscreteHazardTiers:
    """The survival tier model with the run's class weights, threads, decision rule and balance, and
    calibration. Its trees keep their own shallow defaults: the run's tree settings are tuned for the
    classifier on one row per entity, not for the hazard model's rows per entity and interval."""
    oc = cfg.labels.outcome
    return DiscreteHazardTiers(
        levels=cfg.scheme.codes,
        thresholds_days=oc.thresholds_days,
        horizon_days=oc.horizon_days,
        calibration=cfg.train.calibration,
        calibration_size=cfg.train.calibration_size,
        random_state=cfg.seed,
        **{k: v for k, v in params.items() if k in FIXED},
    )


def fit_hazard(cfg: Config, rows: pd.DataFrame, cols: list[str], params: dict) -> DiscreteHazardTiers:
    return make_hazard(cfg, params).fit(
        rows[cols], rows["duration"].to_numpy(), rows["event"].to_numpy(bool), rows["followup"].to_numpy()
    )


def rows_recovered(cfg: Config, rows: pd.DataFrame) -> int:
    """Survival training entities whose tier is not known (censored): the classifier drops them."""
    oc = cfg.labels.outcome
    known = known_tiers(rows["duration"], rows["event"], rows["followup"], oc.thresholds_days, oc.horizon_days)
    return int((known == -1).sum())


def eval_durations(cfg: Config, tiers: Sequence[str]) -> pd.DataFrame:
    """Evaluation entities as (duration, event) at the scheme's bounds: a tier-j entity had its event by
    bound j (its duration is that bound, exact up to the tier's width, the same for every model); the
    last level is censored at the horizon."""
    oc = cfg.labels.outcome
    bounds = [*oc.thresholds_days, oc.horizon_days]
    idx = pd.Series(list(tiers)).map({c: i for i, c in enumerate(cfg.scheme.codes)}).to_numpy(int)
    last = len(bounds)
    duration = np.where(idx < last, np.asarray([*bounds, oc.horizon_days])[idx], oc.horizon_days)
    return pd.DataFrame({"duration": duration.astype(float), "event": idx < last})


def censoring_aware(cfg: Config, tiers: Sequence[str], proba: np.ndarray) -> dict:
    """Harrell's and Uno's C and the integrated Brier score of tier probabilities ``proba`` on evaluation
    entities of known ``tiers`` (scikit-survival). The inverse-probability-of-censoring weights come from
    these entities' own censoring: each is followed to its event or to the horizon, never censored
    before it, so the weights stay 1 where the score is integrated. (The training entities' censoring,
    many of them cut short, is another mechanism: its weights would inflate the score.)"""
    oc = cfg.labels.outcome
    bounds = np.asarray([*oc.thresholds_days, oc.horizon_days])
    ev = eval_durations(cfg, tiers)
    curve = 1.0 - np.cumsum(proba, axis=1)[:, : len(bounds)]
    d, e = ev["duration"].to_numpy(float), ev["event"].to_numpy(bool)
    return survival_metrics(d, e, cfg.scheme.score(proba), curve, bounds, d, e)


def compare(cfg: Config, resamples: int = 1000, params: dict | None = None) -> dict:
    """Classifier (with ``params``) and survival model (its own trees, see :func:`make_hazard`) on the
    classifier's evaluation rows, outside MLflow: tier metrics, Harrell's / Uno's C and integrated Brier,
    the survival model's gains with 95 % paired-bootstrap intervals, and the rows it used that the
    classifier dropped."""
    from leadtier.models.classifier import TierClassifier
    from leadtier.pipelines.train import model_columns, prepare  # train imports this module

    prep = prepare(cfg)
    levels = cfg.scheme.codes
    cols = model_columns(cfg, prep)
    surv = training_survival(cfg, prep.train, prep.test)
    fixed = {"n_jobs": cfg.train.n_jobs, **(params or {})}
    clf = TierClassifier(levels=levels, calibration=cfg.train.calibration, random_state=cfg.seed, **fixed)
    clf.fit(prep.train[cols], prep.train["tier"].tolist())
    haz = fit_hazard(cfg, surv, cols, fixed)
    test = prep.test
    y = test["tier"].tolist()
    preds = {
        name: (m.predict_proba(test[cols]), list(m.predict(test[cols])))
        for name, m in {"survival": haz, "classifier": clf}.items()
    }
    metrics = {
        name: tier_metrics(y, proba, levels, y_pred=pred) | censoring_aware(cfg, y, proba)
        for name, (proba, pred) in preds.items()
    }
    gains = paired_bootstrap(y, preds, "survival", levels, list(KEYS), n_resamples=resamples, seed=cfg.seed)
    return {
        "metrics": metrics,
        "gains": gains.get("classifier", {}),
        "rows_recovered": rows_recovered(cfg, surv),
        "extra_snapshot_rows": int(surv["snapshot"].isin(list(cfg.snapshots.survival_as_of)).sum()),
        "train_rows": {"classifier": len(prep.train), "survival": len(surv)},
        "person_periods": int(haz.n_person_periods_),
        "eval_rows": len(test),
        "calibration": {"classifier": clf.calibration_, "survival": haz.calibration_},
        "proba": preds["survival"][0],
    }


def before_validation(cfg: Config, rows: pd.DataFrame, fit: pd.DataFrame, val: pd.DataFrame) -> pd.DataFrame:
    """Survival training ``rows`` a model validated on ``val`` (training rows held out to choose the
    model) may learn from, as :func:`training_survival` does for the evaluation rows: never a
    validation entity; backtest: only snapshots before the validation snapshot; ordered_holdout: only
    entities started no later than the newest of ``fit``."""
    keys = val[[ID_COLUMN, "snapshot"]].assign(_val=True)
    out = rows.merge(keys, on=[ID_COLUMN, "snapshot"], how="left")
    out = out[out["_val"].isna()].drop(columns="_val")
    if cfg.train.evaluation == "backtest":
        out = out[out["snapshot"] < val["snapshot"].min()]
    elif cfg.train.evaluation == "ordered_holdout":
        order = "started_on" if "started_on" in out.columns and "started_on" in fit.columns else "snapshot"
        out = out[pd.to_datetime(out[order]) <= pd.to_datetime(fit[order]).max()]
    return out.reset_index(drop=True)

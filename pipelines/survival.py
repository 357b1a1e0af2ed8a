"""Stage helper: the survival tier model next to the classifier on the same evaluation rows.

:func:`compare` builds the classifier's rows with :func:`leadtier.pipelines.train.prepare` (labelled
entities only, the censoring rule), then the survival rows of the same training window with censored
entities kept (``features/sql/survival_*.sql``), and optional extra training snapshots whose horizon is
not observed by the evaluation date (unusable by the classifier). Both models use the same
hyper-parameters and are scored on the classifier's evaluation rows (outcome known).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
from leadtier.features.queries import survival_query
from leadtier.models.classifier import TierClassifier
from leadtier.models.frame import ID_COLUMN
from leadtier.models.metrics import paired_bootstrap, tier_metrics
from leadtier.models.survival import DiscreteHazardTiers, known_tiers, survival_metrics
from leadtier.pipelines import features as feature_stage
from leadtier.pipelines.config import Config
from leadtier.pipelines.sources import register_all
from leadtier.pipelines.train import excluded_columns, prepare

KEYS = ("macro_f1", "qwk", "log_loss")


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
            sql = survival_query(oc.kind, as_of, observed_until, oc.horizon_days, oc.observed_from)
            lab = feature_stage.fetch_frame(con, sql)
            data = feats.merge(lab.drop(columns=["started_on"], errors="ignore"), on=ID_COLUMN, how="inner")
            if "started_on" in lab.columns:
                data = data.merge(lab[[ID_COLUMN, "started_on"]], on=ID_COLUMN, how="left")
            data.insert(1, "snapshot", as_of)
            parts.append(data)
    finally:
        con.close()
    return pd.concat(parts, ignore_index=True)


def _training_survival(cfg: Config, prep, extra: Sequence[dt.date]) -> pd.DataFrame:
    """The survival model's training entities: the classifier's training window with its censored
    entities, plus the ``extra`` snapshots; never an evaluation entity (same id and snapshot)."""
    if cfg.train.evaluation == "backtest":
        eval_date = min(cfg.snapshots.eval_as_of)
        if any(d >= eval_date for d in extra):
            raise ValueError(f"extra training snapshots must precede the evaluation date {eval_date}. Got {extra}")
        rows = survival_rows(cfg, [*cfg.snapshots.train_as_of, *extra], eval_date)
    elif cfg.train.evaluation == "ordered_holdout" and cfg.labels.outcome.kind == "days_to_win":
        rows = survival_rows(cfg, [cfg.data.as_of], cfg.data.as_of)
        newest = pd.to_datetime(prep.train["started_on"]).max()  # the classifier's training window
        rows = rows[pd.to_datetime(rows["started_on"]) <= newest]
    else:
        raise ValueError(
            "the survival comparison runs on a backtest or an ordered holdout of days_to_win. "
            f"Got {cfg.train.evaluation} with {cfg.labels.outcome.kind} instead"
        )
    keys = prep.test[[ID_COLUMN, "snapshot"]].assign(_eval=True)
    rows = rows.merge(keys, on=[ID_COLUMN, "snapshot"], how="left")
    return rows[rows["_eval"].isna()].drop(columns="_eval").reset_index(drop=True)


def compare(cfg: Config, extra: Sequence[dt.date] = (), resamples: int = 1000, params: dict | None = None) -> dict:
    """Classifier and survival model, same hyper-parameters ``params``, on the classifier's evaluation
    rows: tier metrics, Harrell's / Uno's C and integrated Brier (at the scheme's bounds, from the tier
    probabilities), the survival model's gains with 95 % paired-bootstrap intervals, and the rows it
    used that the classifier dropped."""
    prep = prepare(cfg)
    oc, levels = cfg.labels.outcome, cfg.scheme.codes
    excluded = excluded_columns(cfg, list(prep.features.columns))
    cols = [c for c in prep.features.columns if c != ID_COLUMN and c not in excluded]
    surv = _training_survival(cfg, prep, extra)
    fixed = {"random_state": cfg.seed, "n_jobs": cfg.train.n_jobs, **(params or {})}
    clf = TierClassifier(levels=levels, calibration=cfg.train.calibration, **fixed)
    clf.fit(prep.train[cols], prep.train["tier"].tolist())
    haz = DiscreteHazardTiers(
        levels=levels,
        thresholds_days=oc.thresholds_days,
        horizon_days=oc.horizon_days,
        calibration=cfg.train.calibration,
        **fixed,
    ).fit(surv[cols], surv["duration"].to_numpy(), surv["event"].to_numpy(bool), surv["followup"].to_numpy())
    test = prep.test
    y = test["tier"].tolist()
    preds = {
        name: (m.predict_proba(test[cols]), list(m.predict(test[cols])))
        for name, m in {"survival": haz, "classifier": clf}.items()
    }
    # the evaluation entities' durations, from the tier (the tier bounds are the only days both know)
    ev = _eval_durations(cfg, test)
    tr = surv[["duration", "event"]].to_numpy()
    bounds = np.asarray([*oc.thresholds_days, oc.horizon_days])
    metrics = {}
    for name, (proba, pred) in preds.items():
        curve = 1.0 - np.cumsum(proba, axis=1)[:, : len(bounds)]
        metrics[name] = tier_metrics(y, proba, levels, y_pred=pred) | survival_metrics(
            ev["duration"], ev["event"], cfg.scheme.score(proba), curve, bounds, tr[:, 0], tr[:, 1].astype(bool)
        )
    gains = paired_bootstrap(y, preds, "survival", levels, list(KEYS), n_resamples=resamples, seed=cfg.seed)
    censored = known_tiers(surv["duration"], surv["event"], surv["followup"], oc.thresholds_days, oc.horizon_days)
    return {
        "metrics": metrics,
        "gains": gains.get("classifier", {}),
        "rows_recovered": int((censored == -1).sum()),
        "extra_snapshot_rows": int(surv["snapshot"].isin(list(extra)).sum()),
        "train_rows": {"classifier": len(prep.train), "survival": len(surv)},
        "person_periods": int(haz.n_person_periods_),
        "eval_rows": len(test),
        "calibration": {"classifier": clf.calibration_, "survival": haz.calibration_},
        "proba": preds["survival"][0],
    }


def _eval_durations(cfg: Config, test: pd.DataFrame) -> pd.DataFrame:
    """Evaluation entities as (duration, event) at the scheme's bounds: a tier-j entity had its event by
    bound j (its duration is that bound, exact up to the tier's width, the same for both models); the
    last level is censored at the horizon."""
    oc = cfg.labels.outcome
    bounds = [*oc.thresholds_days, oc.horizon_days]
    idx = test["tier"].map({c: i for i, c in enumerate(cfg.scheme.codes)}).to_numpy(int)
    last = len(bounds)
    duration = np.where(idx < last, np.asarray([*bounds, oc.horizon_days])[idx], oc.horizon_days)
    return pd.DataFrame({"duration": duration.astype(float), "event": idx < last})

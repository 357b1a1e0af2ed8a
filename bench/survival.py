"""The survival tier model (``leadtier.models.survival``) next to the classifier on the same evaluation
rows, same hyper-parameters (untuned defaults for both): Online Retail's backtest, with eight monthly
snapshots between the last training snapshot and the evaluation date that only the survival model can
use (their 270-day horizon is not observed), and the Olist funnel's ordered holdout."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from bench.harness import CONFIGS, Ctx, Stopwatch, benchmark, child_task, metric, skipped
from bench.real_data import missing_inputs, real_config

FIGURES = ("macro_f1", "qwk", "log_loss", "c_index", "integrated_brier")
# training snapshots after 2010-06-01 whose horizon ends after the evaluation date 2011-03-01
ONLINE_RETAIL_EXTRA = [dt.date(2010, m, 1) for m in range(7, 13)] + [dt.date(2011, 1, 1), dt.date(2011, 2, 1)]


@child_task("survival_compare")
def _task_survival_compare(p: dict) -> dict:
    import numpy as np
    from leadtier.pipelines.survival import compare

    cfg = real_config(p)
    with Stopwatch() as sw:
        cfg.snapshots.survival_as_of = [dt.date.fromisoformat(d) for d in p["extra"]]
        res = compare(cfg, resamples=1000)
    proba = res.pop("proba")
    res["monotone_rows"] = int((np.diff(np.cumsum(proba, axis=1), axis=1) >= -1e-12).all(axis=1).sum())
    res["scored_rows"] = len(proba)
    return {**sw.figures(), **res}


def _lines(ctx: Ctx, prefix: str, res: dict) -> Iterator[dict]:
    common = {
        "rows": res["eval_rows"],
        "train_rows": res["train_rows"],
        "rows_recovered": res["rows_recovered"],
        "monotone_rows": res["monotone_rows"],
        "calibration": res["calibration"],
    }
    for m in FIGURES:
        gain = res["gains"].get(m)
        extra = {"gain_over_classifier_95ci": [round(gain[k], 4) for k in ("gain", "low", "high")]} if gain else {}
        value = res["metrics"]["survival"].get(m, float("nan"))
        yield metric(
            f"{prefix}_survival_{m}",
            value,
            "",
            ctx,
            classifier_value=round(res["metrics"]["classifier"].get(m, float("nan")), 4),
            **extra,
            **common,
        )


NAMES_OR = (*(f"online_retail_survival_{m}" for m in FIGURES), "online_retail_survival_rows_recovered")


@benchmark(*NAMES_OR)
def bench_online_retail_survival(ctx: Ctx) -> Iterator[dict]:
    config = CONFIGS / "online_retail.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(NAMES_OR, f"input files absent: {missing}")
        return
    extra = [d.isoformat() for d in ONLINE_RETAIL_EXTRA]
    res = ctx.child("survival_compare", config=str(config), shared=str(ctx.shared), extra=extra)
    yield from _lines(ctx, "online_retail", res)
    yield metric(
        "online_retail_survival_rows_recovered",
        res["rows_recovered"],
        "rows",
        ctx,
        rows=res["eval_rows"],
        extra_snapshot_rows=res["extra_snapshot_rows"],
        train_rows=res["train_rows"],
    )


NAMES_OLIST = tuple(f"olist_funnel_survival_{m}" for m in FIGURES)


@benchmark(*NAMES_OLIST)
def bench_olist_survival(ctx: Ctx) -> Iterator[dict]:
    config = CONFIGS / "olist_funnel.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(NAMES_OLIST, f"input files absent: {missing}")
        return
    res = ctx.child("survival_compare", config=str(config), shared=str(ctx.shared), extra=[])
    yield from _lines(ctx, "olist_funnel", res)


def _encoded(train, test):
    """One-hot categories (levels of the training rows) and median-filled numbers, for scikit-survival."""
    import pandas as pd

    both = pd.get_dummies(pd.concat([train, test], keys=["train", "test"]), dummy_na=True, dtype=float)
    both = both.apply(pd.to_numeric, errors="coerce")
    both = both.fillna(both.loc["train"].median()).fillna(0.0)
    return both.loc["train"].to_numpy(), both.loc["test"].to_numpy()


@child_task("survival_library")
def _task_survival_library(p: dict) -> dict:
    """The LightGBM discrete-time hazard model next to scikit-survival's gradient-boosted Cox model on the
    same training entities (censored ones included) and the same evaluation rows: C-index, IPCW
    integrated Brier, tier log-loss and macro-F1 (tier probabilities from each survival curve), seconds."""
    import numpy as np
    from leadtier.models.metrics import tier_metrics
    from leadtier.pipelines.survival import censoring_aware, fit_hazard, training_survival
    from leadtier.pipelines.train import model_columns, prepare
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis
    from sksurv.util import Surv

    cfg = real_config(p)
    cfg.snapshots.survival_as_of = [dt.date.fromisoformat(d) for d in p["extra"]]
    prep = prepare(cfg)
    cols = model_columns(cfg, prep)
    surv, test = training_survival(cfg, prep.train, prep.test), prep.test
    oc, codes, y = cfg.labels.outcome, cfg.scheme.codes, test["tier"].tolist()
    bounds = np.asarray([*oc.thresholds_days, oc.horizon_days])
    out = {}
    with Stopwatch() as sw:
        haz = fit_hazard(cfg, surv, cols, {"n_jobs": 1})
    out["lightgbm_hazard"] = (haz.predict_proba(test[cols]), sw.seconds)
    X, X_eval = _encoded(surv[cols], test[cols])
    target = Surv.from_arrays(surv["event"].to_numpy(bool), surv["duration"].to_numpy(float) + 1)
    with Stopwatch() as sw:
        gb = GradientBoostingSurvivalAnalysis(n_estimators=200, max_depth=3, subsample=0.8, random_state=cfg.seed)
        gb.fit(X, target)
    curves = np.vstack([[fn(min(b + 1, fn.x[-1])) for b in bounds] for fn in gb.predict_survival_function(X_eval)])
    cumulative = np.hstack([1.0 - curves, np.ones((len(curves), 1))])
    out["sksurv_gradient_boosted_cox"] = (np.diff(cumulative, axis=1, prepend=0.0).clip(0.0, 1.0), sw.seconds)
    figures = {}
    for name, (proba, seconds) in out.items():
        proba = proba / proba.sum(axis=1, keepdims=True)
        pred = [codes[i] for i in proba.argmax(axis=1)]
        figures[name] = {
            **censoring_aware(cfg, y, proba),
            **{k: v for k, v in tier_metrics(y, proba, codes, y_pred=pred).items() if k in ("log_loss", "macro_f1")},
            "fit_seconds": round(seconds, 1),
        }
    return {"figures": figures, "train_rows": len(surv), "eval_rows": len(test)}


LIBRARY = {"olist_funnel": ("olist_funnel.yaml", []), "online_retail": ("online_retail.yaml", ONLINE_RETAIL_EXTRA)}


def _library(prefix: str) -> None:
    file, extra = LIBRARY[prefix]
    name = f"{prefix}_survival_library_c_index"

    @benchmark(name)
    def bench_survival_library(ctx: Ctx) -> Iterator[dict]:
        """Why the hazard model is leadtier's own: scikit-survival's gradient-boosted Cox model on the same
        training entities and evaluation rows."""
        config = CONFIGS / file
        missing = missing_inputs(config, ctx.shared)
        if missing:
            yield from skipped([name], f"input files absent: {missing}")
            return
        days = [d.isoformat() for d in extra]
        res = ctx.child("survival_library", config=str(config), shared=str(ctx.shared), extra=days)
        figures = res["figures"]
        yield metric(
            name,
            figures["lightgbm_hazard"]["c_index"],
            "",
            ctx,
            rows=res["eval_rows"],
            train_rows=res["train_rows"],
            **{model: {k: round(v, 4) for k, v in f.items()} for model, f in figures.items()},
        )


for _prefix in LIBRARY:
    _library(_prefix)

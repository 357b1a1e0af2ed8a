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

"""Benchmarks on the UCI Online Retail II data (``configs/online_retail.yaml``): building its dataset,
and the tier model against the best baseline."""

from __future__ import annotations

from collections.abc import Iterator

from bench.harness import CONFIGS, Ctx, benchmark, machine, metric, skipped
from bench.real_data import gain_ci, missing_inputs, train_context, trained_real


@benchmark("online_retail_dataset_seconds")
def bench_online_retail_dataset(ctx: Ctx) -> Iterator[dict]:
    config = CONFIGS / "online_retail.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(["online_retail_dataset_seconds"], f"input files absent: {missing}")
        return
    res = ctx.child("prepare", config=str(config), shared=str(ctx.shared))
    yield metric(
        "online_retail_dataset_seconds",
        res["seconds"],
        "s",
        ctx,
        n_customers=res["customers"],
        rows=sum(res["input_rows"].values()),
        input_rows=res["input_rows"],
        train_rows=res["train_rows"],
        eval_rows=res["eval_rows"],
        columns=res["columns"],
        peak_rss_gb=round(res["peak_rss_gb"], 3),
        **machine(res),
    )


ONLINE_RETAIL_TIER = (
    "online_retail_tier_macro_f1",
    "online_retail_tier_qwk",
    "online_retail_tier_log_loss",
    "online_retail_best_baseline_macro_f1",
    "online_retail_best_baseline_qwk",
    "online_retail_best_baseline_log_loss",
)


@benchmark(*ONLINE_RETAIL_TIER)
def bench_online_retail_tier(ctx: Ctx) -> Iterator[dict]:
    from leadtier.models.metrics import HIGHER_IS_BETTER

    config = CONFIGS / "online_retail.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(ONLINE_RETAIL_TIER, f"input files absent: {missing}")
        return
    res = trained_real(ctx, config)
    common = train_context(res)
    metrics = res["metrics"]
    for m in ("macro_f1", "qwk", "log_loss"):
        pick = max if HIGHER_IS_BETTER[m] else min
        baselines = {k: v[m] for k, v in metrics.items() if k != "model"}
        best = pick(baselines, key=baselines.get)
        model_value = metrics["model"][m]
        beats = model_value > baselines[best] if HIGHER_IS_BETTER[m] else model_value < baselines[best]
        yield metric(
            f"online_retail_tier_{m}",
            model_value,
            "",
            ctx,
            best_baseline=best,
            best_baseline_value=round(baselines[best], 4),
            beats_best_baseline=beats,
            **gain_ci(res, best, m, "gain_over_best_baseline_95ci"),
            **common,
        )
        yield metric(
            f"online_retail_best_baseline_{m}",
            baselines[best],
            "",
            ctx,
            baseline=best,
            higher_is_better=HIGHER_IS_BETTER[m],
            **common,
        )


ONLINE_RETAIL_STAGE = (
    "online_retail_purchase_stage_macro_f1",
    "online_retail_purchase_stage_log_loss",
    "online_retail_purchase_stage_ece",
)
# the shipped config's data, snapshots and protocol, labelled by purchase stage 180 days after each snapshot
PURCHASE_STAGE = (
    ("train.model", "classifier"),  # stages are no time to an event: no survival model
    ("features.windows_days", [7, 30, 90, 180, 365]),  # a 180-day count: stage_now tells loyal customers apart
    (
        "labels",
        {
            "source": "outcome",
            "scheme": "purchase_stage",
            "outcome": {"kind": "purchase_stage", "horizon_days": 180, "loyal_purchases": 3},
        },
    ),
)


@benchmark(*ONLINE_RETAIL_STAGE)
def bench_online_retail_purchase_stage(ctx: Ctx) -> Iterator[dict]:
    """No bar: purchase stages (loyal, repeat, first-time, prospect) on the Online Retail backtest, the
    model's figures beside the majority baseline's, and the gains over the logistic regression and over each
    customer's stage at the snapshot."""
    config = CONFIGS / "online_retail.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(ONLINE_RETAIL_STAGE, f"input files absent: {missing}")
        return
    res = trained_real(ctx, config, PURCHASE_STAGE)
    common = train_context(res)
    metrics = res["metrics"]
    for name, m in zip(ONLINE_RETAIL_STAGE, ("macro_f1", "log_loss", "ece"), strict=True):
        yield metric(
            name,
            metrics["model"][m],
            "",
            ctx,
            majority=round(metrics["majority"][m], 4),
            logreg=round(metrics["logreg"][m], 4),
            stage_now=round(metrics["stage_now"][m], 4),  # where each customer stood at the snapshot
            mean_proba_gap=round(metrics["model"]["mean_proba_gap"], 4),
            **gain_ci(res, "logreg", m, "gain_over_logreg_95ci"),
            **gain_ci(res, "stage_now", m, "gain_over_stage_now_95ci"),
            **common,
            chosen_model=res.get("model"),
        )

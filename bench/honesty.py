"""Honest numbers on every shipped config: evaluation rows disjoint from training rows, probabilities
that follow the observed frequencies, and a registered model not worse than the same-run logistic
regression. One group of figures per config, from the same training the other benchmarks use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bench.harness import CONFIGS, Ctx, benchmark, metric, skipped
from bench.real_data import gain_ci, missing_inputs, train_context, trained_real

FIGURES = ("overlap", "log_loss", "brier", "ece", "mean_proba_gap", "gain_over_logreg_high")
REAL = {
    "online_retail": "online_retail.yaml",
    "x_education_leads": "x_education_leads.yaml",
    "x_education_converted": "x_education_converted.yaml",
    "olist_funnel": "olist_funnel.yaml",
}


def names(config: str) -> list[str]:
    return [f"{config}_{f}" for f in FIGURES]


def honest_figures(config: str, res: dict, ctx: Ctx, context: dict) -> Iterator[dict]:
    """The six figures of one training, each with the evaluation rows, the majority baseline's value
    and the gain over the logistic regression on the primary metric (its 95 % interval)."""
    model, majority = res["metrics"]["model"], res["metrics"]["majority"]
    primary = res["primary_metric"]
    versus = gain_ci(res, "logreg", primary, f"gain_over_logreg_{primary}_95ci")
    common = {**context, "chosen_model": res.get("model"), **versus}
    rows = res.get("rows") or {}
    yield metric(f"{config}_overlap", rows.get("overlap", float("nan")), "rows", ctx, **common)
    for f in ("log_loss", "brier"):
        yield metric(f"{config}_{f}", model[f], "", ctx, majority=round(majority[f], 4), **common)
    for f in ("ece", "mean_proba_gap"):
        yield metric(f"{config}_{f}", model[f], "", ctx, **common)
    interval = versus.get(f"gain_over_logreg_{primary}_95ci", [float("nan")] * 3)
    yield metric(f"{config}_gain_over_logreg_high", interval[2], primary, ctx, **common)


@benchmark(*names("demo"))
def bench_demo_honesty(ctx: Ctx) -> Iterator[dict]:
    res = ctx.trained_model(full_budget=True)
    context = {"rows": res["n_test"], "n_train": res["n_train"], "evaluation": res["evaluation"]}
    yield from honest_figures("demo", res, ctx, context)


def _real(config: str) -> None:
    path = CONFIGS / REAL[config]

    @benchmark(*names(config))
    def bench_real_honesty(ctx: Ctx, path: Path = path, config: str = config) -> Iterator[dict]:
        missing = missing_inputs(path, ctx.shared)
        if missing:
            yield from skipped(names(config), f"input files absent: {missing}")
            return
        res = trained_real(ctx, path)
        yield from honest_figures(config, res, ctx, train_context(res))


for _config in REAL:
    _real(_config)


@benchmark(*names("deal_heat"))
def bench_deal_heat_honesty(ctx: Ctx) -> Iterator[dict]:
    """The deal-heat rule labels on their generated example (tests/fixtures/deal_heat, in the repository)."""
    root = CONFIGS.parent / "tests" / "fixtures" / "deal_heat"
    key = "train_real:deal_heat"
    if key not in ctx.cache:
        ctx.cache[key] = ctx.child("train_real", config=str(CONFIGS / "deal_heat.yaml"), shared=str(root))
    res = ctx.cache[key]
    yield from honest_figures("deal_heat", res, ctx, train_context(res))

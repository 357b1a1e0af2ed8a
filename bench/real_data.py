"""What the benchmarks on the real datasets (``--shared``) share: their config, the child tasks that
prepare or train on them, and the context each result line carries."""

from __future__ import annotations

from pathlib import Path

from bench.harness import Stopwatch, child_task, machine


def real_config(p: dict):
    """The config of ``p["config"]`` on the shared datasets, with ``p["overrides"]`` ([[key, value], ...],
    applied in order and checked like the YAML)."""
    from leadtier.pipelines.config import load_config, override

    cfg = load_config(p["config"], data_root=p["shared"])
    cfg.train.n_jobs = 1
    for key, value in p.get("overrides", []):
        override(cfg, key, value, source="bench")
    return cfg


@child_task("prepare")
def _task_prepare(p: dict) -> dict:
    from leadtier.pipelines import train

    cfg = real_config(p)
    with Stopwatch() as sw:
        prep = train.prepare(cfg)
    return {
        **sw.figures(),
        "train_rows": len(prep.train),
        "eval_rows": len(prep.test) if prep.test is not None else 0,
        "customers": len(prep.features),
        "columns": prep.features.shape[1] - 1,
        "input_rows": {k: v["rows_read"] for k, v in prep.stats.items()},
    }


@child_task("train_real")
def _task_train_real(p: dict) -> dict:
    from leadtier.pipelines import train

    cfg = real_config(p)
    with Stopwatch() as sw:
        res = train.run(cfg)
    return {
        **sw.figures(),
        "metrics": res.metrics,
        "gains": res.gains,
        "n_train": res.n_train,
        "n_test": res.n_test,
        "n_trials": res.n_trials,
        "evaluation": res.protocol["evaluation"],
        "rows": res.protocol.get("rows", {}),
        "model": res.protocol.get("model"),
        "primary_metric": cfg.train.primary_metric,
    }


def trained_real(ctx, config: Path, overrides: tuple[tuple[str, object], ...] = ()) -> dict:
    """``train_real`` on ``config`` (with ``overrides``) once per bench run: several benchmarks read the
    same training."""
    key = f"train_real:{config}:{overrides}"
    if key not in ctx.cache:
        params = {"config": str(config), "shared": str(ctx.shared), "overrides": [list(o) for o in overrides]}
        ctx.cache[key] = ctx.child("train_real", **params)
    return ctx.cache[key]


def missing_inputs(config: Path, shared: Path) -> list[str]:
    """Input files of a real-data config that are absent under ``shared``."""
    from leadtier.pipelines.config import load_config

    cfg = load_config(config, data_root=str(shared))
    specs = [
        s
        for s in (
            cfg.data.tables.customers,
            cfg.data.tables.transactions,
            cfg.data.tables.interactions,
            cfg.data.tables.labels,
        )
        if s is not None
    ]
    paths = dict.fromkeys(str(cfg.data_path(f.path)) for s in specs for f in s.files)  # once each, in order
    return [p for p in paths if not Path(p).is_file()]


def gain_ci(res: dict, baseline: str, m: str, field: str) -> dict:
    """``{field: [gain, low, high]}``: the model's gain over ``baseline`` on ``m`` with its 95 % bootstrap
    interval (positive = the model is better), or {} when the run computed none."""
    g = res.get("gains", {}).get(baseline, {}).get(m)
    return {field: [round(g[k], 4) for k in ("gain", "low", "high")]} if g else {}


def train_context(res: dict) -> dict:
    """Context of a real-data training: evaluation rows (``rows``), protocol, budget used, wall time."""
    return {
        "rows": res["n_test"],
        "n_train": res["n_train"],
        "evaluation": res["evaluation"],
        "n_trials": res["n_trials"],
        "train_seconds": round(res["seconds"], 1),
        "peak_rss_gb": round(res["peak_rss_gb"], 3),
        **machine(res),
    }

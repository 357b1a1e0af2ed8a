"""Benchmarks of the pipeline's stages on generated demo worlds: data, features (and the speedup over
pandas), training, scoring, the report and Spark."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from bench.harness import (
    DEMO_CONFIG,
    Ctx,
    Stopwatch,
    benchmark,
    child_task,
    machine,
    metric,
    peak_rss_gb,
    size_label,
    skipped,
)
from bench.reference import frame_differences, pandas_features


def _demo_config(data_root: str, n_customers: int | None = None):
    from leadtier.pipelines.config import load_config

    cfg = load_config(DEMO_CONFIG, data_root=data_root)
    if n_customers:
        cfg.demo.n_customers = n_customers
    cfg.train.n_jobs = 1  # LightGBM: 1 thread (more hangs on busy 2-core machines)
    return cfg


@child_task("demo_data")
def _task_demo_data(p: dict) -> dict:
    from leadtier.pipelines.demo_data import write_demo

    cfg = _demo_config(p["data_root"])
    with Stopwatch() as sw:
        counts = write_demo(cfg, p["data_root"], n_customers=p["n_customers"])
    Path(p["data_root"], ".complete").write_text(json.dumps(counts))
    return {**sw.figures(), "counts": counts}


@child_task("features")
def _task_features(p: dict) -> dict:
    from leadtier.pipelines import features

    cfg = _demo_config(p["data_root"])
    with Stopwatch() as sw:
        build = features.build(cfg, with_labels=False)
    return {
        **sw.figures(),
        "rows": len(build.features),
        "columns": build.features.shape[1] - 1,
        "input_rows": {k: s.rows for k, s in build.stats.items()},
    }


def _read_demo(data_root: str, n_customers: int | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The demo tables as pandas frames; with ``n_customers`` only the first that many customers."""
    root = Path(data_root)
    if n_customers is None:
        return tuple(pd.read_parquet(root / f"{t}.parquet") for t in ("customers", "transactions", "interactions"))
    customers = pd.read_parquet(root / "customers.parquet").head(n_customers)
    last = customers["customer_id"].max()
    filt = [("customer_id", "<=", last)]
    return (
        customers,
        pd.read_parquet(root / "transactions.parquet", filters=filt),
        pd.read_parquet(root / "interactions.parquet", filters=filt),
    )


@child_task("speedup")
def _task_speedup(p: dict) -> dict:
    """DuckDB build vs the pandas reference on the same data, in one process; outputs compared."""
    from leadtier.pipelines import features

    root = Path(p["data_root"])
    subset = p.get("subset")
    if subset:  # write the first ``subset`` customers' rows once, outside the timings, for both engines
        root = Path(p["subset_root"])
        root.mkdir(parents=True, exist_ok=True)
        for name, frame in zip(
            ("customers", "transactions", "interactions"), _read_demo(p["data_root"], subset), strict=True
        ):
            frame.to_parquet(root / f"{name}.parquet", index=False)
        del frame
    cfg = _demo_config(str(root))
    with Stopwatch() as duck_sw:
        duck = features.build(cfg, with_labels=False).features
    rss_after_duckdb = peak_rss_gb()

    with Stopwatch() as pandas_sw:  # reading the files counts, as it does for DuckDB
        with Stopwatch() as read_sw:
            customers, transactions, interactions = _read_demo(str(root), None)
        ref = pandas_features(
            customers,
            transactions,
            interactions,
            cfg.data.as_of,
            cfg.features.windows_days,
            cfg.features.interaction_types,
        )
    diffs = frame_differences(duck, ref)
    return {
        "duckdb_seconds": duck_sw.seconds,
        "duckdb_cpu_seconds": duck_sw.cpu_seconds,
        "pandas_seconds": pandas_sw.seconds,
        "pandas_cpu_seconds": pandas_sw.cpu_seconds,
        "pandas_read_seconds": read_sw.seconds,
        "rows": len(duck),
        "columns": duck.shape[1] - 1,
        "outputs_match": not diffs,
        "differences": diffs[:5],
        "transactions": len(transactions),
        "interactions": len(interactions),
        "peak_rss_gb_after_duckdb": rss_after_duckdb,
    }


@child_task("train_demo")
def _task_train_demo(p: dict) -> dict:
    from leadtier.pipelines import train

    cfg = _demo_config(p["data_root"], p["n_customers"])
    if p.get("n_trials"):
        cfg.train.tuning.n_trials = p["n_trials"]
        cfg.train.tuning.timeout_s = p["timeout_s"]
    with Stopwatch() as sw:
        res = train.run(cfg)
    return {
        **sw.figures(),
        "model_name": cfg.mlflow.model_name,
        "version": res.model_version,
        "alias": res.alias,
        "n_train": res.n_train,
        "n_test": res.n_test,
        "n_trials": res.n_trials,
        "tuning": cfg.train.tuning.model_dump(exclude={"search_space"}),
        "macro_f1": res.metrics["model"]["macro_f1"],
        "metrics": res.metrics,
        "gains": res.gains,
        "evaluation": res.protocol["evaluation"],
        "rows": res.protocol.get("rows", {}),
        "model": res.protocol.get("model"),
        "primary_metric": cfg.train.primary_metric,
    }


@child_task("predict")
def _task_predict(p: dict) -> dict:
    from leadtier.pipelines import predict

    cfg = _demo_config(p["data_root"])
    cfg.predict.input = None  # every customer of the world
    # a first scoring run: no previous output, so no tier migration (a repeat run also compares with it)
    out = Path(p["output"])
    for path in (out, predict.side_file(out, "migration"), predict.side_file(out, "drift")):
        path.unlink(missing_ok=True)
    with Stopwatch() as sw:
        res = predict.run(
            cfg,
            model_uri=p["model_uri"],
            input_path=None,
            output=p["output"],
            progress=False,
            reasons=bool(p.get("reasons")),
        )
    return {
        **sw.figures(),
        "scored": res.scored,
        "input_rows": res.input_rows,
        "rejected": res.rejected,
        "model_version": res.model_version,
    }


@child_task("report")
def _task_report(p: dict) -> dict:
    from leadtier.pipelines import report

    cfg = _demo_config(p["data_root"])
    with Stopwatch() as sw:
        path = report.run(cfg, predictions=p["predictions"], output=p["output"])
    return {**sw.figures(), "megabytes": path.stat().st_size / 1e6}


@child_task("spark")
def _task_spark(p: dict) -> dict:
    from leadtier.pipelines import spark as sp

    cfg = _demo_config(p["data_root"])
    cfg.predict.input = None
    session = sp.spark_session("local[2]", "leadtier-bench")
    try:
        with Stopwatch() as sw_features:
            _, rows, _ = sp.features_spark(session, cfg, output=p["features_output"])
        with Stopwatch() as sw_predict:
            res = sp.predict_spark(session, cfg, model_uri=p["model_uri"], output=p["predict_output"])
    finally:
        session.stop()
    return {
        **sw_predict.figures(),
        "features_seconds": sw_features.figures()["seconds"],
        "predict_seconds": sw_predict.figures()["seconds"],
        "rows": rows,
        "scored": getattr(res, "scored", None),
    }


@benchmark("demo_data_1m_seconds")
def bench_demo_data(ctx: Ctx) -> Iterator[dict]:
    root = ctx.data_root(ctx.n_customers)
    (root / ".complete").unlink(missing_ok=True)  # always generate: this is the figure
    _, res = ctx.demo_world(ctx.n_customers)
    c = res["counts"]
    yield metric(
        "demo_data_1m_seconds",
        res["seconds"],
        "s",
        ctx,
        n_customers=ctx.n_customers,
        rows=c["customers"] + c["transactions"] + c["interactions"],
        tables=c,
        peak_rss_gb=round(res["peak_rss_gb"], 3),
        **machine(res),
    )


@benchmark("features_1m_seconds", "features_1m_peak_rss_gb")
def bench_features(ctx: Ctx) -> Iterator[dict]:
    root, _ = ctx.demo_world(ctx.n_customers)
    res = ctx.child("features", data_root=str(root))
    common = {
        "n_customers": ctx.n_customers,
        "rows": res["rows"],
        "columns": res["columns"],
        "input_rows": res["input_rows"],
        "engine": "duckdb",
        **machine(res),
    }
    yield metric("features_1m_seconds", res["seconds"], "s", ctx, **common)
    yield metric("features_1m_peak_rss_gb", res["peak_rss_gb"], "GB", ctx, **common)


@benchmark("features_speedup_vs_pandas")
def bench_speedup(ctx: Ctx) -> Iterator[dict]:
    root, _ = ctx.demo_world(ctx.n_customers)
    n = min(ctx.n_customers, ctx.pandas_max_customers)
    params: dict[str, Any] = {"data_root": str(root)}
    if n < ctx.n_customers:
        params.update(subset=n, subset_root=str(ctx.workdir / f"data{size_label(ctx.n_customers)}_first{n}"))
    res = ctx.child("speedup", **params)
    extra: dict[str, Any] = {}
    if n < ctx.n_customers:
        extra["note"] = (
            f"both engines timed on the first {n} of the {ctx.n_customers} customers (and their "
            f"rows) (--pandas-max-customers {ctx.pandas_max_customers})"
        )
    yield metric(
        "features_speedup_vs_pandas",
        res["pandas_seconds"] / res["duckdb_seconds"],
        "x",
        ctx,
        n_customers=n,
        rows=res["rows"],
        columns=res["columns"],
        duckdb_seconds=round(res["duckdb_seconds"], 3),
        pandas_seconds=round(res["pandas_seconds"], 3),
        pandas_read_seconds=round(res["pandas_read_seconds"], 3),
        duckdb_cpu_seconds=round(res["duckdb_cpu_seconds"], 1),
        pandas_cpu_seconds=round(res["pandas_cpu_seconds"], 1),
        load_avg_1m=round(res["load_avg_1m"], 2),
        input_rows={"transactions": res["transactions"], "interactions": res["interactions"]},
        outputs_match=res["outputs_match"],
        differences=res["differences"],
        **extra,
    )


@benchmark("train_demo_seconds")
def bench_train_demo(ctx: Ctx) -> Iterator[dict]:
    res = ctx.trained_model(full_budget=True)
    yield metric(
        "train_demo_seconds",
        res["seconds"],
        "s",
        ctx,
        n_customers=ctx.train_customers,
        rows=res["n_train"] + res["n_test"],
        n_train=res["n_train"],
        n_test=res["n_test"],
        n_trials=res["n_trials"],
        tuning=res["tuning"],
        macro_f1=round(res["macro_f1"], 4),
        peak_rss_gb=round(res["peak_rss_gb"], 3),
        **machine(res),
    )


@benchmark("predict_1m_seconds", "predict_1m_peak_rss_gb")
def bench_predict(ctx: Ctx) -> Iterator[dict]:
    root, _ = ctx.demo_world(ctx.n_customers)
    if ctx.model_uri:
        uri, tuning = ctx.model_uri, "given with --model"
    else:
        model = ctx.trained_model(full_budget="train_demo_seconds" in ctx.selected)
        tuning = "demo.yaml budget" if model["full_budget"] else "quick (3 trials, 60 s)"
        uri = (
            f"models:/{model['model_name']}@champion"
            if model["alias"] == "champion"
            else f"models:/{model['model_name']}/{model['version']}"
        )
    res = ctx.child("predict", data_root=str(root), model_uri=uri, output=str(ctx.workdir / "pred1m.parquet"))
    common = {
        "n_customers": ctx.n_customers,
        "rows": res["scored"],
        "input_rows": res["input_rows"],
        "rejected": res["rejected"],
        "model_uri": uri,
        "model_version": res["model_version"],
        "model_trained_on": None if ctx.model_uri else ctx.train_customers,
        "model_tuning": tuning,
        **machine(res),
    }
    yield metric("predict_1m_seconds", res["seconds"], "s", ctx, **common)
    yield metric("predict_1m_peak_rss_gb", res["peak_rss_gb"], "GB", ctx, **common)


def _model_uri(ctx: Ctx) -> str:
    if ctx.model_uri:
        return ctx.model_uri
    model = ctx.trained_model(full_budget="train_demo_seconds" in ctx.selected)
    if model["alias"] == "champion":
        return f"models:/{model['model_name']}@champion"
    return f"models:/{model['model_name']}/{model['version']}"


@benchmark("predict_1m_reasons_seconds")
def bench_predict_reasons(ctx: Ctx) -> Iterator[dict]:
    root, _ = ctx.demo_world(ctx.n_customers)
    uri = _model_uri(ctx)
    res = ctx.child(
        "predict", data_root=str(root), model_uri=uri, output=str(ctx.workdir / "pred1m_reasons.parquet"), reasons=True
    )
    yield metric(
        "predict_1m_reasons_seconds",
        res["seconds"],
        "s",
        ctx,
        n_customers=ctx.n_customers,
        rows=res["scored"],
        model_uri=uri,
        peak_rss_gb=res["peak_rss_gb"],
        **machine(res),
    )


@benchmark("report_1m_seconds", "report_1m_megabytes")
def bench_report(ctx: Ctx) -> Iterator[dict]:
    root, _ = ctx.demo_world(ctx.n_customers)
    preds = ctx.workdir / "pred1m.parquet"
    if not preds.is_file():
        ctx.child("predict", data_root=str(root), model_uri=_model_uri(ctx), output=str(preds))
    res = ctx.child("report", data_root=str(root), predictions=str(preds), output=str(ctx.workdir / "report1m.html"))
    common = {"n_customers": ctx.n_customers, "peak_rss_gb": res["peak_rss_gb"], **machine(res)}
    yield metric("report_1m_seconds", res["seconds"], "s", ctx, **common)
    yield metric("report_1m_megabytes", res["megabytes"], "MB", ctx, **common)


@benchmark("spark_features_1m_seconds", "spark_predict_1m_seconds")
def bench_spark(ctx: Ctx) -> Iterator[dict]:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        yield from skipped(("spark_features_1m_seconds", "spark_predict_1m_seconds"), "pyspark is not installed")
        return
    root, _ = ctx.demo_world(ctx.n_customers)
    res = ctx.child(
        "spark",
        data_root=str(root),
        model_uri=_model_uri(ctx),
        features_output=str(ctx.workdir / "spark_features"),
        predict_output=str(ctx.workdir / "spark_pred"),
    )
    common = {"n_customers": ctx.n_customers, "master": "local[2]", "rows": res["rows"], **machine(res)}
    yield metric("spark_features_1m_seconds", res["features_seconds"], "s", ctx, **common)
    yield metric("spark_predict_1m_seconds", res["predict_seconds"], "s", ctx, **common)

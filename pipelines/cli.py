"""The ``leadtier`` command line: one sub-command per stage.

Errors a user can fix (config, input files, too little data, a model that cannot be loaded)
print one clear message and exit with status 2; nothing else is swallowed.
"""

from __future__ import annotations

import datetime as dt
import enum
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="leadtier: sort sales leads and customers into tiers with machine learning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEFAULT_CONFIG = "configs/demo.yaml"
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML config (validated at load time).")]
DataRootOpt = Annotated[
    str | None,
    typer.Option("--data-root", help="Folder with the input files; overrides data.root and $LEADTIER_DATA_ROOT."),
]
EngineOpt = Annotated[str | None, typer.Option("--engine", help="duckdb or spark; overrides the config's engine.")]
AsOfOpt = Annotated[
    dt.datetime | None, typer.Option("--as-of", formats=["%Y-%m-%d"], help="Snapshot date; overrides data.as_of.")
]


def _user_errors() -> tuple[type[BaseException], ...]:
    """What the CLI prints as ``error:`` with exit status 2: every :class:`UserError` and a missing file."""
    from leadtier.pipelines.errors import UserError

    return (UserError, FileNotFoundError)


def _from_cwd(path: str | None) -> str | None:
    """A path given on the command line is relative to the current folder (config paths: to the data root)."""
    return path if path is None or "://" in path else str(Path(path).resolve())


def _scoring(model, input, output, as_of: dt.datetime | None, batch_size: int, reasons: bool) -> dict:
    """The options both `predict` engines take, as keyword arguments."""
    return {
        "model_uri": model,
        "input_path": _from_cwd(input),
        "output": output,
        "as_of": as_of.date() if as_of else None,  # --as-of beats predict.as_of
        "batch_size": batch_size,
        "reasons": reasons,
    }


def _load(config: Path, data_root: str | None, as_of: dt.datetime | None):
    from leadtier.pipelines.config import load_config

    return load_config(config, data_root=data_root, as_of=as_of.date() if as_of else None)


def _engine(config: Path, data_root, as_of, engine: str | None) -> str:
    if engine is not None and engine not in ("duckdb", "spark"):
        raise typer.BadParameter(f"--engine must be 'duckdb' or 'spark'. Got {engine!r} instead")
    return engine or _guard(lambda: _load(config, data_root, as_of).engine)


def _master(config: Path, data_root) -> str:
    return _guard(lambda: _load(config, data_root, None).spark_master)


def _guard(fn):
    """Run ``fn``; a user-fixable error (Spark setup problems included) becomes an ``error:`` message on
    stderr and exit status 2."""
    try:
        return fn()
    except _user_errors() as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"leadtier {version('leadtier')}")
        raise typer.Exit()


def _languages() -> list[str]:
    """The report languages that exist: one ``pipelines/i18n/<lang>.yaml`` each."""
    from importlib import resources

    folder = resources.files("leadtier.pipelines").joinpath("i18n")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


Lang = enum.Enum("Lang", {code: code for code in _languages()}, type=str)  # --lang's choices


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    from leadtier.pipelines.console import configure_logging

    configure_logging(verbose)


@app.command("demo-data")
def demo_data(
    config: ConfigOpt = Path(DEFAULT_CONFIG),
    data_root: DataRootOpt = None,
    n_customers: Annotated[int | None, typer.Option(help="Number of customers; overrides demo.n_customers.")] = None,
) -> None:
    """Write synthetic demo CRM tables (customers, transactions, interactions, labels, prospects)."""

    def go():
        from leadtier.pipelines.demo_data import write_demo

        cfg = _load(config, data_root, None)
        counts = write_demo(cfg, n_customers=n_customers)
        typer.echo(f"wrote demo data to {cfg.data.root}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))

    _guard(go)


def _input_features(config: Path, data_root, as_of, output: str | None, engine: str, source: str) -> None:
    """``leadtier features --input``: the scoring input's features and, beside them, the rows left out."""

    def go():
        from leadtier.pipelines.errors import UserError
        from leadtier.pipelines.outputs import write_table
        from leadtier.pipelines.predict import scoring_features

        cfg = _load(config, data_root, as_of)
        if engine == "spark":
            raise UserError("features --input runs on the duckdb engine (--engine duckdb); spark-predict scores inputs")
        if not output or Path(output).suffix.lower() != ".parquet":
            raise UserError(
                "features --input needs --output with a .parquet name (features.output holds the training "
                f"snapshot's features; a CSV would guard text cells against spreadsheet formulas). Got {output!r}"
            )
        when = (as_of.date() if as_of else None) or cfg.predict.as_of or cfg.data.as_of
        feats, rejects = scoring_features(cfg, _from_cwd(source), when)
        path = write_table(feats, output)
        typer.echo(f"wrote {len(feats)} rows x {feats.shape[1] - 1} features of {source} as of {when} -> {path}")
        left = Path(path).with_name(Path(path).stem + ".rejects.csv")
        if len(rejects):
            write_table(rejects, str(left))
            why = ", ".join(f"{n} {r}" for r, n in rejects["reason"].value_counts().items())
            typer.echo(f"{len(rejects)} input row(s) left out ({why}) -> {left}")
        else:
            left.unlink(missing_ok=True)  # an earlier run's rejects are not this input's

    _guard(go)


@app.command("features")
def features(
    config: ConfigOpt = Path(DEFAULT_CONFIG),
    data_root: DataRootOpt = None,
    as_of: AsOfOpt = None,
    output: Annotated[str | None, typer.Option(help="Parquet or CSV path; overrides features.output.")] = None,
    engine: EngineOpt = None,
    input: Annotated[
        str | None,
        typer.Option(
            help="A scoring input (new prospects) to build features of, as predict does; needs a .parquet --output."
        ),
    ] = None,
) -> None:
    """Build the customer feature table (one row per customer, as of the snapshot date); with --input, the
    features of a scoring input as predict builds them, e.g. to send to the REST server."""
    if input is not None:
        return _input_features(config, data_root, as_of, output, _engine(config, data_root, as_of, engine), input)
    if _engine(config, data_root, as_of, engine) == "spark":
        return spark_features(
            config=config,
            data_root=data_root,
            as_of=as_of,
            master=_master(config, data_root),
            spark_conf=None,
            output=output,
        )

    def go():
        from leadtier.pipelines.features import build
        from leadtier.pipelines.outputs import write_table

        cfg = _load(config, data_root, as_of)
        fb = build(cfg, with_labels=False)
        path = write_table(fb.features, output or cfg.features.output)
        typer.echo(f"wrote {len(fb.features)} rows x {fb.features.shape[1] - 1} features as of {fb.as_of} -> {path}")

    _guard(go)


@app.command("train")
def train(
    config: ConfigOpt = Path(DEFAULT_CONFIG),
    data_root: DataRootOpt = None,
    as_of: AsOfOpt = None,
    n_trials: Annotated[int | None, typer.Option(help="Overrides train.tuning.n_trials.")] = None,
    timeout_s: Annotated[float | None, typer.Option(help="Overrides train.tuning.timeout_s.")] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Show tuning progress (trial n/N, best so far, time left); default: on a terminal only.",
        ),
    ] = None,
) -> None:
    """Tune, train and evaluate the tier model; log to MLflow; register; gate the champion alias."""

    def go():
        from leadtier.pipelines import train as stage
        from leadtier.pipelines.config import ConfigError, override

        cfg = _load(config, data_root, as_of)
        if as_of is not None and cfg.train.evaluation == "backtest":
            raise ConfigError(
                "--as-of is not read by train.evaluation 'backtest': it trains on snapshots.train_as_of and "
                "evaluates on snapshots.eval_as_of; set those in the config"
            )
        if n_trials is not None:
            override(cfg, "train.tuning.n_trials", n_trials, source="--n-trials")
        if timeout_s is not None:
            override(cfg, "train.tuning.timeout_s", timeout_s, source="--timeout-s")
        if progress is not None:
            override(cfg, "train.tuning.progress", progress, source="--progress")
        res = stage.run(cfg, config)
        typer.echo(stage.summary_text(cfg, res))

    _guard(go)


@app.command("predict")
def predict(
    config: ConfigOpt = Path(DEFAULT_CONFIG),
    data_root: DataRootOpt = None,
    as_of: AsOfOpt = None,
    model: Annotated[str | None, typer.Option("--model", help="Model URI; default models:/<name>@champion.")] = None,
    input: Annotated[
        str | None,
        typer.Option(
            "--input", help="Customers file to score, relative to the current folder; overrides predict.input."
        ),
    ] = None,
    output: Annotated[str | None, typer.Option(help="Parquet or CSV path; overrides predict.output.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per scoring batch.")] = 100_000,
    reasons: Annotated[
        bool, typer.Option("--reasons", help="Add the top 3 reasons for and against each tier (slower).")
    ] = False,
    engine: EngineOpt = None,
) -> None:
    """Tier customers with the champion (or --model) and write predictions plus a rejects file."""
    if _engine(config, data_root, as_of, engine) == "spark":
        return spark_predict(
            config=config,
            data_root=data_root,
            as_of=as_of,
            master=_master(config, data_root),
            spark_conf=None,
            model=model,
            input=input,
            output=output,
            batch_size=batch_size,
            reasons=reasons,
        )

    def go():
        from leadtier.pipelines import predict as stage

        cfg = _load(config, data_root, as_of)
        res = stage.run(cfg, **_scoring(model, input, output, as_of, batch_size, reasons), progress=sys.stderr.isatty())
        typer.echo(res.summary())

    _guard(go)


@app.command("report")
def report(
    config: ConfigOpt = Path(DEFAULT_CONFIG),
    data_root: DataRootOpt = None,
    lang: Annotated[Lang | None, typer.Option("--lang", help="Report language; overrides report.lang.")] = None,
    predictions: Annotated[str | None, typer.Option(help="Predictions file; default predict.output.")] = None,
    output: Annotated[str | None, typer.Option(help="HTML path; default report.output.")] = None,
) -> None:
    """Write the self-contained HTML segment and tier report; prints its path."""

    def go():
        from leadtier.pipelines import report as stage

        cfg = _load(config, data_root, None)
        path = stage.run(cfg, predictions=predictions, output=output, lang=lang.value if lang else None)
        typer.echo(str(path))

    _guard(go)


@app.command("worklist")
def worklist(
    config: ConfigOpt = Path(DEFAULT_CONFIG),
    data_root: DataRootOpt = None,
    lang: Annotated[
        Lang | None, typer.Option("--lang", help="Language of tiers and actions; overrides worklist.lang.")
    ] = None,
    predictions: Annotated[str | None, typer.Option(help="Predictions file; default predict.output.")] = None,
    output: Annotated[str | None, typer.Option(help="Parquet path (CSV beside it); default worklist.output.")] = None,
) -> None:
    """Write a due-dated call list from the latest predictions: by owner and week, in order of expected value."""

    def go():
        from leadtier.pipelines import worklist as stage

        cfg = _load(config, data_root, None)
        res = stage.run(cfg, predictions=predictions, output=output, lang=lang.value if lang else None)
        typer.echo(res.summary())

    _guard(go)


@app.command("retier")
def retier(
    config: ConfigOpt = Path(DEFAULT_CONFIG),
    data_root: DataRootOpt = None,
    as_of: Annotated[
        dt.datetime | None,
        typer.Option("--as-of", formats=["%Y-%m-%d"], help="Snapshot date; default today in data.time_zone."),
    ] = None,
    lang: Annotated[
        Lang | None, typer.Option("--lang", help="Language of the worklist and report; overrides their lang.")
    ] = None,
) -> None:
    """Re-tier with the champion as of today: features, predict, worklist, report; print who moved.

    Exit status 0, 2 on an error you can fix, 3 when a feature drifted past predict.psi_warning (and past
    the sampling noise of that many rows)."""
    from leadtier.pipelines.retier import DRIFT_EXIT

    def go():
        from leadtier.pipelines import retier as stage

        day = as_of.date() if as_of else stage.today(_load(config, data_root, None))
        cfg = _load(config, data_root, dt.datetime.combine(day, dt.time()))
        res = stage.run(cfg, as_of=day, lang=lang.value if lang else None)
        typer.echo(res.summary())
        return res

    if _guard(go).drifted:
        raise typer.Exit(code=DRIFT_EXIT)


@app.command("config-schema")
def config_schema() -> None:
    """Print the JSON Schema of a config file (for editors that complete and check YAML)."""
    import json

    from leadtier.pipelines.config import config_schema as schema

    typer.echo(json.dumps(schema(), indent=2, ensure_ascii=False))


# --------------------------------------------------------------------------- Spark and REST scoring
# spark-features, spark-predict (pipelines/spark.py) and serve (pipelines/serve.py).

MasterOpt = Annotated[
    str, typer.Option("--master", help="Spark master URL: local[N], spark://host:7077, yarn, k8s://...")
]
SparkConfOpt = Annotated[
    list[str] | None, typer.Option("--spark-conf", help="Extra Spark setting key=value (repeatable).")
]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Model URI; default models:/<name>@champion.")]


@app.command("spark-features")
def spark_features(
    config: ConfigOpt = Path(DEFAULT_CONFIG),
    data_root: DataRootOpt = None,
    as_of: AsOfOpt = None,
    master: MasterOpt = "local[2]",
    spark_conf: SparkConfOpt = None,
    output: Annotated[
        str | None,
        typer.Option(help="Parquet folder (CSV if named *.csv); default <features.output stem>_spark."),
    ] = None,
) -> None:
    """Build the feature table on Spark: the same SQL as `features`, transpiled by sqlglot."""

    def go():
        from leadtier.pipelines.spark import features_spark, parse_conf, spark_session

        cfg = _load(config, data_root, as_of)
        spark = spark_session(master, "leadtier-features", parse_conf(spark_conf))
        try:
            path, rows, n_features = features_spark(spark, cfg, output=output)
        finally:
            spark.stop()
        typer.echo(f"wrote {rows} rows x {n_features} features as of {cfg.data.as_of} on Spark ({master}) -> {path}")

    _guard(go)


@app.command("spark-predict")
def spark_predict(
    config: ConfigOpt = Path(DEFAULT_CONFIG),
    data_root: DataRootOpt = None,
    as_of: AsOfOpt = None,
    master: MasterOpt = "local[2]",
    spark_conf: SparkConfOpt = None,
    model: ModelOpt = None,
    input: Annotated[
        str | None,
        typer.Option(
            "--input", help="Customers file to score, relative to the current folder; overrides predict.input."
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(help="Output folder (Parquet partitioned by tier); default <predict.output stem>_spark."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Rows per Arrow batch handed to the model (Spark's maxRecordsPerBatch).")
    ] = 10_000,
    reasons: Annotated[
        bool, typer.Option("--reasons", help="Add the top 3 reasons for and against each tier (slower).")
    ] = False,
) -> None:
    """Tier customers on Spark with the champion (or --model) via mlflow.pyfunc.spark_udf."""

    def go():
        from leadtier.pipelines.spark import parse_conf, predict_spark, spark_session

        cfg = _load(config, data_root, as_of)
        spark = spark_session(master, "leadtier-predict", parse_conf(spark_conf))
        try:
            res = predict_spark(spark, cfg, **_scoring(model, input, output, as_of, batch_size, reasons))
        finally:
            spark.stop()
        typer.echo(res.summary())

    _guard(go)


@app.command("serve")
def serve(
    config: ConfigOpt = Path(DEFAULT_CONFIG),
    model: ModelOpt = None,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it local (no authentication).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 5088,
    workers: Annotated[int, typer.Option(min=1, help="Server worker processes.")] = 1,
) -> None:
    """Serve the champion (or --model) over REST with MLflow's scoring server, in the foreground."""

    def go():
        from leadtier.pipelines import serve as stage

        cfg = _load(config, None, None)
        return stage.run(cfg, model_uri=model, host=host, port=port, workers=workers, echo=typer.echo)

    code = _guard(go)
    if code not in (0, 130, -2, -15):  # 130 / negative: stopped by Ctrl-C or a signal
        raise typer.Exit(code=code or 1)


def run() -> None:
    """The ``leadtier`` script: :data:`app`, with a usage error (an unknown option, a date not written
    YYYY-MM-DD) as one ``error:`` line and exit status 2 like every other error a user can fix."""
    import sys

    # Click's UsageError and ClickException, as this Typer has them (it may bundle its own Click)
    bases = {c.__name__: c for c in typer.BadParameter.__mro__}
    usage_error, click_exception = bases["UsageError"], bases["ClickException"]
    try:
        code = app(standalone_mode=False, prog_name="leadtier")
    except usage_error as exc:
        ctx = getattr(exc, "ctx", None)
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        if exc.format_message():  # no message: the help was the answer (no arguments at all)
            typer.echo(f"error: {exc.format_message()}{where}", err=True)
        sys.exit(2)
    except click_exception as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    run()

"""The feature SQL and batch scoring on Apache Spark (``leadtier spark-features`` / ``spark-predict``).

One source of truth: the Spark engine runs the very SQL that :mod:`leadtier.features.queries` renders for
DuckDB, transpiled by sqlglot (``read="duckdb", write="spark"``). The input layer is the same code
too: :func:`register_inputs` runs ``sources.register_all`` (the rules of :mod:`leadtier.features.inputs`:
casts, ids, bad values, duplicates, ``exclude``) through :class:`SparkEngine`, which only reads the
files (Spark's CSV and Parquet readers) and transpiles the rules' SQL.

Time: the canonical ``ts`` columns are ``TIMESTAMP_NTZ`` (wall-clock time, like DuckDB's
``TIMESTAMP``) and the session time zone is ``data.time_zone`` (UTC unless configured) on both
engines, so day counts are calendar days and no timestamp is shifted by the driver's or the
executors' local time zone.

Scoring: :func:`predict_spark` applies the registered MLflow pyfunc with
``mlflow.pyfunc.spark_udf`` (``env_manager="local"``) and writes Parquet partitioned by ``tier``.
Input rows are checked with the same reject rules as ``leadtier predict``, and the run writes the same
side files (rejects, drift, migration), committed with the predictions as one set (:func:`_output_set`).

Running on an existing cluster
------------------------------
1. Pass the master URL: ``leadtier spark-predict --master spark://host:7077`` (or ``yarn``,
   ``k8s://...``); extra settings with ``--spark-conf key=value`` (repeatable), e.g.
   ``--spark-conf spark.executor.memory=4g``. ``local[...]`` masters get small-machine defaults
   (4 shuffle partitions, no UI, driver bound to 127.0.0.1); other masters keep the cluster's.
2. Install leadtier (``pip install leadtier[spark]``, same version as the driver) and the
   model's requirements into the executors' Python, and point ``PYSPARK_PYTHON`` at it: the UDF
   unpickles the scorer, which imports ``leadtier.models.*``. ``env_manager="local"`` means no per-task
   virtualenv is built.
3. Use a shared MLflow tracking server, e.g. ``MLFLOW_TRACKING_URI=http://mlflow.internal:5000``
   (or ``mlflow.tracking_uri`` in the config), whose artifact store the driver can read; the
   driver downloads the model once and Spark ships it to the executors.
4. Use input and output paths every node can reach (``hdfs://``, ``s3a://``, ...). The
   output folder is written beside its final name and then renamed into place (through Hadoop's
   FileSystem API on a cluster), so a run that fails leaves the previous output as it was.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import sqlglot
from leadtier.features.queries import feature_query
from leadtier.models.drift import DriftAccumulator
from leadtier.models.frame import numbers_as_float
from leadtier.pipelines.config import Config, FileSpec, TableSpec
from leadtier.pipelines.errors import UserError
from leadtier.pipelines.features import POPULATION, check_families, population_readable, query_params
from leadtier.pipelines.outputs import FORMULA_PREFIX, OutputSet, neutralise_formulas, set_stem, stage
from leadtier.pipelines.predict import PredictResult
from leadtier.pipelines.sources import (
    ENCODING_HINT,
    TRANSCODED,
    InputError,
    codec,
    register_all,
    register_table,
    scoring_spec,
    utf8_copy,
)
from leadtier.pipelines.validate import DUPLICATE_IDS
from sqlglot import exp
from sqlglot.errors import ErrorLevel

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

LOCAL_DEFAULTS = {
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.debug.maxToStringFields": "1000",  # feature plans have hundreds of columns: no truncation warning
}
ALWAYS = {
    # Correctness, not tuning: canonical timestamps are wall-clock times; see the module docstring.
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # pandas/pyarrow often write nanosecond timestamps, which Spark refuses to read (PARQUET_TYPE_ILLEGAL);
    # read them as longs and turn them back into timestamps in SparkEngine.read
    "spark.sql.legacy.parquet.nanosAsLong": "true",
}


class SparkSetupError(UserError, RuntimeError):
    """pyspark or Java is missing, or a Spark setting is malformed."""


# --------------------------------------------------------------------------- session


def spark_session(
    master: str = "local[2]", app_name: str = "leadtier", conf: dict[str, str] | None = None
) -> SparkSession:
    """A SparkSession with UTC session time; small-machine defaults on ``local[...]`` masters."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkSetupError("pyspark is not installed: pip install 'leadtier[spark]'") from None
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        raise SparkSetupError("Spark needs Java 17 or 21: install a JDK or set JAVA_HOME")
    local = master.startswith("local")
    if local:  # workers must run the interpreter that has leadtier and the model's requirements
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # stay on loopback, whatever the hostname says
    logging.getLogger("py4j").setLevel(logging.WARNING)
    settings = {**(LOCAL_DEFAULTS if local else {}), **ALWAYS, **(conf or {})}
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    _quiet_global_windows(spark)
    _quiet_known_notices()
    if spark.conf.get("spark.sql.session.timeZone") != "UTC":
        log.warning(
            "spark.sql.session.timeZone is %s, not UTC: timestamps with a time zone may shift days",
            spark.conf.get("spark.sql.session.timeZone"),
        )
    return spark


def _quiet_global_windows(spark) -> None:
    """Spark warns "No Partition Defined for Window operation" once per plan node, dozens of lines a run.
    The windows over every row are meant (RFM quintiles rank all customers; the scoring input keeps its
    row order), so say it once here and raise that logger to ERROR (log4j 2, Spark's JVM logging)."""
    log.info("Spark: RFM quintiles and input row numbers are windows over all rows, computed on one partition")
    jvm = getattr(spark.sparkContext, "_jvm", None)
    if jvm is None:  # not a classic JVM session (Spark Connect): its server logs what it logs
        return
    level = jvm.org.apache.logging.log4j.Level.ERROR
    jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
        "org.apache.spark.sql.execution.window.WindowExec", level
    )


ENV_MANAGER_NOTICE = 'with `env_manager="local"`'  # MLflow's advice on each spark_udf: local is leadtier's choice


def _drop_env_manager_notice(record: logging.LogRecord) -> bool:
    return ENV_MANAGER_NOTICE not in record.getMessage()


def _quiet_known_notices() -> None:
    """Two advisories every spark-predict printed, each answered by the project: PySpark 4's warning that it
    does not fully support pandas 3 (the parity tests assert every feature, prediction, reject, drift and
    migration row equal to DuckDB's under pandas 3) and MLflow's advice against ``env_manager="local"`` (the
    executors run leadtier's own interpreter by design: see the module docstring)."""
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    pyfunc = logging.getLogger("mlflow.pyfunc")
    if _drop_env_manager_notice not in pyfunc.filters:
        pyfunc.addFilter(_drop_env_manager_notice)


def parse_conf(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SparkSetupError(f"--spark-conf must be key=value. Got {pair!r} instead")
        out[key.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------- SQL


def _spark_node(node: exp.Expression) -> exp.Expression:
    """:func:`_day_diff`; DuckDB's ``isodow`` (Monday 1 .. Sunday 7) as Spark's ``WEEKDAY + 1``; an
    identifier with letters beyond ASCII (``cust_城市``) back-quoted: Spark reads only ASCII letters
    unquoted, sqlglot takes any letter for safe."""
    if isinstance(node, exp.Identifier) and not node.quoted and not node.name.isascii():
        return exp.Identifier(this=node.name, quoted=True)
    if isinstance(node, exp.DayOfWeekIso):  # sqlglot's (DAYOFWEEK(x) % 7) + 1 counts from Tuesday
        weekday = exp.Anonymous(this="WEEKDAY", expressions=[node.this.copy()])  # Monday 0 .. Sunday 6
        return exp.Paren(this=exp.Add(this=weekday, expression=exp.Literal.number(1)))
    return _day_diff(node)


def _day_diff(node: exp.Expression) -> exp.Expression:
    """DuckDB ``date_diff('day', a, b)`` -> Spark ``CAST(datediff(b, a) AS BIGINT)``.

    sqlglot writes ``DATEDIFF(DAY, a, b)``, which Spark runs as ``timestampdiff``: the dates become
    timestamps in the session time zone first. The two-argument ``datediff(end, start)`` counts
    calendar days with no time zone at all; the cast keeps DuckDB's BIGINT result type (Spark's
    ``datediff`` returns INT), so the raw SQL result has the same column types on both engines.
    """
    if isinstance(node, exp.DateDiff) and node.unit is not None and node.unit.name.upper() == "DAY":
        diff = exp.Anonymous(this="DATEDIFF", expressions=[node.this.copy(), node.expression.copy()])
        return exp.Cast(this=diff, to=exp.DataType.build("BIGINT"))
    return node


def to_spark_sql(sql: str, ordered: bool = True) -> str:
    """Transpile DuckDB-dialect SQL to Spark SQL; fails loudly on anything sqlglot cannot express.

    sqlglot handles the rest of the feature SQL as is (checked by tests/test_spark_parity.py):
    ``count(x) FILTER (WHERE ...)`` stays (Spark 3+ has aggregate FILTER), ``stddev_samp`` stays
    (NULL for one value in both engines), ``SELECT * ... USING (customer_id)`` keeps one key
    column in both, nested ``WITH`` clauses are hoisted to the top, ``ORDER BY`` gets the
    explicit ``NULLS LAST`` that DuckDB implies. ``ordered=False`` drops the final ORDER BY (a
    global sort that scoring does not need).
    """
    tree = _nested_ctes_renamed(sqlglot.parse_one(sql, read="duckdb"))
    tree = tree.transform(_spark_node)
    if not ordered:
        tree.set("order", None)
    return tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)


def _nested_ctes_renamed(tree: exp.Expression) -> exp.Expression:
    """Each CTE nested in a top-level CTE renamed ``<outer>__<name>``: sqlglot hoists nested WITH clauses to
    the top for Spark, where two feature families' CTEs of one name (``clock`` in stages and interactions)
    would clash. A table read by such a name keeps that name as its alias, so columns it qualifies resolve."""
    top = _with_clause(tree)
    for outer in top.expressions if top else []:
        inner = _with_clause(outer.this)
        if inner is None:
            continue
        names = {cte.alias: f"{outer.alias}__{cte.alias}" for cte in inner.expressions}
        for cte in inner.expressions:
            cte.set("alias", exp.TableAlias(this=exp.to_identifier(names[cte.alias])))
        for table in outer.this.find_all(exp.Table):
            if not table.db and table.name in names:
                if not table.alias:
                    table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name)))
                table.set("this", exp.to_identifier(names[table.name]))
    return tree


def _with_clause(node: exp.Expression) -> exp.With | None:
    return node.args.get("with_") or node.args.get("with")  # the key sqlglot 30 names 'with_'


def expr_to_spark(expression: str) -> str:
    """A DuckDB expression (``exclude`` rules, ``derived`` columns, reject rules) as Spark SQL."""
    tree = sqlglot.parse_one(expression, read="duckdb").transform(_spark_node)
    return tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)


def feature_sql(cfg: Config, as_of: dt.date, ordered: bool = True, population: str = "customers") -> str:
    return to_spark_sql(feature_query(cfg.features.families, as_of, **query_params(cfg, population)), ordered=ordered)


def _register_population(spark: SparkSession, cfg: Config) -> str:
    """As ``features.register_population``: the configured customers as view ``rfm_population``, the
    customers a scoring input's RFM quintiles rank against."""
    if not population_readable(cfg):
        return "customers"
    register_table(SparkEngine(spark), cfg, "customers", view=POPULATION)
    return POPULATION


# --------------------------------------------------------------------------- inputs

_STRPTIME_TO_JAVA = {
    "%Y": "yyyy",
    "%y": "yy",
    "%m": "MM",
    "%d": "dd",
    "%H": "HH",
    "%I": "hh",
    "%M": "mm",
    "%S": "ss",
    "%f": "SSSSSS",
    "%p": "a",
    "%b": "MMM",
    "%B": "MMMM",
    "%a": "EEE",
    "%A": "EEEE",
    "%j": "DDD",
    "%-m": "M",
    "%-d": "d",
    "%-H": "H",
    "%-I": "h",
    "%-M": "m",
    "%-S": "s",
}
_VARIABLE_WIDTH = {"%m": "M", "%d": "d", "%H": "H", "%I": "h", "%M": "m", "%S": "s"}


def java_date_format(fmt: str) -> str:
    """A strptime format (as in the config, for DuckDB) as a Spark datetime pattern.

    DuckDB's ``%m``/``%d``/``%H``... read one or two digits; Spark's ``MM`` wants exactly two, ``M``
    one or two. So a number between separators becomes the one-letter pattern, and only numbers
    written back to back (``%Y%m%d``) keep the fixed width they need to be split.
    """
    tokens = re.findall(r"%-?[a-zA-Z%]|[^%]", fmt)
    out, literal = [], []

    def flush() -> None:
        if literal:
            out.append("'" + "".join(literal).replace("'", "''") + "'")
            literal.clear()

    for i, token in enumerate(tokens):
        if token == "%%":
            literal.append("%")
        elif token.startswith("%"):
            if token not in _STRPTIME_TO_JAVA:
                raise InputError(f"date_format {fmt!r}: {token} is not supported on the Spark engine")
            flush()
            adjacent = any(
                0 <= j < len(tokens) and tokens[j].startswith("%") and tokens[j] != "%%" for j in (i - 1, i + 1)
            )
            fixed = _STRPTIME_TO_JAVA[token]
            out.append(fixed if adjacent else _VARIABLE_WIDTH.get(token, fixed))
        elif token.isalpha() or token == "'":
            literal.append(token)
        else:
            flush()
            out.append(token)
    flush()
    return "".join(out)


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _separator(path: Path, encoding: str) -> str:
    """The field separator of a CSV file, as DuckDB's sniffer finds it for the files leadtier reads: of
    ',', ';', tab and '|', the one its header line holds most often outside quotes (',' on a tie)."""
    with path.open(encoding=codec(encoding), errors="replace", newline="") as f:
        header = re.sub(r'"[^"]*"', "", f.readline())
    return max((",", ";", "\t", "|"), key=header.count)


def _read(spark: SparkSession, path: Path, fmt: str, encoding: str = "utf-8", schema=None) -> DataFrame:
    fmt = fmt if fmt != "auto" else ("parquet" if path.suffix.lower() in {".parquet", ".pq"} else "csv")
    if fmt == "parquet":
        return spark.read.parquet(str(path))
    # like DuckDB's read_csv(header = true, sample_size = -1): types inferred from every row, unless given
    options = {"header": True, "inferSchema": schema is None, "mode": "FAILFAST", "sep": _separator(path, encoding)}
    if encoding in TRANSCODED:  # Spark 4 reads no such charset: its UTF-8 copy, as on DuckDB
        path, encoding = utf8_copy(path, encoding), "utf-8"
    if encoding == "latin-1":
        options["encoding"] = "ISO-8859-1"
    elif encoding == "utf-16":  # Spark splits lines as bytes unless it reads whole records (multiLine)
        options |= {"encoding": "UTF-16LE", "multiLine": True}
    reader = spark.read.options(**options)
    return (reader.schema(schema) if schema is not None else reader).csv(str(path))


def _nanosecond_columns(path: Path, fmt: str) -> set[str]:
    """Parquet timestamp columns in nanoseconds (Spark reads them as longs, see ``ALWAYS``)."""
    fmt = fmt if fmt != "auto" else ("parquet" if path.suffix.lower() in {".parquet", ".pq"} else "csv")
    if fmt != "parquet":
        return set()
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException):
        return set()
    return {f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"}


def _check_utf8(df: DataFrame, path: Path, table: str) -> None:
    """Spark decodes invalid UTF-8 as U+FFFD without a word; DuckDB refuses the file. Refuse it too."""
    from functools import reduce

    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    text = [F.col(_ident(f.name)) for f in df.schema.fields if isinstance(f.dataType, T.StringType)]
    replaced = any("\ufffd" in c for c in df.columns) or (
        bool(text) and df.where(reduce(lambda a, b: a | b, [c.contains("\ufffd") for c in text])).limit(1).count() > 0
    )
    if replaced:
        raise InputError(f"{path}: cannot be read as {table} data: this file is not utf-8 encoded. {ENCODING_HINT}")


def _spark_class(dtype) -> str:
    """The class (``leadtier.features.inputs``) of a Spark type."""
    from leadtier.features import inputs as rules
    from pyspark.sql import types as T

    if isinstance(dtype, T.StringType):
        return rules.TEXT
    if isinstance(dtype, T.FloatType | T.DoubleType | T.DecimalType):
        return rules.FLOAT
    if isinstance(dtype, T.IntegralType):
        return rules.INT
    if isinstance(dtype, T.DateType | T.TimestampType | T.TimestampNTZType):
        return rules.TEMPORAL
    return rules.BOOL if isinstance(dtype, T.BooleanType) else rules.OTHER


class SparkEngine:
    """The input rules of :mod:`leadtier.pipelines.sources` on Spark: files read by Spark's readers,
    the rules' DuckDB SQL transpiled by sqlglot (as the feature SQL is)."""

    name = "Spark"

    def __init__(self, spark: SparkSession):
        from pyspark.errors import PySparkException
        from sqlglot.errors import SqlglotError

        self.spark = spark
        self.errors = (PySparkException, SqlglotError)

    def set_time_zone(self, tz: str) -> None:
        self.spark.conf.set("spark.sql.session.timeZone", tz)

    def read(self, view: str, path: Path, fs: FileSpec, table: str, text_columns: set[str]) -> dict[str, object]:
        """Temp view ``view`` over the file; CSV columns in ``text_columns`` as text. Returns column -> class."""
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        try:
            df = _read(self.spark, path, fs.format, fs.encoding)
            nanos = _nanosecond_columns(path, fs.format)
            is_csv = fs.format == "csv" or (fs.format == "auto" and path.suffix.lower() not in {".parquet", ".pq"})
            if is_csv and any(f.name in text_columns and f.dataType != T.StringType() for f in df.schema.fields):
                schema = T.StructType(
                    [T.StructField(f.name, T.StringType(), True) if f.name in text_columns else f for f in df.schema]
                )
                df = _read(self.spark, path, fs.format, fs.encoding, schema)
            df.schema  # noqa: B018 - resolves the file now
        except Exception as exc:  # noqa: BLE001 - AnalysisException and friends: not readable as such
            raise InputError(f"{path}: cannot be read as {table} data: {str(exc).splitlines()[0]}") from None
        if is_csv and fs.encoding == "utf-8":
            _check_utf8(df, path, table)
        for name in nanos & set(df.columns):  # a nanosecond timestamp read as a long
            if isinstance(df.schema[name].dataType, T.LongType):
                df = df.withColumn(name, F.expr(f"timestamp_micros({_ident(name)} div 1000)").cast("timestamp_ntz"))
        df.createOrReplaceTempView(view)
        types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
        return {f.name: _spark_class(f.dataType) for f in df.schema.fields} | {"__types__": types}

    def missing_column_hint(self, path: Path, fs: FileSpec) -> str:
        return ""

    def rows(self, sql: str) -> list[tuple]:
        return [tuple(r) for r in self.spark.sql(input_sql(sql)).collect()]

    def create(self, name: str, sql: str, materialize: bool = False) -> None:
        self.spark.sql(input_sql(sql)).createOrReplaceTempView(name)

    def number_rows(self, name: str, sql: str) -> None:
        _with_row_numbers(self.spark.sql(input_sql(sql))).createOrReplaceTempView(name)

    def columns(self, name: str) -> list[str]:
        return self.spark.table(name).columns


def _strptime(node: exp.Expression) -> exp.Expression:
    """DuckDB ``try_strptime(text, '%d/%m/%Y')`` -> Spark ``try_to_timestamp(text, 'd/M/yyyy')``."""
    if isinstance(node, exp.Anonymous) and node.name.upper() == "TRY_STRPTIME":
        text, fmt = node.expressions
        java = exp.Literal.string(java_date_format(fmt.name))
        return exp.Anonymous(this="TRY_TO_TIMESTAMP", expressions=[text.copy(), java])
    return node


def input_sql(sql: str) -> str:
    """The DuckDB SQL of the input rules (:mod:`leadtier.features.inputs`) as Spark SQL."""
    tree = sqlglot.parse_one(sql, read="duckdb").transform(_spark_node).transform(_strptime)
    return tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)


def _with_row_numbers(df: DataFrame) -> DataFrame:
    """1-based row numbers in input order without a single-partition window (scales like zipWithIndex).

    ``monotonically_increasing_id`` is partition index << 33 plus the position in the partition;
    partitions follow the file order, so offsets from per-partition counts give global positions.
    """
    from pyspark.sql import functions as F

    tagged = df.withColumn("__mono", F.monotonically_increasing_id())  # stable for a given file scan
    part = F.shiftright(F.col("__mono"), 33)
    counts = sorted(tagged.groupBy(part.alias("p")).count().collect())
    offsets, total = [], 0
    for p, n in counts:
        offsets += [F.lit(p), F.lit(total)]
        total += n
    if not offsets:
        return tagged.withColumn("input_row", F.lit(1).cast("bigint")).drop("__mono")
    offset = F.create_map(*offsets)[part]
    pos = F.col("__mono").bitwiseAND(F.lit((1 << 33) - 1))
    return tagged.withColumn("input_row", (offset + pos + 1).cast("bigint")).drop("__mono")


def register_inputs(
    spark: SparkSession,
    cfg: Config,
    customers: TableSpec | None = None,
    customers_view: str = "customers",
    tag_rows: bool = False,
) -> dict:
    """``sources.register_all`` on Spark (no labels: scoring and features do not need them).

    ``tag_rows=True`` registers the customers input untouched but tagged (see ``sources.register_table``).
    """
    return register_all(
        SparkEngine(spark),
        cfg,
        customers=customers,
        with_labels=False,
        drop_missing_ids=not tag_rows,
        tag_rows=tag_rows,
        customers_view=customers_view,
    )


# --------------------------------------------------------------------------- features


def build_features_spark(
    spark: SparkSession, cfg: Config, as_of: dt.date | None = None, customers_path: str | None = None
) -> DataFrame:
    """The feature table as a Spark DataFrame: the DuckDB feature SQL, transpiled, over the inputs."""
    check_families(cfg)
    as_of = as_of or cfg.data.as_of
    spec = scoring_spec(cfg, customers_path)
    population = _register_population(spark, cfg) if customers_path else "customers"
    register_inputs(spark, cfg, customers=spec)
    _check_unique_ids(spark, spec)
    return numbers_as_double(spark.sql(feature_sql(cfg, as_of, population=population)))


def _check_unique_ids(spark: SparkSession, spec: TableSpec) -> None:
    """As ``validate.check_inputs`` on DuckDB: customer ids must be unique, or the feature table repeats them."""
    dup = spark.sql("SELECT customer_id, count(*) AS n FROM customers GROUP BY customer_id HAVING count(*) > 1")
    rows = dup.orderBy("customer_id").limit(3).collect()
    if rows:
        total = dup.agg({"n": "sum"}).collect()[0][0]
        files = ", ".join(str(f.path) for f in spec.files) or f"(derived from {' and '.join(spec.derive_from or [])})"
        raise InputError(
            f"{files}: column 'customer_id' of customers: {total} row(s) {DUPLICATE_IDS}; "
            f"e.g. {', '.join(r['customer_id'] for r in rows)}"
        )


def numbers_as_double(df: DataFrame) -> DataFrame:
    """Spark twin of ``leadtier.models.frame.numbers_as_float``: every numeric feature as DOUBLE, like the
    DuckDB feature table and the model signature."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    return df.select(
        *[
            F.col(_ident(f.name)).cast("double").alias(f.name)
            if f.name != "customer_id" and isinstance(f.dataType, T.NumericType)
            else F.col(_ident(f.name))
            for f in df.schema.fields
        ]
    )


def _is_local(spark: SparkSession, path: str) -> bool:
    return spark.sparkContext.master.startswith("local") and ("://" not in path or path.startswith("file:"))


def _spark_writer(df: DataFrame, fmt: str, partition_by: list[str] | None = None):
    """What writes ``df`` as a folder of Parquet or CSV parts to a given path (replacing what is there)."""

    def write(target) -> None:
        w = df.write.mode("overwrite")
        if partition_by:
            w = w.partitionBy(*partition_by)
        if fmt == "csv":  # values as they are: Spark's CSV writer trims spaces unless told not to
            w.options(header=True, ignoreLeadingWhiteSpace=False, ignoreTrailingWhiteSpace=False).csv(str(target))
        else:
            w.option("compression", "zstd").parquet(str(target))

    write.spark = True  # writes to any path Spark can reach (see HadoopSet.stage)
    return write


def _folder_format(output: str) -> str:
    return "csv" if output.lower().rstrip("/").endswith(".csv") else "parquet"


def write_dir(spark: SparkSession, df: DataFrame, output: str, partition_by: list[str] | None = None) -> str:
    """Write ``df`` as a folder of Parquet (CSV when ``output`` ends in .csv).

    Locally the folder appears complete or not at all: written beside, then swapped in.
    """
    write = _spark_writer(df, _folder_format(output), partition_by)
    if not _is_local(spark, output):
        return _swap_through_hadoop(spark, write, output)
    out = Path(_local(output))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        write(str(tmp))
        if out.is_dir():
            out.rename(old)
        elif out.exists():
            out.unlink()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return str(out)


def _hadoop_replace(fs, tmp, target, old) -> None:
    """Rename ``tmp`` to ``target`` (Hadoop paths on ``fs``), the previous ``target`` moved aside to ``old``
    first and deleted after; if the rename fails the previous one goes back."""
    if fs.exists(target) and not fs.rename(target, old):
        raise OSError(f"cannot move the previous output {target.toString()} aside to {old.toString()}")
    if not fs.rename(tmp, target):
        if fs.exists(old):
            fs.rename(old, target)
        raise OSError(f"cannot rename {tmp.toString()} to {target.toString()}")
    fs.delete(old, True)


def _swap_through_hadoop(spark: SparkSession, write, output: str) -> str:
    """``write`` beside ``output`` on the cluster's file system, then rename it into place through Hadoop's
    FileSystem API: a run that fails while writing leaves the previous output as it was. (Renames are
    atomic on HDFS; on object stores such as S3 a rename copies, so readers may briefly see no folder.)"""
    jpath = spark._jvm.org.apache.hadoop.fs.Path
    target = jpath(output.rstrip("/"))
    fs = target.getFileSystem(spark._jsc.hadoopConfiguration())
    tag = uuid.uuid4().hex[:8]
    tmp = jpath(target.getParent(), f".{target.getName()}.tmp-{tag}")
    old = jpath(target.getParent(), f".{target.getName()}.old-{tag}")
    try:
        write(tmp.toString())
        _hadoop_replace(fs, tmp, target, old)
    finally:
        fs.delete(tmp, True)
        fs.delete(old, True)
    return output


def side_name(out: str, kind: str) -> str:
    """``outputs/pred_spark`` -> ``outputs/pred_spark.<kind>.csv``, ``pred.parquet`` -> ``pred.<kind>.csv``:
    the names ``leadtier predict`` gives its side files (only a .parquet or .csv suffix is replaced)."""
    head, sep, name = out.rstrip("/").rpartition("/")
    return f"{head}{sep}{set_stem(name)}.{kind}.csv"


def rejects_name(out: str) -> str:
    return side_name(out, "rejects")


def _local(path: str) -> str:
    return path.removeprefix("file://").removeprefix("file:")


def neutralise_formulas_spark(df: DataFrame) -> DataFrame:
    """``df`` with every text cell that a spreadsheet could run as a formula prefixed by ``'``, the rule
    of :func:`~leadtier.pipelines.outputs.neutralise_formulas` (``outputs.FORMULA_PREFIX``) for CSV files."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    return df.select(
        *(
            F.when(F.col(f.name).rlike(FORMULA_PREFIX), F.concat(F.lit("'"), F.col(f.name)))
            .otherwise(F.col(f.name))
            .alias(f.name)
            if isinstance(f.dataType, StringType)
            else F.col(f.name)
            for f in df.schema.fields
        )
    )


def _csv_file_writer(spark: SparkSession, df: DataFrame):
    """What writes ``df`` as one CSV file to a given path, as ``leadtier predict`` writes its side files
    (a folder of CSV parts on a cluster), text cells that could run as spreadsheet formulas neutralised.

    Locally Spark writes a hidden ``<target>.parts-<id>.tmp`` folder beside ``target`` first: for a staged
    temporary of an :class:`~leadtier.pipelines.outputs.OutputSet` its name matches the set's temporaries,
    so one left by a killed run is removed when the set is next opened."""
    df = neutralise_formulas_spark(df)

    def write(target) -> None:
        target = str(target)
        if not _is_local(spark, target):
            return _spark_writer(df, "csv")(target)
        name = Path(target).name
        hidden = name if name.startswith(".") else f".{name}"
        parts = Path(_local(target)).with_name(f"{hidden}.parts-{uuid.uuid4().hex[:8]}.tmp")
        try:
            _spark_writer(df.coalesce(1), "csv")(str(parts))
            (part,) = parts.glob("part-*.csv")
            os.replace(part, _local(target))
        finally:
            shutil.rmtree(parts, ignore_errors=True)

    write.spark = True
    return write


class HadoopSet:
    """A Spark run's output set on a cluster's file system (HDFS, S3, ...) through Hadoop's FileSystem API,
    staged as :class:`~leadtier.pipelines.outputs.OutputSet` stages it on this machine: each file is written
    beside its final name and all are renamed into place by :meth:`commit`, once every one is written, so a
    run that fails leaves the previous set as it was. There is no lock, journal or manifest here: a driver
    killed during the renames may leave files of both runs."""

    def __init__(self, spark: SparkSession, main: str, kinds: list[str]):
        self.main = main.rstrip("/")
        self.sides = {k: side_name(self.main, k) for k in kinds}
        self._path = spark._jvm.org.apache.hadoop.fs.Path
        self.fs = self._path(self.main).getFileSystem(spark._jsc.hadoopConfiguration())
        self.tag = ""
        self._staged: dict[str, str] = {}

    def open(self, run_id: str) -> HadoopSet:
        self.tag = run_id[:8]
        return self

    def __enter__(self) -> HadoopSet:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _beside(self, final: str, what: str):
        p = self._path(final)
        return self._path(p.getParent(), f".{p.getName()}.{self.tag}.{what}")

    def stage(self, final: str, write, folder: bool = False) -> str:
        """``write(tmp)`` beside ``final``; a writer that is not Spark's (a pandas table, the drift file) writes a
        file on this machine, which is then copied there."""
        tmp = self._beside(final, "tmp").toString()
        try:
            if getattr(write, "spark", False):
                write(tmp)
            else:
                local = stage(Path(tempfile.gettempdir()) / Path(final).name, write)
                self.fs.copyFromLocalFile(True, True, self._path(f"file:{local}"), self._path(tmp))
        except BaseException:
            self.fs.delete(self._path(tmp), True)
            raise
        self._staged[final] = tmp
        return tmp

    def staged(self, final: str) -> str:
        return self._staged[final]

    def commit(self, status: str = "complete", keep: list[str] = (), facts: dict | None = None) -> None:
        """Rename the staged files into place; ``status`` and ``facts`` have no manifest to go to here."""
        written = list(self._staged)
        for final in written:
            _hadoop_replace(self.fs, self._path(self._staged.pop(final)), self._path(final), self._beside(final, "old"))
        for final in [self.main, *self.sides.values()]:
            if final not in written and final not in keep:  # none of an earlier run's files stays
                self.fs.delete(self._path(final), True)

    def close(self) -> None:
        for tmp in self._staged.values():
            self.fs.delete(self._path(tmp), True)
        self._staged.clear()


def default_output(path: str) -> str:
    """``outputs/demo/features.parquet`` -> ``outputs/demo/features_spark`` (a folder, not the file)."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}_spark"))


def features_spark(
    spark: SparkSession, cfg: Config, output: str | None = None, as_of: dt.date | None = None
) -> tuple[str, int, int]:
    """Build and write the feature table; returns (path, rows, feature columns)."""
    df = build_features_spark(spark, cfg, as_of)
    path = write_dir(spark, df, output or default_output(cfg.features.output))
    rows = spark.read.parquet(path).count() if not path.lower().endswith(".csv") else df.count()
    return path, rows, len(df.columns) - 1


# --------------------------------------------------------------------------- scoring


def output_struct(model_uri: str, reasons: bool = False):
    """The pyfunc's output columns as a Spark struct, from the model's signature (plus ``reasons``)."""
    import mlflow
    from leadtier.pipelines.tracking import ModelLoadError
    from mlflow.exceptions import MlflowException

    try:
        info = mlflow.models.get_model_info(model_uri)
    except MlflowException as exc:
        raise ModelLoadError(f"cannot load model {model_uri}: {exc.message.splitlines()[0]}") from None
    sig = info.signature
    if sig is None or sig.outputs is None or not sig.outputs.has_input_names():
        raise ModelLoadError(f"model {model_uri} has no named output signature; re-train it with leadtier train")
    from pyspark.sql import types as T

    # as_spark_schema() marks required columns non-nullable, but the Arrow batches the UDF returns
    # are always nullable and Spark rejects the mismatch (ARROW_TYPE_MISMATCH)
    fields = sig.outputs.as_spark_schema().fields
    struct = T.StructType([T.StructField(f.name, f.dataType, True) for f in fields])
    if reasons:
        struct = struct.add(T.StructField("reasons", T.StringType(), True))
    return struct, sig.inputs.input_names()


def _tag_rejects(spark: SparkSession, as_of: dt.date, open_only: bool = False, reject_rules=None) -> DataFrame:
    """Why each input row is not scored (NULL: scored), over the tagged view ``customers__input``: the
    query of ``leadtier predict`` (:func:`~leadtier.pipelines.predict.tagged_query`), its rules transpiled."""
    from leadtier.pipelines.predict import REJECT_RULES, tagged_query

    date = f"DATE '{as_of.isoformat()}'"
    rules = [(expr_to_spark(cond.replace("$as_of", date)), why) for cond, why in reject_rules or REJECT_RULES]
    return spark.sql(tagged_query("customers__input", date, open_only, rules))


def _output_set(spark: SparkSession, out: str):
    """The files of one run, committed together: an :class:`~leadtier.pipelines.outputs.OutputSet` (lock,
    journal, manifest) on this machine, a :class:`HadoopSet` on a cluster's file system."""
    from leadtier.pipelines.predict import SIDE_KINDS

    if _is_local(spark, out):
        return OutputSet(Path(_local(out)), SIDE_KINDS)
    return HadoopSet(spark, out, SIDE_KINDS)


def _read_tiers(spark: SparkSession, path: str) -> DataFrame:
    """The id, tier and score columns of a predictions folder or file (Parquet, or CSV by its name)."""
    from pyspark.sql import functions as F

    reader = spark.read
    df = reader.option("header", True).csv(path) if _folder_format(path) == "csv" else reader.parquet(path)
    return df.select(F.col("customer_id").cast("string"), F.col("tier").cast("string"), F.col("score").cast("double"))


def _previous_tiers(spark: SparkSession, outset) -> DataFrame | None:
    """The last run's tiers at this output, for tier migration (None when there is no readable one)."""
    main = str(outset.main)
    there = Path(main).exists() if isinstance(outset, OutputSet) else outset.fs.exists(outset._path(main))
    if not there:
        return None
    try:
        return _read_tiers(spark, main)
    except Exception as exc:  # noqa: BLE001 - AnalysisException and friends: as leadtier predict, no migration
        log.warning("previous predictions %s unreadable, no migration table: %s", main, str(exc).splitlines()[0])
        return None


def _drift_spark(feats: DataFrame, reference: dict[str, dict]) -> DriftAccumulator:
    """Drift counts of the feature table: one :class:`~leadtier.models.drift.DriftAccumulator` per partition
    (on the executors), their bounded states (bin counts, three examples) merged on the driver."""
    import json

    import pandas as pd

    def states(batches):
        acc = DriftAccumulator(reference)
        for batch in batches:
            acc.add(numbers_as_float(batch))
        yield pd.DataFrame({"state": [json.dumps(acc.state())]})

    columns = ["customer_id", *[c for c in reference if c in feats.columns]]
    total = DriftAccumulator(reference)
    for row in feats.select(*[_ident(c) for c in columns]).mapInPandas(states, "state string").collect():
        total.merge(json.loads(row["state"]))
    return total


def _migration_spark(previous: DataFrame, current: DataFrame, levels: list[str]) -> DataFrame:
    """As ``models.drift.migration`` (one row per customer, by id): the pairs joined by Spark, each batch
    of pairs classified by :func:`~leadtier.models.drift.tier_changes`, CSV cells neutralised as
    ``leadtier predict`` writes them."""
    from leadtier.models.drift import MIGRATION_COLUMNS, tier_changes
    from pyspark.sql import functions as F

    pairs = previous.select(
        "customer_id", F.col("tier").alias("previous_tier"), F.col("score").alias("previous_score")
    ).join(current, "customer_id", "full_outer")
    schema = (
        "customer_id string, previous_tier string, previous_score double, tier string, score double, "
        "change string, score_change double, trend string"
    )

    def changes(batches):
        for batch in batches:
            yield neutralise_formulas(tier_changes(batch, levels))

    return pairs.select(*MIGRATION_COLUMNS).mapInPandas(changes, schema).orderBy("customer_id").coalesce(1)


def _scoring_input(spark: SparkSession, cfg: Config, input_path: str | None, as_of: dt.date):
    """The input rows tagged with their reject reason (persisted: the caller unpersists), the input row
    count, the reject counts by reason, and the RFM population view."""
    from leadtier.pipelines.predict import scoring_rules

    source = input_path or cfg.predict.input
    spec = scoring_spec(cfg, source)
    population = _register_population(spark, cfg) if source else "customers"
    register_inputs(spark, cfg, customers=spec, customers_view="customers__input", tag_rows=True)
    tagged = _tag_rejects(spark, as_of, cfg.predict.open_only, scoring_rules(cfg)).persist()
    counts = {r["reject_reason"]: r["count"] for r in tagged.groupBy("reject_reason").count().collect()}
    why = {k: int(v) for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if k is not None}
    return tagged, sum(counts.values()), why, population


def _rejects_frame(tagged: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return (
        tagged.where("reject_reason IS NOT NULL")
        .select("input_row", F.col("input_id").alias("customer_id"), F.col("reject_reason").alias("reason"))
        .orderBy("input_row")
        .coalesce(1)
    )


def _scored_frame(spark, cfg, tagged, as_of, population, uri, reasons, version) -> tuple[DataFrame, DataFrame]:
    """The features of the rows not rejected (persisted: the caller unpersists) and the predictions."""
    import mlflow
    from leadtier.pipelines import tracking
    from leadtier.pipelines.predict import RULE_TIER, rule_tiers_sql
    from pyspark.sql import functions as F

    struct, input_cols = output_struct(uri, reasons=reasons)
    tagged.where("reject_reason IS NULL").drop(
        "input_row", "input_id", "pre_reject", "dup_rank", "closed_before", "reject_reason"
    ).createOrReplaceTempView("customers")
    feats = numbers_as_double(spark.sql(feature_sql(cfg, as_of, ordered=False, population=population)))
    missing = sorted(set(input_cols) - set(feats.columns))
    if missing:
        raise tracking.ModelLoadError(f"model {uri} needs feature column(s) that this config does not build: {missing}")
    feats = feats.persist()  # read twice: drift and scoring
    udf = mlflow.pyfunc.spark_udf(
        spark, uri, result_type=struct, env_manager="local", params={"lang": cfg.report.lang, "reasons": reasons}
    )
    # like leadtier predict, keep past revenue for the report (it then needs no feature rebuild)
    extra = [F.col("rfm_monetary").alias("past_revenue")] if "rfm_monetary" in feats.columns else []
    prediction = udf(*[F.col(_ident(c)) for c in input_cols]).alias("__p")
    result = feats.select("customer_id", prediction, *extra).select(
        "customer_id",
        "__p.*",
        *[c for c in ["past_revenue"] if extra],
        F.lit(version).cast("string").alias("model_version"),
        F.lit(as_of).cast("date").alias("as_of"),
    )
    rules = rule_tiers_sql(cfg)
    if rules is not None:  # as leadtier predict: the rule's tier beside the model's
        tiers = spark.sql(input_sql(rules)).withColumn("customer_id", F.col("customer_id").cast("string"))
        order = list(result.columns)
        order.insert(order.index("tier") + 1, RULE_TIER)
        result = result.join(tiers, "customer_id", "left").select(*order)
    return feats, result


def _stage_scores(spark, cfg, outset, feats, result, scorer, positions: bool = False) -> int:
    """Stage the predictions, drift and migration files of ``outset`` (no migration when the ids are row
    ``positions``); returns the rows scored."""
    from leadtier.pipelines.predict import stage_drift

    previous = None if positions else _previous_tiers(spark, outset)  # read before the commit replaces it
    reference = getattr(scorer, "drift_reference", None)
    stage_drift(outset, _drift_spark(feats, reference) if reference else None, cfg.predict.psi_warning)
    t1 = time.perf_counter()
    main = outset.main
    outset.stage(main, _spark_writer(result, _folder_format(str(main)), ["tier"]), folder=True)
    current = _read_tiers(spark, str(outset.staged(main)))
    n_scored = current.count()
    log.info("built features, scored and wrote %d rows in %.1f s", n_scored, time.perf_counter() - t1)
    if previous is not None and n_scored and scorer is not None:  # as leadtier predict
        moved = _migration_spark(previous, current, scorer.scheme.codes)
        outset.stage(outset.sides["migration"], _csv_file_writer(spark, moved))
    return n_scored


def predict_spark(
    spark: SparkSession,
    cfg: Config,
    model_uri: str | None = None,
    input_path: str | None = None,
    output: str | None = None,
    as_of: dt.date | None = None,
    batch_size: int | None = None,
    reasons: bool = False,
) -> PredictResult:
    """Tier customers on Spark; Parquet partitioned by tier under ``output`` (a folder), with the side files
    of ``leadtier predict`` beside it (rejects, drift, migration), committed together as one set.

    ``batch_size`` sets the rows per Arrow batch the model scores at once
    (``spark.sql.execution.arrow.maxRecordsPerBatch``); ``reasons`` adds the per-customer reasons column.
    """
    from leadtier.pipelines import tracking

    check_families(cfg)
    out = output or default_output(cfg.predict.output)
    tracking.check_store(cfg, model_uri)
    with _output_set(spark, out) as outset:
        outset.open(uuid.uuid4().hex)  # one run per output set at a time; finishes a killed run's commit
        return _predict_into(spark, cfg, outset, model_uri, input_path, as_of, batch_size, reasons)


def _predict_into(spark, cfg, outset, model_uri, input_path, as_of, batch_size, reasons) -> PredictResult:
    from leadtier.pipelines import tracking
    from leadtier.pipelines.predict import (
        check_has_rows,
        check_reject_share,
        input_facts,
        newest_events_sql,
        positions_said,
        scorer_of,
        warn_future_as_of,
        warn_not_champion,
        warn_scoring_settings,
        warn_stale_inputs,
    )
    from leadtier.pipelines.sources import scoring_spec

    t0 = time.perf_counter()
    as_of = as_of or cfg.predict.as_of or cfg.data.as_of
    warn_future_as_of(cfg, as_of)
    client = tracking.setup(cfg)
    uri = model_uri or tracking.champion_uri(cfg)
    version = tracking.resolve_version(client, uri)
    warn_not_champion(client, uri, version)
    scorer = scorer_of(tracking.load_model(uri))  # the drift reference and the tier levels, as leadtier predict
    warn_scoring_settings(scorer, cfg)
    if batch_size:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(int(batch_size)))
    tagged, input_rows, why, population = _scoring_input(spark, cfg, input_path, as_of)
    try:
        check_has_rows(cfg, input_path or cfg.predict.input, input_rows)
        log.info("read and checked %d input rows in %.1f s", input_rows, time.perf_counter() - t0)
        rejects = _csv_file_writer(spark, _rejects_frame(tagged))
        check_reject_share(cfg, outset, input_rows, why, rejects)  # before scoring
        newest = newest_events_sql(cfg, as_of, spark.catalog.tableExists)
        stale = warn_stale_inputs([tuple(r) for r in spark.sql(newest).collect()] if newest else [], as_of)
        feats, result = _scored_frame(spark, cfg, tagged, as_of, population, uri, reasons, version)
        try:
            positions = positions_said(scoring_spec(cfg, input_path or cfg.predict.input))
            n_scored = _stage_scores(spark, cfg, outset, feats, result, scorer, positions)
        finally:
            feats.unpersist()
        if why:
            outset.stage(outset.sides["rejects"], rejects)
        outset.commit(facts=input_facts(cfg, input_path))  # files not staged (no migration, no rejects) go
    finally:
        tagged.unpersist()
    return PredictResult(
        engine="Spark (Parquet partitioned by tier)",
        output=str(outset.main),
        rejects=str(outset.sides["rejects"]) if why else None,
        input_rows=input_rows,
        scored=n_scored,
        reasons=why,
        model_uri=uri,
        model_version=version,
        as_of=as_of,
        seconds=time.perf_counter() - t0,
        stale_days=stale,
    )

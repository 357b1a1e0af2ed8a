"""Plain-word reasons for the customers a person reads: the worklist's rows and the report's top customers.

``leadtier predict --reasons`` explains every scored customer; the worklist and the report explain only
their own rows (thousands, not the whole population): the features of just those customers are rebuilt
as of the predictions' date (RFM quintiles still rank against the whole customer base, as in training),
and the model that made the tiers gives each customer's SHAP values for its own tier
(:meth:`leadtier.models.scorer.TierScorer.reasons`).
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
from leadtier.pipelines.config import Config

log = logging.getLogger(__name__)


def model_uri(cfg: Config, rows: pd.DataFrame) -> str:
    """The model behind most of ``rows`` (their ``model_version``), else the champion's URI."""
    from leadtier.pipelines import tracking

    versions = rows["model_version"].dropna().astype(str) if "model_version" in rows.columns else pd.Series([])
    versions = versions[versions != ""]
    if len(versions):
        return f"models:/{cfg.mlflow.model_name}/{versions.value_counts().index[0]}"
    if not tracking.champion_version(tracking.setup(cfg), cfg):
        raise tracking.ModelLoadError(f"the predictions name no model version and {cfg.mlflow.model_name!r} has none")
    return tracking.champion_uri(cfg)


def features_of(cfg: Config, ids: list[str], as_of: dt.date) -> pd.DataFrame:
    """The feature rows of the customers ``ids`` of the scoring input (``predict.input``, else the customers
    table) as of ``as_of``, from the rows ``predict`` scores there; customers not found are absent."""
    from leadtier.pipelines import sources
    from leadtier.pipelines.console import quiet
    from leadtier.pipelines.features import POPULATION, build_in, check_families, connect, register_population
    from leadtier.pipelines.predict import register_scored_input

    check_families(cfg)
    spec = cfg.data.tables.customers
    if cfg.predict.input:
        spec = spec.model_copy(
            update={"files": [f.model_copy(update={"path": cfg.predict.input}) for f in spec.files[:1]]}
        )
    con = connect(cfg, extra_files=[fs.path for fs in spec.files])
    try:
        # RFM quintiles rank against what predict ranked against: the configured customers when a file
        # replaces them, else every row predict scored (not only the customers picked here)
        population = register_population(con, cfg) if cfg.predict.input else None
        with quiet(sources.log):  # predict has said what is wrong with these rows once
            register_scored_input(con, cfg, spec, as_of)
        if population is None:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {POPULATION} AS SELECT DISTINCT customer_id FROM customers")
            population = POPULATION
        con.register("reasons__ids", pd.DataFrame({"customer_id": pd.unique(pd.Series(ids, dtype=str))}))
        con.execute(
            "CREATE OR REPLACE TEMP TABLE customers__picked AS SELECT * FROM customers "
            "WHERE CAST(customer_id AS VARCHAR) IN (SELECT customer_id FROM reasons__ids)"
        )
        con.execute("CREATE OR REPLACE TEMP TABLE customers AS SELECT * FROM customers__picked")
        return build_in(con, cfg, as_of, None, population)
    finally:
        con.close()


def explain(cfg: Config, rows: pd.DataFrame, lang: str, scorer=None) -> pd.Series | None:
    """Reasons in plain words in ``lang`` for ``rows`` (customer_id, tier; model_version and as_of when
    known), aligned with ``rows``; '' for a customer whose features cannot be found. None, with a warning,
    when the model or the inputs cannot be read (the caller keeps what it has)."""
    from leadtier.pipelines import tracking
    from leadtier.pipelines.report import positions, scored_as_of

    if rows.empty:
        return pd.Series([], index=rows.index, dtype=object)
    try:
        if scorer is None:
            tracking.setup(cfg)
            scorer = tracking.load_model(model_uri(cfg, rows)).unwrap_python_model().scorer
        feats = features_of(cfg, rows["customer_id"].astype(str).tolist(), scored_as_of(cfg, rows))
    except (tracking.ModelLoadError, OSError, ValueError) as exc:
        log.warning("no plain-word reasons: %s", exc)
        return None
    pos = positions(feats["customer_id"], rows["customer_id"])
    known = set(scorer.classifier.classes_)
    ok = (pos >= 0) & rows["tier"].astype(str).isin(known).to_numpy()
    out = pd.Series("", index=rows.index, dtype=object)
    if ok.any():
        X = feats.iloc[pos[ok]].reset_index(drop=True)
        tiers = rows["tier"].astype(str).to_numpy()[ok]
        out[ok] = scorer.reasons(X, tiers, lang, currency=cfg.report.currency)
    return out

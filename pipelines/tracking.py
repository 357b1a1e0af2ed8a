"""MLflow at the edge: tracking store, model logging, registry aliases, and the champion gate's I/O (reading
the champion and its logged rows, setting the alias; the decision itself is :mod:`leadtier.models.gate`)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
from leadtier.models.frame import ID_COLUMN
from leadtier.models.gate import (
    CHALLENGER,
    CHAMPION,
    MIN_UNSEEN_ROWS,
    Comparison,
    GateDecision,
    GatePolicy,
    Paired,
    below_floors,
    rows_to_compare,
    verdict,
)
from leadtier.models.metrics import tier_metrics
from leadtier.models.scorer import TierScorer
from leadtier.pipelines.config import Config
from leadtier.pipelines.errors import UserError
from leadtier.pipelines.legacy_names import old_module_names
from leadtier.pipelines.mlflow_model import LeadtierModel
from leadtier.pipelines.orphans import COMPLETE
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

TRAIN_KEYS = "inputs/train_keys.parquet"  # the rows a registered model was fitted on (customer_id, snapshot)
EVAL_PREDICTIONS = "eval/predictions.parquet"  # the model's predictions for its evaluation rows (k-fold: out of fold)
log = logging.getLogger(__name__)


class ModelLoadError(UserError, RuntimeError):
    """A model URI cannot be resolved or loaded."""


def tracking_uri(cfg: Config) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or cfg.mlflow.tracking_uri


def check_store(cfg: Config, model_uri: str | None = None) -> None:
    """Before anything is written: a model of the registry or a run (``model_uri``, default the champion)
    in a local SQLite tracking store that does not exist is an error saying where the store was looked
    for; a relative path is read from the current folder, so a job started elsewhere finds none."""
    uri = tracking_uri(cfg)
    if not uri.startswith("sqlite:///") or (model_uri and not model_uri.startswith(("models:/", "runs:/"))):
        return
    path = Path(uri[len("sqlite:///") :])
    if not path.is_file():
        relative = "" if path.is_absolute() else f" ({uri} is relative to the current folder)"
        raise ModelLoadError(
            f"no MLflow tracking store at {path.resolve()}{relative}, so no model {model_uri or champion_uri(cfg)} "
            "to score with: run from the "
            "folder you trained in, or set MLFLOW_TRACKING_URI (or mlflow.tracking_uri) to the store train wrote"
        )


def setup(cfg: Config) -> MlflowClient:
    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if uri.startswith("sqlite:///") and client.get_experiment_by_name(cfg.mlflow.experiment) is None:
        # artifacts live beside the database, not in whatever folder the command runs from
        store = Path(uri[len("sqlite:///") :]).resolve().parent / "mlartifacts"
        client.create_experiment(cfg.mlflow.experiment, artifact_location=store.as_uri())
    mlflow.set_experiment(cfg.mlflow.experiment)
    return client


def champion_uri(cfg: Config) -> str:
    return f"models:/{cfg.mlflow.model_name}@{CHAMPION}"


NOT_READ_KEY = "leadtier_feature_columns_not_read"


def log_scorer(scorer: TierScorer, example: pd.DataFrame):
    """Log the scorer as a pyfunc with signature and input example (not registered: see ``register``)."""
    not_read = [c for c in example.columns if c not in scorer.input_columns and c != ID_COLUMN]
    example = example[scorer.input_columns].head(5).copy()
    # The input schema comes from the model, not from 5 example rows (a text column that happens to
    # be empty there must still be text): categoricals are strings, every number a double.
    cats = set(scorer.classifier.categories_)
    inputs = Schema([ColSpec("string" if c in cats else "double", c, required=False) for c in example.columns])
    for c in example.columns:
        example[c] = example[c].astype("object") if c in cats else example[c].astype("float64")
    with warnings.catch_warnings():  # the integer hint concerns segment_id in the output: never missing
        warnings.simplefilter("ignore", UserWarning)
        inferred = infer_signature(example, scorer.score(example), params={"lang": "en", "reasons": False, "n_jobs": 0})
    signature = ModelSignature(inputs=inputs, outputs=inferred.outputs, params=inferred.params)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scorer.joblib"
        joblib.dump(scorer, path)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=LeadtierModel(),
            artifacts={"scorer": str(path)},
            signature=signature,
            input_example=example,
            metadata={NOT_READ_KEY: not_read},  # the REST checks accept them: feature columns the model ignores
            pip_requirements=_requirements(),
        )


def register(model_uri: str, model_name: str) -> str:
    """Register the logged model as a new version of ``model_name``, tagged complete; returns its number.

    Called once the run has logged everything a version needs (its metrics, the rows it was fitted on,
    its evaluation predictions), so that a run killed before then leaves no version behind. MLflow prints
    what it did to stderr; it becomes INFO lines of this log, like the rest of the run."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            version = mlflow.register_model(model_uri, model_name, tags={COMPLETE: "true"}).version
    finally:  # also what it said before failing
        for line in said.getvalue().splitlines():
            if line.strip():
                log.info("registry: %s", line.strip())
    return str(version)


def _keys(rows: pd.DataFrame) -> pd.DataFrame:
    """Customer id (text) and snapshot (datetime) of ``rows``, as logged and compared."""
    return pd.DataFrame(
        {"customer_id": rows[ID_COLUMN].astype(str).to_numpy(), "snapshot": pd.to_datetime(rows["snapshot"]).to_numpy()}
    )


def _log_frame(frame: pd.DataFrame, artifact: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact).name
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), str(Path(artifact).parent))


def _logged_frame(client: MlflowClient, run_id: str, artifact: str, columns: list[str]) -> pd.DataFrame | None:
    """``columns`` of a Parquet file a run logged; None when it logged none, lacks one of them or is unreadable."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return pd.read_parquet(client.download_artifacts(run_id, artifact, tmp), columns=columns)
    except (MlflowException, OSError, ValueError, KeyError) as exc:  # absent, garbled, or other columns
        log.warning("run %s: no usable %s (%s)", run_id, artifact, str(exc).splitlines()[0][:200])
        return None


def log_train_keys(rows: pd.DataFrame) -> None:
    """Log which rows (customer id, snapshot date) the model of the active run was fitted on, so that a
    later champion gate can leave those rows out when it re-scores this model."""
    _log_frame(_keys(rows), TRAIN_KEYS)


def _logged_train_keys(client: MlflowClient, run_id: str) -> pd.DataFrame | None:
    """The training keys a run logged (``log_train_keys``); None when it logged none or they are unreadable."""
    return _logged_frame(client, run_id, TRAIN_KEYS, ["customer_id", "snapshot"])


def log_eval_predictions(rows: pd.DataFrame, proba: np.ndarray, pred: Sequence[str], codes: Sequence[str]) -> None:
    """Log the active run's model's predictions for its evaluation ``rows`` (customer id, snapshot, tier), so
    that a later k-fold champion gate can pair them with a new model's out-of-fold predictions."""
    frame = _keys(rows).assign(tier=rows["tier"].astype(str).to_numpy(), predicted=np.asarray(pred, dtype=str))
    for i, code in enumerate(codes):
        frame[f"proba_{code}"] = proba[:, i]
    _log_frame(frame, EVAL_PREDICTIONS)


def _paired_with_logged(
    client: MlflowClient,
    run_id: str,
    codes: Sequence[str],
    eval_keys: pd.DataFrame,
    eval_tiers: Sequence[str],
    new_scores: tuple[np.ndarray, Sequence[str]],
) -> tuple[Paired | None, str]:
    """The rows of ``eval_keys`` that run ``run_id`` logged predictions for, with both models' scores; or
    None and why not (it logged none, for other tiers, or for fewer than ``MIN_UNSEEN_ROWS`` of these rows)."""
    proba_cols = [f"proba_{c}" for c in codes]
    logged = _logged_frame(client, run_id, EVAL_PREDICTIONS, ["customer_id", "snapshot", "predicted", *proba_cols])
    if logged is None:  # a model registered before they were logged, or for other tiers
        return None, f"the champion's run logged no predictions for the tiers {list(codes)}"
    if not set(logged["predicted"].astype(str)) <= set(codes):
        return None, f"the champion's logged predictions include tiers outside {list(codes)}"
    logged = logged.drop_duplicates(["customer_id", "snapshot"])
    index = pd.MultiIndex.from_arrays([logged["customer_id"].astype(str), pd.to_datetime(logged["snapshot"])])
    keys = _keys(eval_keys)
    pos = index.get_indexer(pd.MultiIndex.from_arrays([keys["customer_id"], keys["snapshot"]]))
    both = pos >= 0
    if both.sum() < MIN_UNSEEN_ROWS:
        return None, (
            f"the champion's logged predictions cover {int(both.sum())} of the {len(both)} evaluation rows, "
            f"fewer than {MIN_UNSEEN_ROWS}"
        )
    mine = logged.iloc[pos[both]]
    new_proba, new_pred = new_scores
    paired = Paired(
        tiers=[t for t, b in zip(eval_tiers, both, strict=True) if b],
        new=(new_proba[both], [p for p, b in zip(new_pred, both, strict=True) if b]),
        champion=(mine[proba_cols].to_numpy(), mine["predicted"].astype(str).tolist()),
    )
    return paired, ""


def _requirements() -> list[str]:
    from importlib.metadata import version

    pkgs = ["mlflow", "lightgbm", "catboost", "scikit-learn", "pandas", "numpy", "pydantic", "joblib", "scipy"]
    return [f"{p}=={version(p)}" for p in pkgs]


def champion_version(client: MlflowClient, cfg: Config) -> str:
    """The champion's version; '' when the model or its champion alias does not exist (other registry
    errors, such as an unreachable tracking server, raise)."""
    try:
        return str(client.get_model_version_by_alias(cfg.mlflow.model_name, CHAMPION).version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "alias" in exc.message:
            return ""
        raise ModelLoadError(
            f"cannot look up the champion of {cfg.mlflow.model_name!r}: {exc.message.splitlines()[0]}"
        ) from None


def champion_segmenter(client: MlflowClient, cfg: Config):
    """The current champion's segmenter, so that retrained segments keep their names; None if none."""
    try:
        client.get_model_version_by_alias(cfg.mlflow.model_name, CHAMPION)
    except MlflowException:
        return None
    try:
        return load_model(champion_uri(cfg)).unwrap_python_model().scorer.segmenter
    except (ModelLoadError, AttributeError) as exc:
        log.warning("segments not aligned with the champion's: %s", exc)
        return None


def load_model(uri: str):
    """Load a pyfunc model, turning every failure into one error that names the URI.

    Models registered before the ``leadtier`` namespace load too (see :mod:`.legacy_names`)."""
    try:
        with old_module_names():
            return mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        raise ModelLoadError(f"cannot load model {uri}: {exc.message.splitlines()[0]}") from None
    except Exception as exc:  # a missing, truncated or garbled artifact (pickle, YAML, ...): name it
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ModelLoadError(f"cannot load model {uri}: {type(exc).__name__}: {first}") from exc


def resolve_version(client: MlflowClient, uri: str) -> str:
    """The registry version behind ``models:/name@alias`` or ``models:/name/3``; '' otherwise."""
    if not uri.startswith("models:/"):
        return ""
    ref = uri[len("models:/") :]
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return str(client.get_model_version_by_alias(name, alias).version)
        name, _, ver = ref.partition("/")
        return str(client.get_model_version(name, ver).version)
    except MlflowException as exc:
        raise ModelLoadError(f"cannot resolve model {uri}: {exc.message.splitlines()[0]}") from None


class ChampionCannotCompete(Exception):
    """The current champion cannot be evaluated on the current evaluation data (features, tier scheme or
    logged metrics changed since it was trained)."""


def read_only(model, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the columns the pyfunc ``model``'s input signature lacks (feature-table columns
    the model does not read, the id): MLflow would drop them with a warning on every call."""
    meta = getattr(model, "metadata", None)  # a pyfunc model has it
    schema = meta.get_input_schema() if meta is not None else None
    if schema is None or not schema.has_input_names():
        return frame
    names = set(schema.input_names())
    return frame[[c for c in frame.columns if c in names]]


def _champion_scores(model, cfg: Config, features: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The champion's output and tier probabilities (columns in ``cfg.scheme.codes`` order) for ``features``."""
    try:
        scored = model.predict(read_only(model, features))
        proba = scored[[f"proba_{c}" for c in cfg.scheme.codes]].to_numpy()
    except (MlflowException, KeyError, ValueError) as exc:  # input schema, feature columns or tier levels changed
        raise ChampionCannotCompete(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from exc
    unknown = set(scored["tier"]) - set(cfg.scheme.codes)
    if unknown:
        raise ChampionCannotCompete(f"it predicts tiers {sorted(unknown)} outside the scheme {cfg.scheme.codes}")
    return scored, proba


def _kfold_comparison(
    client: MlflowClient,
    cfg: Config,
    run,
    eval_tiers: list[str],
    eval_keys: pd.DataFrame | None,
    new_scores: tuple[np.ndarray, list[str]] | None,
) -> Comparison:
    """The champion's out-of-sample figures when the new model was fitted on the evaluation rows (k-fold,
    train.refit): both models' held-out scores on the rows the champion's run logged predictions for, or
    else the champion's logged held-out metrics."""
    run_id, primary, codes = run.info.run_id, cfg.train.primary_metric, cfg.scheme.codes
    old = {k[len("test_") :]: v for k, v in run.data.metrics.items() if k.startswith("test_")}
    if primary not in old:
        raise ChampionCannotCompete(f"its run {run_id} logged no test_{primary}")
    paired, why = None, "no scores of the new model were given"
    if eval_keys is not None and new_scores is not None:  # its logged predictions, row by row
        paired, why = _paired_with_logged(client, run_id, codes, eval_keys, eval_tiers, new_scores)
    if paired is not None:
        on_pairs = [tier_metrics(paired.tiers, p, codes, y_pred=t) for p, t in (paired.champion, paired.new)]
        if all(np.isfinite(m.get(primary, np.nan)) for m in on_pairs):
            note = (
                f"compared on the {len(paired.tiers)} of {len(eval_tiers)} evaluation rows that the champion's "
                "logged out-of-sample predictions also cover (both models' scores from models that did not train "
                "on them)"
            )
            return Comparison(on_pairs[0], note, on_pairs[1], paired)
        why = f"{primary} is undefined on the {len(paired.tiers)} rows both models scored"
    note = f"compared with the champion's logged out-of-sample metrics ({why})"
    return Comparison(old, note, None, None, why)


def _competing_champion(client: MlflowClient, cfg: Config, current):
    """The champion's run and loaded model; :class:`ChampionCannotCompete` when it was trained for another
    tier scheme or cannot be loaded."""
    run = client.get_run(current.run_id)
    scheme = run.data.params.get("scheme")
    if scheme is not None and scheme != cfg.labels.scheme:
        raise ChampionCannotCompete(f"it was trained for the tier scheme {scheme!r}, not {cfg.labels.scheme!r}")
    try:
        return run, load_model(f"models:/{cfg.mlflow.model_name}/{current.version}")
    except ModelLoadError as exc:  # artifacts gone, garbled, or code it needs is missing
        raise ChampionCannotCompete(str(exc)) from exc


def _champion_metrics(
    client: MlflowClient,
    cfg: Config,
    current,
    eval_features: pd.DataFrame,
    eval_tiers: list[str],
    refit_on_eval: bool,
    eval_keys: pd.DataFrame | None = None,
    new_scores: tuple[np.ndarray, list[str]] | None = None,
    new_train_keys: pd.DataFrame | None = None,
) -> Comparison:
    """The current champion's metrics on the evaluation rows, how they were obtained, the new model's
    metrics on the same rows when these are fewer than all of them, and both models' scores on the rows
    they can be paired on.

    Rows the champion was fitted on (its run's ``inputs/train_keys.parquet``) and the new model was not
    (``new_train_keys``) are left out of the comparison, for both models, when ``eval_keys`` and
    ``new_scores`` are given.
    Raises :class:`ChampionCannotCompete` when the champion was trained for another tier scheme, cannot
    be loaded, or cannot score the current feature table.
    """
    run, model = _competing_champion(client, cfg, current)
    n, primary = len(eval_tiers), cfg.train.primary_metric
    keep, note = np.ones(n, dtype=bool), ""
    kfold = cfg.train.evaluation == "kfold"
    if eval_keys is not None and new_scores is not None and not kfold:
        champion_keys = _logged_train_keys(client, current.run_id)
        keep, note = rows_to_compare(
            champion_keys, eval_keys, new_train_keys, by_customer=cfg.labels.source != "outcome"
        )
    if refit_on_eval and (kfold or (note and keep.all())):
        # k-fold, or a refitted champion that saw (nearly) all these rows: both models' out-of-sample scores
        _champion_scores(model, cfg, eval_features.head(100))  # ... once it is known to score these features
        return _kfold_comparison(client, cfg, run, eval_tiers, eval_keys, new_scores)

    def paired_on(rows: np.ndarray, scored: pd.DataFrame, proba: np.ndarray) -> Paired | None:
        if new_scores is None:
            return None
        new_proba, new_pred = new_scores
        return Paired(
            tiers=[t for t, k in zip(eval_tiers, rows, strict=True) if k],
            new=(new_proba[rows], [p for p, k in zip(new_pred, rows, strict=True) if k]),
            champion=(proba, scored["tier"].astype(str).tolist()),
        )

    if not keep.all():
        paired = paired_on(keep, *_champion_scores(model, cfg, eval_features[keep]))
        (old_proba, old_pred), (new_proba, new_pred) = paired.champion, paired.new
        old = tier_metrics(paired.tiers, old_proba, cfg.scheme.codes, y_pred=old_pred)
        new = tier_metrics(paired.tiers, new_proba, cfg.scheme.codes, y_pred=new_pred)
        if all(np.isfinite(m.get(primary, np.nan)) for m in (old, new)):
            return Comparison(old, note, new, paired)
        note = (
            f"{primary} is undefined on the {len(paired.tiers)} evaluation rows the champion did not train on "
            f"(tiers there: {sorted(set(paired.tiers))}), so both are compared on all {n} rows, which favours the "
            "champion"
        )
    scored, proba = _champion_scores(model, cfg, eval_features)
    old = tier_metrics(eval_tiers, proba, cfg.scheme.codes, y_pred=scored["tier"].tolist())
    return Comparison(old, note, None, paired_on(np.ones(n, dtype=bool), scored, proba))


def gate_policy(cfg: Config) -> GatePolicy:
    """The champion gate's rules in ``cfg``: ``train.primary_metric``, ``train.gate``, ``train.floors``."""
    t = cfg.train
    return GatePolicy(
        primary=t.primary_metric,
        codes=tuple(cfg.scheme.codes),
        min_gain=t.gate.min_gain,
        interval=t.gate.interval,
        resamples=t.bootstrap_resamples,
        seed=cfg.seed,
        floors={m: v for m, v in t.floors.model_dump().items() if v is not None},
    )


def champion_gate(
    client: MlflowClient,
    cfg: Config,
    new_version: str,
    new_metrics: dict[str, float],
    eval_features: pd.DataFrame,
    eval_tiers: list[str],
    refit_on_eval: bool = False,
    eval_keys: pd.DataFrame | None = None,
    new_scores: tuple[np.ndarray, list[str]] | None = None,
    new_train_keys: pd.DataFrame | None = None,
) -> GateDecision:
    """Give the new version ``champion`` if it passes ``train.floors`` and beats the current champion
    on the same evaluation rows by the primary metric (a tie keeps the champion), by more than
    ``train.gate.min_gain`` and, with ``train.gate.interval``, with the whole 95 % paired-bootstrap interval
    of the gain above that margin; otherwise ``challenger``. Sets the alias and says why, metric by metric.

    Given ``eval_keys`` (customer id and snapshot of each evaluation row) and ``new_scores`` (the new
    model's probabilities and tiers for them), rows the champion was fitted on and the model that scored
    them (trained on ``new_train_keys``) was not are left out. With ``refit_on_eval`` (the new registered
    model was fitted on the evaluation rows too: k-fold, train.refit) the champion's own logged
    out-of-sample scores are compared instead, in k-fold always, otherwise when fewer than
    ``MIN_UNSEEN_ROWS`` rows it did not train on are left (a champion refitted on the same data).
    """
    name = cfg.mlflow.model_name
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    decision, policy = GateDecision(alias=CHAMPION), gate_policy(cfg)
    failed = below_floors(policy, new_metrics)
    if failed:
        decision.alias = CHALLENGER
        decision.reasons.append("not promoted: " + "; ".join(failed) + " (train.floors)")
    elif current is None:
        decision.reasons.append("no champion yet: the first model becomes champion")
    elif str(current.version) == str(new_version):
        decision.reasons.append("this version already is the champion")
    else:
        decision.champion_version = str(current.version)
        try:
            comp = _champion_metrics(
                client, cfg, current, eval_features, eval_tiers, refit_on_eval, eval_keys, new_scores, new_train_keys
            )
        except ChampionCannotCompete as exc:
            decision.reasons.append(
                f"champion v{current.version} cannot compete on the current evaluation data ({exc}); "
                "the new model replaces it"
            )
        else:
            decision.alias, decision.champion_metrics = verdict(policy, comp, new_metrics, current.version, decision)
    client.set_registered_model_alias(name, decision.alias, str(new_version))
    return decision

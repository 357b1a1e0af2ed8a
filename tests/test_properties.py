"""Property tests: ``predict`` on strange customer files, the classifier and metrics on random frames.

``predict.run`` either reconciles (``input rows = scored + rejected``, every tier in the scheme) or
raises a documented user error (InputError, RejectShareError); never anything else. The model is the
tiny one trained once per session in ``tests/test_faults.py``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from leadtier.models.classifier import TierClassifier
from leadtier.models.metrics import tier_metrics
from leadtier.pipelines import predict as predict_stage
from leadtier.pipelines import tracking
from leadtier.pipelines.predict import RejectShareError
from leadtier.pipelines.sources import InputError
from leadtier.pipelines.synthetic_crm import COMPANY_SIZES, INDUSTRIES, LEAD_SOURCES, REGIONS
from leadtier.pipelines.train import TrainingDataError, attach_labels, check_minimum

from tests.test_faults import build_world, world_env

pytestmark = pytest.mark.slow

PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_world(tmp_path_factory)
    real, cache = tracking.load_model, {}

    def load_once(uri: str):  # the same registered model for every example: load it once
        if uri not in cache:
            cache[uri] = real(uri)
        return cache[uri]

    with world_env(w.work), pytest.MonkeyPatch.context() as mp:
        mp.setattr(tracking, "load_model", load_once)
        yield w


# --------------------------------------------------------------------------- customer files

BAD_DATES = ("not a date", "2026-02-30", "2026-13-01")


def _long(min_size: int, max_size: int):
    """A long string made of a short random unicode piece repeated."""
    return st.builds(lambda piece, n: (piece * n)[:n], st.text(min_size=1, max_size=4), st.integers(min_size, max_size))


texts = st.text(max_size=12)
ids = st.one_of(st.none(), texts, _long(200, 3000), st.sampled_from(["C0000002", "C0000003", "客户-01", ""]))
dates = st.one_of(
    st.none(), st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)), st.dates(dt.date(2020, 1, 1), dt.date(2026, 6, 29))
)
numbers = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, -1.0, 0.0, 5e-324, -0.0])
)


def _attribute(levels):
    return st.one_of(st.none(), st.just(""), st.sampled_from(levels), texts, _long(9_000, 10_000))


COLUMNS = [
    "customer_id",
    "created_at",
    "lead_source",
    "industry",
    "company_size",
    "region",
    "annual_revenue_musd",
    "contact_name",
]
rows = st.fixed_dictionaries(
    {
        "customer_id": ids,
        "created_at": dates,
        "lead_source": _attribute(LEAD_SOURCES),
        "industry": _attribute(INDUSTRIES),
        "company_size": _attribute(COMPANY_SIZES),
        "region": _attribute(REGIONS),
        "annual_revenue_musd": numbers,
        "contact_name": st.one_of(st.none(), texts),
    }
)


def _write(frame: pd.DataFrame, path, bad_date: str | None):
    frame = frame.copy()
    if path.suffix == ".csv" or bad_date is not None:  # text dates (a Parquet column has one type)
        frame["created_at"] = [d.isoformat() if isinstance(d, dt.date) else d for d in frame["created_at"]]
    if bad_date is not None and len(frame):
        frame.loc[frame.index[-1], "created_at"] = bad_date
    frame["annual_revenue_musd"] = frame["annual_revenue_musd"].astype("float64")
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


_counter = itertools.count()
_PLAIN_TEXT = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. ")


def _plain(frame: pd.DataFrame) -> bool:
    """Rows a CSV reader has no excuse to stumble on: ids and texts of letters, digits, spaces and _-.
    (no quotes, delimiters, line breaks or other characters), under 100 characters; dates; numbers."""
    if frame.empty:
        return False  # a header only: DuckDB cannot sniff column types from no rows
    for value in frame.to_numpy().ravel():
        if isinstance(value, str) and (not value.strip() or len(value) >= 100 or set(value) - _PLAIN_TEXT):
            return False
    return True


@PROPS
@given(
    data=st.lists(rows, max_size=8),
    fmt=st.sampled_from([".csv", ".parquet"]),
    out_fmt=st.sampled_from([".parquet", ".csv"]),
    bad_date=st.one_of(st.none(), st.none(), st.sampled_from(BAD_DATES)),
    max_share=st.sampled_from([0.05, 0.5, 1.0]),
)
@example(data=[], fmt=".csv", out_fmt=".parquet", bad_date=None, max_share=0.05)
@example(  # a plain, valid CSV: it must be scored, never called unreadable
    data=[
        {
            "customer_id": "C9",
            "created_at": dt.date(2026, 1, 2),
            "lead_source": "web_form",
            "industry": "retail",
            "company_size": "1-10",
            "region": "north",
            "annual_revenue_musd": 1.5,
            "contact_name": "Ann",
        }
    ],
    fmt=".csv",
    out_fmt=".csv",
    bad_date=None,
    max_share=0.05,
)
@example(
    data=[
        {
            "customer_id": "x" * 5000,
            "created_at": dt.date(1, 1, 1),
            "lead_source": "ü" * 10_000,
            "industry": "",
            "company_size": None,
            "region": "overseas",
            "annual_revenue_musd": float("nan"),
            "contact_name": "Zoë",
        }
    ],
    fmt=".parquet",
    out_fmt=".csv",
    bad_date=None,
    max_share=1.0,
)
@example(  # no created_at at all: a Parquet column of nulls (typed as a number) is missing dates, not an error
    data=[{"customer_id": "a"}, {"customer_id": "b"}],  # absent keys: pandas makes NaN (DOUBLE) columns
    fmt=".parquet",
    out_fmt=".parquet",
    bad_date=None,
    max_share=1.0,
)
@example(  # a carriage return as an id, rejected: the rejects CSV must still read back row for row
    data=[{c: None for c in COLUMNS}, {"customer_id": "\r", "created_at": dt.date(2027, 1, 1)}],
    fmt=".parquet",
    out_fmt=".parquet",
    bad_date=None,
    max_share=1.0,
)
@example(  # an unparseable date on a row rejected anyway (no id): rejected once, with the first reason
    data=[{c: None for c in COLUMNS}],
    fmt=".csv",
    out_fmt=".parquet",
    bad_date="not a date",
    max_share=1.0,
)
def test_predict_reconciles_or_raises_a_user_error(world, tmp_path, data, fmt, out_fmt, bad_date, max_share):
    frame = pd.DataFrame(data, columns=COLUMNS)
    run_dir = tmp_path / f"ex{next(_counter)}"
    run_dir.mkdir()
    path = run_dir / f"customers{fmt}"
    _write(frame, path, bad_date)
    out = run_dir / f"pred{out_fmt}"
    cfg = world.config()
    cfg.predict.max_reject_share = max_share
    try:
        res = predict_stage.run(cfg, input_path=str(path), output=str(out), progress=False)
    except InputError as exc:
        msg = str(exc)
        assert str(path) in msg and not out.exists()
        if "the scoring input has no rows" in msg:  # nothing to score must not replace the last predictions
            assert frame.empty, msg
        elif "cannot be read as customers data" in msg or "cannot split the rows into columns" in msg:
            # DuckDB could not sniff a strange CSV (a line that seems to have another field count): a clear error,
            assert fmt == ".csv" and not _plain(frame), msg  # but never for Parquet or a plain, valid CSV
        else:  # more unparseable dates than max_reject_share allows: the column, not the rows, is wrong
            assert bad_date is not None and len(frame) and "'created_at'" in msg, msg
            assert "max_reject_share" in msg and 1 > max_share * len(frame), msg
        return
    except RejectShareError as exc:
        assert "max_reject_share" in str(exc) and str(out.with_name("pred.rejects.csv")) in str(exc)
        assert not out.exists()
        return
    assert res.input_rows == len(frame)
    assert res.scored + res.rejected + res.skipped == res.input_rows
    assert sum(res.reasons.values()) == res.rejected + res.skipped
    assert res.rejected / max(res.input_rows, 1) <= max_share
    scored = (
        pd.read_parquet(out)
        if out_fmt == ".parquet"
        else pd.read_csv(out, dtype={"customer_id": str}, keep_default_na=False)
    )
    assert len(scored) == res.scored
    if res.scored:
        codes = cfg.scheme.codes
        assert scored["tier"].isin(codes).all()
        assert scored["score"].between(0, 100).all()
        assert np.allclose(scored[[f"proba_{c}" for c in codes]].sum(axis=1), 1, atol=1e-4)
        assert set(scored["customer_id"]) <= set(frame["customer_id"].dropna().astype(str))
    if res.rejected or res.skipped:
        rejects = pd.read_csv(res.rejects)
        assert len(rejects) == res.rejected + res.skipped and rejects["reason"].notna().all()
    else:
        assert not res.rejects.exists()
    if bad_date is not None and len(frame):  # the row with the unparseable date (the last) is never scored
        assert res.rejected and len(frame) in set(pd.read_csv(res.rejects)["input_row"]), (
            "an unparseable date was scored"
        )


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param(["1.5", "2.5", "3"], id="fractions-stay-distinct"),
        pytest.param(["1e30", "1", "2"], id="out-of-range"),
        pytest.param(["007", "7", "0007"], id="leading-zeros"),
    ],
)
def test_numeric_looking_ids(world, tmp_path, ids):
    frame = pd.read_csv(world.prospects).head(3)
    frame["customer_id"] = ids
    path = tmp_path / "numeric_ids.csv"
    frame.to_csv(path, index=False)
    cfg = world.config()
    cfg.predict.max_reject_share = 1.0
    res = predict_stage.run(cfg, input_path=str(path), output=str(tmp_path / "p.parquet"), progress=False)
    assert set(pd.read_parquet(res.output)["customer_id"]) == set(ids)  # ids are text, kept as written


# --------------------------------------------------------------------------- classifier and metrics

LEVELS = ("A", "B", "C", "D", "E")


@st.composite
def feature_frames(draw, min_rows=2, max_rows=30):
    n = draw(st.integers(min_rows, max_rows))
    floats = st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")))
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "x1": draw(st.lists(floats, min_size=n, max_size=n)),
            "x2": draw(st.lists(floats, min_size=n, max_size=n)),
            "cat": draw(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "ç"])), min_size=n, max_size=n)),
        }
    )
    return frame


@PROPS
@given(frame=feature_frames(), tier=st.sampled_from(LEVELS), calibration=st.sampled_from(["none", "temperature"]))
def test_classifier_refuses_a_single_tier(frame, tier, calibration):
    clf = TierClassifier(levels=LEVELS, n_estimators=5, calibration=calibration)
    with pytest.raises(ValueError, match=rf"single tier \['{tier}'\]; a classifier needs two or more"):
        clf.fit(frame, [tier] * len(frame))


@PROPS
@given(frame=feature_frames(min_rows=3), data=st.data())
def test_classifier_refuses_missing_tiers_and_scores_absent_levels_zero(frame, data):
    y = data.draw(st.lists(st.sampled_from(LEVELS[:4]), min_size=len(frame), max_size=len(frame)))
    holes = data.draw(st.lists(st.integers(0, len(frame) - 1), min_size=1, max_size=3))
    with_holes = [None if i in holes else t for i, t in enumerate(y)]
    with pytest.raises(ValueError, match="missing tier"):
        TierClassifier(levels=LEVELS, n_estimators=5).fit(frame, with_holes)
    assume(len(set(y)) >= 2)
    clf = TierClassifier(levels=LEVELS, n_estimators=5, calibration="none").fit(frame, y)
    proba = clf.predict_proba(frame)
    assert proba.shape == (len(frame), len(LEVELS))
    assert np.allclose(proba.sum(axis=1), 1)
    absent = [i for i, c in enumerate(LEVELS) if c not in set(y)]
    assert (proba[:, absent] == 0).all()
    assert set(clf.predict(frame)) <= set(y)


def test_two_of_five_tiers_present():
    frame = pd.DataFrame({"x": np.arange(40, dtype=float)})
    y = ["A"] * 20 + ["C"] * 20
    clf = TierClassifier(levels=LEVELS, n_estimators=5, calibration="none").fit(frame, y)
    proba = clf.predict_proba(frame)
    assert np.allclose(proba.sum(axis=1), 1) and (proba[:, [1, 3, 4]] == 0).all()


@PROPS
@given(data=st.data(), k=st.integers(2, 5))
def test_tier_metrics_are_bounded(data, k):
    levels = list(LEVELS[:k])
    n = data.draw(st.integers(1, 40))
    y = data.draw(st.lists(st.sampled_from(levels), min_size=n, max_size=n))
    raw = data.draw(st.lists(st.lists(st.floats(0, 1), min_size=k, max_size=k), min_size=n, max_size=n))
    proba = np.asarray(raw) + 1e-9
    proba = proba / proba.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():  # sklearn warns about undefined metrics on degenerate rows
        warnings.simplefilter("ignore")
        m = tier_metrics(y, proba, levels)
    for key in ("macro_f1", "balanced_accuracy", "accuracy", "ece"):
        assert 0 <= m[key] <= 1, (key, m[key])
    assert 0 <= m["brier"] <= 2 and m["log_loss"] >= 0
    pred = proba.argmax(axis=1)
    single = len(set(y) | {levels[i] for i in pred}) == 1
    # qwk is undefined (NaN) only when truth and prediction are one and the same tier
    assert (math.isnan(m["qwk"]) and single) or -1 <= m["qwk"] <= 1, (m["qwk"], y, pred)
    with pytest.raises(ValueError, match="not levels of the scheme"):
        tier_metrics([*y[:-1], "Z"], proba, levels)
    with pytest.raises(ValueError, match="proba must have shape"):
        tier_metrics(y, proba[:, :-1], levels)


# --------------------------------------------------------------------------- labels


@PROPS
@given(n=st.integers(1, 30), data=st.data())
def test_unlabelled_customers_stop_training_with_a_clear_error(world, n, data):
    cfg = world.config()
    feats = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "x": np.arange(n, dtype=float)})
    labelled = data.draw(st.lists(st.sampled_from(feats["customer_id"].tolist()), max_size=n))
    missing = data.draw(st.sampled_from([None, np.nan]))
    labels = pd.DataFrame({"customer_id": labelled, "tier": [missing] * len(labelled)}, dtype=object)
    if labels.empty:  # no label rows at all: attach_labels says so
        with pytest.raises(TrainingDataError, match="no labels"):
            attach_labels(cfg, feats, labels)
        return
    # label rows whose tier is missing: nothing to learn from; attach_labels keeps no row and the
    # per-tier minimum (checked by every evaluation protocol) stops training with the counts
    data_rows = attach_labels(cfg, feats, labels)
    assert data_rows.empty and "tier" in data_rows.columns
    with pytest.raises(TrainingDataError, match=r"too few labelled customers per tier .*'A': 0"):
        check_minimum(cfg, data_rows["tier"])

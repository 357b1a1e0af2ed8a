"""Hostile input and faults, second round: formulas in CSV outputs, failed writes, long values in logs,
config SQL that reaches for other files, and predict runs that are killed or run side by side.

Shares the tiny trained world of ``tests/test_faults.py`` (one registered champion).
"""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from leadtier.pipelines import predict as predict_stage
from leadtier.pipelines.cli import app
from typer.testing import CliRunner

from tests.test_faults import _prospects, build_world, world_env

pytestmark = pytest.mark.slow

runner = CliRunner()
FORMULAS = ['=HYPERLINK("http://x")', "+1+2", "-3+4", "@SUM(A1)", "\tTAB", "\rCR"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_world(tmp_path_factory)
    with world_env(w.work):
        yield w


def _cli(*args: str):
    return runner.invoke(app, list(args))


def _cells(path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def _hostile_prospects(world, n: int = 20) -> pd.DataFrame:
    frame = _prospects(world, n)
    frame["customer_id"] = frame["customer_id"].astype(object)
    for i, f in enumerate(FORMULAS):
        frame.loc[i, "customer_id"] = f + f"-{i}"
        frame.loc[i, "region"] = f  # never seen in training: named in the drift file
    return pd.concat([frame, frame.head(len(FORMULAS))], ignore_index=True)  # duplicates: a rejects file


# --------------------------------------------------------------------------- item 3: no formulas in CSVs


def test_csv_outputs_never_start_a_cell_with_a_formula_and_parquet_keeps_values(world, tmp_path):
    cfg = world.config()
    cfg.predict.max_reject_share = 0.5
    src = tmp_path / "hostile.parquet"
    _hostile_prospects(world).to_parquet(src, index=False)  # Parquet: a lone CR in a CSV cell is another matter
    ids = [f + f"-{i}" for i, f in enumerate(FORMULAS)]

    res_csv = predict_stage.run(cfg, input_path=str(src), output=str(tmp_path / "p.csv"), progress=False)
    assert res_csv.rejected == len(FORMULAS)
    res_csv = predict_stage.run(cfg, input_path=str(src), output=str(tmp_path / "p.csv"), progress=False)  # migration
    written = [tmp_path / f"p.{k}" for k in ("csv", "rejects.csv", "drift.csv", "migration.csv")]
    assert all(p.is_file() for p in written)
    for path in written:
        cells = _cells(path)
        bad = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert not bad, f"{path.name}: live formulas {bad[:5]}"
    pred = pd.read_csv(tmp_path / "p.csv", dtype={"customer_id": str})
    for i in ids:  # neutralised, not dropped: a leading ' then the value as it was
        assert "'" + i in set(pred["customer_id"]), i
    rejects = pd.read_csv(tmp_path / "p.rejects.csv", dtype={"customer_id": str})
    assert sorted(rejects["customer_id"]) == sorted("'" + i for i in ids)
    drift = pd.read_csv(tmp_path / "p.drift.csv").set_index("feature")
    assert drift.loc["cust_region", "unseen_examples"].startswith("'")
    migration = pd.read_csv(tmp_path / "p.migration.csv", dtype={"customer_id": str})
    assert (migration.loc[migration["customer_id"].isin(["'" + i for i in ids]), "change"] == "unchanged").all()

    res_pq = predict_stage.run(cfg, input_path=str(src), output=str(tmp_path / "p.parquet"), progress=False)
    exact = pd.read_parquet(res_pq.output)
    assert set(ids) <= set(exact["customer_id"])  # Parquet: the values exactly as given
    numbers = pd.read_csv(tmp_path / "p.csv")["score"]
    assert numbers.dtype.kind == "f"  # numbers are never prefixed


def test_a_features_csv_is_neutralised_too(world, tmp_path):
    from leadtier.pipelines.outputs import neutralise_formulas, write_table

    frame = pd.DataFrame({"customer_id": ["=1+1", "ok", None], "x": [-1.5, 2.0, None], "cat": ["@a", "-b", "c"]})
    write_table(frame, tmp_path / "f.csv")
    with open(tmp_path / "f.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[1] == ["'=1+1", "-1.5", "'@a"] and rows[2] == ["ok", "2.0", "'-b"]
    write_table(frame, tmp_path / "f.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "f.parquet"), frame)
    assert neutralise_formulas(frame)["customer_id"].tolist()[:2] == ["'=1+1", "ok"]

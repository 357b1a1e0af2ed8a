"""Claims of README.md and docs/ that no other test could fail: the champion gate's fallbacks (a champion
that cannot be loaded, fewer than 30 rows left, an undefined metric), PSI values and the psi_warning
threshold, migration labels and score trends, a config with several wrong keys, and failed runs that
leave an earlier output as it was. Small hand-made inputs; no model is trained here."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from leadtier.models.drift import DriftAccumulator, migration, psi, reference_profile
from leadtier.models.gate import MIN_UNSEEN_ROWS, rows_to_compare
from leadtier.models.metrics import tier_metrics
from leadtier.pipelines import tracking
from leadtier.pipelines.cli import app
from leadtier.pipelines.config import ConfigError, load_config
from typer.testing import CliRunner

from tests.conftest import DEMO_CONFIG, REPO

runner = CliRunner()

# --------------------------------------------------------------------------- the champion gate's fallbacks


def _keys(ids) -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": [str(i) for i in ids], "snapshot": [pd.Timestamp("2026-06-30").date()] * len(ids)}
    )


@pytest.mark.parametrize("seen", [100 - MIN_UNSEEN_ROWS, 100 - MIN_UNSEEN_ROWS + 1])
def test_thirty_rows_left_are_compared_on_and_twenty_nine_fall_back_to_all_rows(seen):
    keep, note = rows_to_compare(_keys(range(seen)), _keys(range(100)), None, by_customer=True)
    left = 100 - seen
    if left >= 30:
        assert keep.tolist() == [False] * seen + [True] * left
        assert note == f"compared on the {left} of 100 evaluation rows the champion did not train on"
    else:
        assert keep.all()
        assert note == (
            f"the champion trained on {seen} of the 100 evaluation rows; fewer than 30 are left, so both are "
            "compared on all of them, which favours the champion"
        )


class _Client:
    """The registry calls champion_gate makes, for a champion v1 of run r1."""

    def __init__(self, scheme: str):
        self.scheme, self.aliases = scheme, []

    def get_model_version_by_alias(self, name, alias):
        return SimpleNamespace(version="1", run_id="r1")

    def get_run(self, run_id):
        return SimpleNamespace(
            info=SimpleNamespace(run_id=run_id), data=SimpleNamespace(params={"scheme": self.scheme}, metrics={})
        )

    def set_registered_model_alias(self, name, alias, version):
        self.aliases.append((alias, version))


class _Model:
    """A champion that predicts ``tiers`` (row ``i`` of the features gets ``tiers[i]``)."""

    def __init__(self, tiers: list[str], codes: list[str]):
        self.tiers, self.codes = tiers, codes

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        tiers = [self.tiers[i] for i in features["i"]]
        out = pd.DataFrame({"tier": tiers})
        for c in self.codes:
            out[f"proba_{c}"] = [0.6 if t == c else 0.4 / (len(self.codes) - 1) for t in tiers]
        return out


def _scores(pred: list[str], codes: list[str]) -> tuple[np.ndarray, list[str]]:
    proba = np.full((len(pred), len(codes)), 0.4 / (len(codes) - 1))
    proba[np.arange(len(pred)), [codes.index(p) for p in pred]] = 0.6
    return proba, pred


def _gate(monkeypatch, cfg, tiers, champion_pred, new_pred, champion_trained_on, load=None):
    codes = cfg.scheme.codes
    client = _Client(cfg.labels.scheme)
    monkeypatch.setattr(tracking, "load_model", load or (lambda uri: _Model(champion_pred, codes)))
    monkeypatch.setattr(tracking, "_logged_train_keys", lambda client, run_id: _keys(champion_trained_on))
    new_scores = _scores(new_pred, codes)
    new_metrics = tier_metrics(tiers, new_scores[0], codes, y_pred=new_pred)
    features = pd.DataFrame({"i": range(len(tiers))})
    decision = tracking.champion_gate(
        client, cfg, "2", new_metrics, features, tiers, eval_keys=_keys(range(len(tiers))), new_scores=new_scores
    )
    return decision, client


def test_a_champion_that_cannot_be_loaded_is_replaced_and_the_run_says_why(monkeypatch):
    cfg = load_config(DEMO_CONFIG)
    tiers = ["A", "B", "C", "D", "E"] * 20

    def unloadable(uri):
        raise tracking.ModelLoadError(f"cannot load model {uri}: python_model.pkl is truncated")

    decision, client = _gate(monkeypatch, cfg, tiers, tiers, tiers, [], load=unloadable)
    assert decision.alias == "champion" and client.aliases == [("champion", "2")]
    assert decision.reasons == [
        "champion v1 cannot compete on the current evaluation data (cannot load model "
        f"models:/{cfg.mlflow.model_name}/1: python_model.pkl is truncated); the new model replaces it"
    ]


def test_an_undefined_metric_on_the_rows_left_falls_back_to_all_rows_and_says_so(monkeypatch):
    cfg = load_config(DEMO_CONFIG)
    cfg.train.primary_metric = "qwk"
    # 100 rows; the champion trained on the first 60; the 40 left are all A and both say A: QWK undefined
    tiers = ["A", "B", "C", "D", "E"] * 12 + ["A"] * 40
    champion = ["A"] * 100  # right on the A rows only
    new = tiers[:60:2] + ["B"] * 30 + ["A"] * 40  # right on every other one of the first 60
    assert np.isnan(tier_metrics(["A"] * 40, _scores(["A"] * 40, cfg.scheme.codes)[0], cfg.scheme.codes)["qwk"])
    decision, client = _gate(monkeypatch, cfg, tiers, champion, new, range(60))
    text = "\n".join(decision.reasons)
    assert (
        "qwk is undefined on the 40 evaluation rows the champion did not train on (tiers there: ['A']), so both are "
        "compared on all 100 rows, which favours the champion"
    ) in text, text
    old = tier_metrics(tiers, _scores(champion, cfg.scheme.codes)[0], cfg.scheme.codes, y_pred=champion)
    assert decision.champion_metrics["qwk"] == pytest.approx(old["qwk"])  # on all 100 rows
    assert f"vs champion v1 {old['qwk']:.4f}" in text, text


# --------------------------------------------------------------------------- drift and migration


def test_psi_is_the_population_stability_index_and_warns_only_above_the_threshold():
    reference = {
        "x": {"edges": [1.0], "share": [0.5, 0.5, 0.0]},  # below 1, 1 or more, missing
        "steady": {"edges": [1.0], "share": [0.5, 0.5, 0.0]},
        "industry": {"cats": ["retail", "software"], "share": [1.0, 0.0, 0.0]},  # last bin: missing or unseen
    }
    acc = DriftAccumulator(reference)
    acc.add(pd.DataFrame({"x": [0.0] * 60, "steady": [0.0] * 30 + [5.0] * 30, "industry": ["retail"] * 60}))
    acc.add(pd.DataFrame({"x": [2.0] * 15, "steady": [0.5] * 10 + [1.0] * 5, "industry": ["mining"] * 15}))
    # x: 60 below 1, 15 at or above: shares 0.8 / 0.2 against 0.5 / 0.5 (empty bins count as 0.0001)
    expected_x = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert psi([0.5, 0.5, 0.0], [60, 15, 0]) == pytest.approx(expected_x, rel=1e-9)
    expected_steady = (40 / 75 - 0.5) * np.log(40 / 75 / 0.5) + (35 / 75 - 0.5) * np.log(35 / 75 / 0.5)
    expected_industry = (0.8 - 1.0) * np.log(0.8) + (0.2 - 1e-4) * np.log(0.2 / 1e-4)
    table = acc.table(threshold=round(expected_x, 6)).set_index("feature")
    assert table.loc["x", "psi"] == pytest.approx(expected_x, abs=1e-6)
    assert table.loc["steady", "psi"] == pytest.approx(expected_steady, abs=1e-6)
    assert table.loc["industry", "psi"] == pytest.approx(expected_industry, abs=1e-6)
    assert list(table.index) == ["industry", "x", "steady"]  # largest first
    # a PSI equal to predict.psi_warning is no warning; above it is
    assert table["warning"].to_dict() == {"industry": True, "x": False, "steady": False}
    assert acc.table(threshold=0.2).set_index("feature")["warning"].to_dict() == {
        "industry": True,
        "x": True,
        "steady": False,
    }
    assert (table.loc["industry", "unseen_values"], table.loc["industry", "unseen_examples"]) == (15, "mining")


def test_a_small_batch_warns_of_drift_only_beyond_what_sampling_alone_gives():
    rng = np.random.default_rng(5)
    train = pd.DataFrame({"x": rng.normal(size=5000)})
    reference = reference_profile(train, ["x"], {})
    same = lambda n: pd.DataFrame({"x": rng.normal(size=n)})  # noqa: E731 - no drift at all

    def table(batch):
        acc = DriftAccumulator(reference)
        acc.add(batch)
        return acc.table(threshold=0.25).set_index("feature").loc["x"]

    small = [table(same(26)) for _ in range(20)]
    assert max(t["psi"] for t in small) > 0.25  # sampling alone passes the threshold at 26 rows ...
    assert not any(t["warning"] for t in small) and small[0]["psi_noise"] > 1  # ... and is no alarm
    shifted = table(pd.DataFrame({"x": rng.normal(loc=3.0, size=26)}))
    assert shifted["warning"] and shifted["psi"] > shifted["psi_noise"]  # a real shift still warns
    big = table(same(20_000))
    assert big["psi_noise"] < 0.01 and not big["warning"]
    assert table(same(26))["psi_noise"] == small[0]["psi_noise"]  # seeded: the same noise level each run


def test_a_mostly_zero_count_that_turns_positive_is_drift():
    """A visit count that is 0 for 92 % of training customers: every batch whose customers all visited is
    drift, though no decile edge lies above 0; one like training is not."""
    rng = np.random.default_rng(7)
    visits = np.where(rng.random(5000) < 0.92, 0.0, rng.integers(1, 6, 5000).astype(float))
    reference = reference_profile(pd.DataFrame({"visits": visits}), ["visits"], {})

    def table(values):
        acc = DriftAccumulator(reference)
        acc.add(pd.DataFrame({"visits": values}))
        return acc.table(threshold=0.2).set_index("feature").loc["visits"]

    assert table(np.full(500, 3.0))["warning"] and table(np.full(500, 3.0))["psi"] > 1
    alike = table(np.where(rng.random(5000) < 0.92, 0.0, rng.integers(1, 6, 5000).astype(float)))
    assert not alike["warning"] and alike["psi"] < 0.01
    # the same value computed another way stays in its bin: no drift from rounding
    half = reference_profile(pd.DataFrame({"share": np.r_[np.full(500, 0.3), rng.random(500)]}), ["share"], {})
    acc = DriftAccumulator(half)
    acc.add(pd.DataFrame({"share": np.r_[np.full(500, 0.1 + 0.2), rng.random(500)]}))
    assert not acc.table(threshold=0.2).set_index("feature").loc["share", "warning"]


def test_migration_names_each_change_and_the_score_trend_at_five_points():
    previous = pd.DataFrame(
        {
            "customer_id": ["up", "down", "same", "gone", "flat"],
            "tier": ["B", "B", "B", "A", "C"],
            "score": [50.0, 50.0, 50.0, 80.0, 30.0],
        }
    )
    current = pd.DataFrame(
        {
            "customer_id": ["up", "down", "same", "new", "flat"],
            "tier": ["A", "C", "B", "C", "C"],
            "score": [55.0, 45.0, 54.99, 20.0, 25.01],
        }
    )
    m = migration(previous, current, ["A", "B", "C"]).set_index("customer_id")
    assert list(m.index) == ["down", "flat", "gone", "new", "same", "up"]
    assert m["change"].to_dict() == {
        "down": "downgraded",
        "flat": "unchanged",
        "gone": "gone",
        "new": "new",
        "same": "unchanged",
        "up": "upgraded",
    }
    # +5 or more improving, -5 or more declining, else steady; no score on one side: no trend
    assert m["trend"].to_dict() == {
        "down": "declining",
        "flat": "steady",
        "gone": "",
        "new": "",
        "same": "steady",
        "up": "improving",
    }
    assert m.loc["same", "score_change"] == 4.99 and m.loc["flat", "score_change"] == -4.99
    assert m.loc["up", "score_change"] == 5.0 and m.loc["down", "score_change"] == -5.0
    assert m[["previous_tier", "tier"]].loc["gone"].tolist()[0] == "A" and pd.isna(m.loc["gone", "tier"])


# --------------------------------------------------------------------------- config errors


def _wrong_keys_config(tmp_path: Path) -> Path:
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["train"]["n_trails"] = 3
    raw["features"]["windowz"] = [7]
    raw["colour"] = "blue"
    (tmp_path / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_config_with_several_wrong_keys_lists_one_per_line(tmp_path):
    path = _wrong_keys_config(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    lines = str(err.value).splitlines()
    problems = [line.strip() for line in lines[1:]]
    assert len(problems) == 3, lines
    assert [p.split(":")[0] for p in sorted(problems)] == ["colour", "features.windowz", "train.n_trails"]
    assert all(": unknown key; allowed keys here: " in p for p in problems), problems
    assert "windows_days" in next(p for p in problems if p.startswith("features.windowz"))
    res = runner.invoke(app, ["features", "--config", str(path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    out = res.output.splitlines()
    assert out[0].startswith("error: ") and len(out) == len(lines)
    for p in problems:
        assert sum(p in line for line in out) == 1, res.output


def test_a_config_with_one_wrong_key_is_one_error_line(tmp_path):
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["train"]["n_trails"] = 3
    (tmp_path / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump(raw))
    res = runner.invoke(app, ["features", "--config", str(path)])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert lines[0].startswith(f"error: invalid config {path}: train.n_trails: unknown key; allowed keys here: ")


# --------------------------------------------------------------------------- failed runs keep earlier outputs


@pytest.fixture
def features_world(workdir):
    from leadtier.pipelines.demo_data import write_demo

    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data"]["root"] = str(workdir / "data")
    raw["features"]["output"] = str(workdir / "out" / "features.parquet")
    raw["report"]["output"] = str(workdir / "out" / "report.html")
    raw["predict"]["output"] = str(workdir / "out" / "predictions.parquet")
    raw["demo"]["n_customers"] = 300
    (workdir / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    path = workdir / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    write_demo(load_config(path))
    return path, workdir / "out"


def _listing(folder: Path) -> dict[str, bytes]:
    """Every file and its bytes, but an output set's lock file (empty, it stays by design)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.endswith(".lock")}


def test_a_failed_features_run_leaves_the_earlier_output_as_it_was(features_world, monkeypatch):
    config, out = features_world
    res = runner.invoke(app, ["features", "--config", str(config)])
    assert res.exit_code == 0, res.output
    before = _listing(out)
    assert list(before) == ["features.parquet"] and pd.read_parquet(out / "features.parquet").shape[0] > 0
    # an input error before anything is written
    (out.parent / "data" / "interactions.parquet").rename(out.parent / "data" / "elsewhere.parquet")
    res = runner.invoke(app, ["features", "--config", str(config)])
    assert res.exit_code == 2 and "interactions.parquet" in res.output, res.output
    assert _listing(out) == before
    (out.parent / "data" / "elsewhere.parquet").rename(out.parent / "data" / "interactions.parquet")

    # the disk fills up halfway through writing the new table
    def half_written(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1 half a table")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_written)
    res = runner.invoke(app, ["features", "--config", str(config)])
    assert res.exit_code == 2 and "no space left" in res.output.lower(), res.output
    assert _listing(out) == before  # no half-written table, no temporary left behind


def test_a_failed_report_run_leaves_the_earlier_report_as_it_was(features_world):
    config, out = features_world
    out.mkdir(exist_ok=True)
    (out / "report.html").write_text("<html>the earlier report</html>", encoding="utf-8")
    (out / "predictions.csv").write_text("customer_id,score\nc1,50\n", encoding="utf-8")  # no tier column
    before = _listing(out)
    res = runner.invoke(app, ["report", "--config", str(config), "--predictions", str(out / "predictions.csv")])
    assert res.exit_code == 2 and "lack the columns" in res.output, res.output
    assert _listing(out) == before


# --------------------------------------------------------------------------- evaluation rows are not training rows


def test_evaluation_rows_that_were_training_rows_stop_the_run():
    """Honest numbers: an evaluation row that training also used (the same customer for labels from
    people, the same customer and snapshot for outcome labels) is an error, never a figure."""
    from leadtier.pipelines import train as train_stage

    check = getattr(train_stage, "check_disjoint", None)
    if check is None:
        pytest.skip("leadtier.pipelines.train.check_disjoint is not there yet")
    jan, feb = pd.Timestamp("2026-01-31").date(), pd.Timestamp("2026-02-28").date()
    train = pd.DataFrame({"customer_id": ["a", "b", "b"], "snapshot": [jan, jan, feb]})
    assert check(train, pd.DataFrame({"customer_id": ["c"], "snapshot": [jan]}), "table") == 0
    assert check(train, pd.DataFrame({"customer_id": ["a"], "snapshot": [feb]}), "outcome") == 0  # another snapshot
    with pytest.raises(RuntimeError, match=r"^1 evaluation row\(s\) were also training rows"):
        check(train, pd.DataFrame({"customer_id": ["a", "c"], "snapshot": [feb, feb]}), "table")  # the customer
    with pytest.raises(RuntimeError, match=r"^2 evaluation row\(s\) were also training rows"):
        check(train, pd.DataFrame({"customer_id": ["b", "b"], "snapshot": [jan, feb]}), "outcome")

"""Labels from rules (``labels.source: rules``), the shipped deal-heat example (configs/deal_heat.yaml on
tests/fixtures/deal_heat), and the relationship scheme's order (level IV strongest)."""

from __future__ import annotations

import filecmp
import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from leadtier.pipelines.cli import app
from leadtier.pipelines.config import ConfigError, load_config
from leadtier.pipelines.features import connect
from leadtier.pipelines.label_rules import rule_labels
from leadtier.pipelines.sources import register_all
from typer.testing import CliRunner

from tests.conftest import REPO
from tests.fixtures.deal_heat import generate

EXAMPLE = REPO / "tests" / "fixtures" / "deal_heat"
DEAL_HEAT = REPO / "configs" / "deal_heat.yaml"


def test_relationship_levels_run_from_iv_strongest_to_i_with_a_checklist_per_party():
    scheme = load_config(DEAL_HEAT).schemes["relationship"]
    assert scheme.codes == ["IV", "III", "II", "I"]  # best first: IV is the strongest
    assert scheme.score(np.eye(4)).tolist() == [100.0, 66.67, 33.33, 0.0]
    for level in scheme.levels:
        assert set(level.checklists) == {"owner", "installer"}
        for party in level.checklists.values():
            assert len(party.en) == len(party.zh) >= 2 and party.party_zh in {"甲方", "乙方"}
    assert "Our product is the only brand in the tender" in scheme.level("IV").checklists["owner"].en
    assert "招标文件中我方产品为唯一品牌" in scheme.level("IV").checklists["owner"].zh
    assert scheme.level("I").checklists["installer"].en == [
        "Has received our materials",
        "Three or more visits",
        "Does not reject the salesperson",
    ]
    assert scheme.label("IV", "zh").startswith("四级") and scheme.label("I", "en").startswith("Level I ")


def _rules_world(tmp_path, rules, source="rules"):
    (tmp_path / "c.csv").write_text("id,stage,level\nc1,signed,III\nc2,signed,I\nc3,bid,III\nc4,,II\nc5,lost,III\n")
    raw = {
        "name": "r",
        "data": {
            "root": str(tmp_path),
            "as_of": "2026-06-30",
            "tables": {"customers": {"path": "c.csv", "columns": {"customer_id": "id"}, "leaky": ["stage", "level"]}},
        },
        "labels": {"source": source, "scheme": "deal_heat", "rules": rules},
        "features": {"families": ["customers"]},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    return load_config(tmp_path / "c.yaml", schemes_file=REPO / "configs" / "schemes.yaml")


def test_the_first_rule_that_holds_gives_the_tier_and_the_rest_stay_unlabelled(tmp_path):
    rules = [
        {"tier": "90", "when": "stage = 'signed'"},
        {"tier": "70", "when": "level = 'III'"},  # c1 meets it too: the first rule wins
        {"tier": "30", "when": "stage <> 'signed' AND level = 'II'"},  # c4 has no stage: NULL is no match
    ]
    cfg = _rules_world(tmp_path, rules)
    con = connect(cfg)
    register_all(con, cfg, with_labels=False)
    lab, counts = rule_labels(con, cfg)
    assert dict(zip(lab["customer_id"], lab["tier"], strict=True)) == {"c1": "90", "c2": "90", "c3": "70", "c5": "70"}
    assert counts == {"1: 90": 2, "2: 70": 2, "3: 30": 0, "unlabelled": 1}


def test_rules_are_checked_with_the_config(tmp_path):
    with pytest.raises(ConfigError, match=r"labels.rules tiers must be levels of scheme 'deal_heat'.*Got \['95'\]"):
        _rules_world(tmp_path, [{"tier": "95", "when": "true"}])
    with pytest.raises(ConfigError, match=r"labels.rules is used only with labels.source 'rules'. Got source 'table'"):
        _rules_world(tmp_path, [{"tier": "90", "when": "true"}], source="table")
    with pytest.raises(ConfigError, match=r"labels.source 'rules' needs labels.rules"):
        _rules_world(tmp_path, [])
    with pytest.raises(ConfigError, match=r"labels.rules.0.if: unknown key"):
        _rules_world(tmp_path, [{"tier": "90", "when": "true", "if": "x"}])


def test_a_rule_that_reads_no_column_of_the_table_is_one_error_line(tmp_path, workdir):
    _rules_world(tmp_path, [{"tier": "90", "when": "contract = 'signed'"}])
    res = CliRunner().invoke(app, ["train", "--config", str(tmp_path / "c.yaml"), "--n-trials", "1"])
    assert res.exit_code == 2, res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert "labels.rules[0] (tier '90'): 'when' must be a SQL condition over the customers table's columns" in line
    assert "Got \"contract = 'signed'\" instead" in line and "Traceback" not in res.output


def test_the_committed_example_is_what_its_generator_writes(tmp_path):
    generate.write(tmp_path)
    for name in ("projects.csv", "owners.csv", "installers.csv"):
        assert filecmp.cmp(tmp_path / name, EXAMPLE / name, shallow=False), name


def test_deal_heat_from_rules_trains_through_the_cli(workdir):
    res = CliRunner().invoke(app, ["train", "--config", str(DEAL_HEAT), "--data-root", str(EXAMPLE), "--n-trials", "2"])
    assert res.exit_code == 0, res.output
    assert "alias 'champion'" in res.output
    assert "censoring proxies" not in res.output  # a rule's columns tell its labelled rows apart by design
    (run,) = mlflow.search_runs(
        experiment_names=["leadtier"], filter_string="tags.mlflow.runName = 'train-deal_heat'"
    ).itertuples()
    local = mlflow.artifacts.download_artifacts(
        run_id=run.run_id, artifact_path="inputs/table_stats.json", dst_path=str(workdir)
    )
    stats = json.loads(open(local, encoding="utf-8").read())
    counts = stats["protocol"]["label_rules"]
    assert counts == {"1: 90": 93, "2: 70": 104, "3: 50": 97, "4: 30": 99, "unlabelled": 87}
    assert stats["tables"]["customers"]["joins"]["owners"] == {"rows": 480, "missing_key": 0, "no_match": 0}
    metrics = mlflow.MlflowClient().get_run(run.run_id).data.metrics
    assert metrics["test_macro_f1"] > 0.4, metrics  # learnt from the other columns (4 tiers: 0.25 by chance)

    # predict shows the rule's tier beside the model's where a rule holds (the rule is the better answer there)
    out = workdir / "heat.parquet"
    res = CliRunner().invoke(
        app, ["predict", "--config", str(DEAL_HEAT), "--data-root", str(EXAMPLE), "--output", str(out)]
    )
    assert res.exit_code == 0, res.output
    pred = pd.read_parquet(out)
    assert list(pred.columns[:3]) == ["customer_id", "tier", "rule_tier"]
    assert pred["rule_tier"].value_counts().to_dict() == {"70": 104, "30": 99, "50": 97, "90": 93}
    assert pred["rule_tier"].isna().sum() == len(pred) - 393
    # new projects without the rules' columns (no tender yet): scored, and no rule gives them a tier
    projects = pd.read_csv(EXAMPLE / "projects.csv", dtype=str)
    cfg = load_config(DEAL_HEAT, data_root=str(EXAMPLE))
    projects.drop(columns=[c for c in cfg.data.tables.customers.leaky if c in projects.columns]).head(30).to_csv(
        workdir / "new_projects.csv", index=False
    )
    args = [
        "predict",
        "--config",
        str(DEAL_HEAT),
        "--data-root",
        str(EXAMPLE),
        "--input",
        str(workdir / "new_projects.csv"),
    ]
    res = CliRunner().invoke(app, [*args, "--output", str(workdir / "new.parquet")])
    assert res.exit_code == 0, res.output
    new = pd.read_parquet(workdir / "new.parquet")
    assert len(new) == 30 and new["rule_tier"].isna().all() and new["tier"].notna().all()

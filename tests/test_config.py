"""Config validation: every mistake names the key and what is allowed."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from leadtier.pipelines.cli import app
from leadtier.pipelines.config import ConfigError, TableSpec, load_config, override
from leadtier.pipelines.errors import UserError
from pydantic import ValidationError
from typer.testing import CliRunner

from tests.conftest import DEMO_CONFIG, REPO


def _write(tmp_path, mutate) -> str:
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    mutate(raw)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    (tmp_path / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    return str(path)


def test_demo_config_loads_with_builtin_schemes():
    cfg = load_config(DEMO_CONFIG)
    assert cfg.scheme.codes == ["A", "B", "C", "D", "E"]
    for name in ("time_to_close", "intent", "relationship", "deal_heat", "value", "converted"):
        assert name in cfg.schemes


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda r: r["train"].update(n_trails=3),
            r"train\.n_trails: unknown key; allowed keys here: .*min_per_tier",
        ),
        (lambda r: r["train"]["tuning"].update(n_trials="many"), r"train\.tuning\.n_trials"),
        (lambda r: r["segments"].update(k=1), r"segments\.k"),
        (lambda r: r["segments"].update(k_range=[8, 3]), r"segments\.k_range.*low <= high"),
        (lambda r: r["train"]["tuning"].update(search_space={}), r"search space is empty"),
        (
            lambda r: r["train"]["tuning"]["search_space"]["num_leaves"].update(low=100),
            r"'low' must not exceed",
        ),
        (
            lambda r: r["labels"].update(scheme="vip"),
            r"labels\.scheme must be one of .*time_to_close.*Got 'vip'",
        ),
        (lambda r: r["data"].update(as_of="yesterday"), r"data\.as_of"),
        (lambda r: r["train"]["tuning"].update(n_trials=True), r"train\.tuning\.n_trials: needs numbers, not yes/no"),
        (lambda r: r.update(seed=False), r"seed: needs numbers, not yes/no or true/false. Got False instead"),
        (lambda r: r["features"].update(windows_days=[7, True]), r"features\.windows_days: needs numbers.*\[7, True\]"),
        (lambda r: r["worklist"].update(service_days={"A": True}), r"worklist\.service_days: needs numbers"),
        (
            lambda r: r["report"].update(lang=False),
            r"report\.lang: must be 'en' or 'zh'. Got False instead; YAML reads",
        ),
        (lambda r: r["features"].update(windows_days=[30, 7]), r"windows must be increasing"),
        (
            lambda r: r["features"].update(interaction_types=["拜访", "site visit"]),
            r"features\.interaction_types: .*letters \(of any script\).*Got \['site visit'\]",
        ),
        (lambda r: r["features"].update(interaction_types=["Call", "call"]), r"differ in more than case"),
        (
            lambda r: r["mlflow"].update(experiment=2026),
            r"mlflow\.experiment: Input should be a valid string. Got the number 2026 instead: quote it \('2026'\)",
        ),
        (
            lambda r: r["data"]["tables"]["customers"].update(joins={"accounts": {"path": "a.csv", True: "acct"}}),
            r"joins\.accounts \(a key\): YAML reads an unquoted on/off.*key as True: quote it.*`by:`",
        ),
        (lambda r: r["report"].update(lang="fr"), r"report\.lang: must be 'en' or 'zh'. Got 'fr'"),
        (  # a table given by `path` is named as written, not as the one-entry `files` it stands for
            lambda r: r["data"]["tables"]["customers"].update(date_format=[]),
            r"data\.tables\.customers\.date_format: must be a strptime format or a non-empty list of them\. Got \[\]",
        ),
        (
            lambda r: r["data"]["tables"]["customers"].update(decimal=";"),
            r"data\.tables\.customers\.decimal: must be '\.' or ','. Got ';' instead",
        ),
        (
            lambda r: r["data"]["tables"]["customers"].update(path=None, files=[{"path": "a.csv", "decimal": ";"}]),
            r"data\.tables\.customers\.files\.0\.decimal: must be '\.' or ','",
        ),
        (
            lambda r: r["data"]["tables"]["customers"].update(categorical=["email"]),
            r"personal cannot be features",
        ),
        (lambda r: r.update(duckdb_memory_limit="lots"), r"duckdb_memory_limit"),
        (lambda r: r["train"].update(bootstrap_resamples=5), r"train\.bootstrap_resamples: .*at least 20 resamples"),
        (
            lambda r: r["train"].update(bootstrap_resamples=0, gate={"interval": True}),
            r"train: .*gate\.interval needs bootstrap resamples .* bootstrap_resamples is 0",
        ),
        (lambda r: r["train"].update(gate={"min_gain": -0.01}), r"train\.gate\.min_gain: .*greater than or equal to 0"),
        (
            lambda r: r["train"].update(gate={"margin": 0.01}),
            r"train\.gate\.margin: unknown key; allowed keys here: interval, min_gain",
        ),
        (lambda r: r["train"].update(primary_metric="roc_auc"), r"'roc_auc' needs a two-level scheme"),
        (lambda r: r["train"].update(decision_balance=2), r"train\.decision_balance.*less than or equal to 1"),
        (
            lambda r: r["data"]["tables"]["customers"].update(date_format="%s"),
            r"data\.tables\.customers\.date_format: Failed to parse format specifier %s.*epoch seconds .*to_timestamp",
        ),
        (
            lambda r: r["data"]["tables"]["customers"].update(date_format=["%d.%m.%Y", "%Y-%m-%d %Q"]),
            r"date_format: Failed to parse format specifier .*strptime: %Q .*Got '%Y-%m-%d %Q' instead",
        ),
        (lambda r: r["train"].update(decision_balance="half"), r"train\.decision_balance.*must be 'auto'"),
        (
            lambda r: r["train"]["tuning"]["search_space"].update(num_leafs={"type": "int", "low": 8, "high": 64}),
            r"train\.tuning\.search_space: 'num_leafs' is not a tunable hyper-parameter; allowed: .*'num_leaves'",
        ),
        (
            lambda r: r["train"]["tuning"]["search_space"]["num_leaves"].update(high=float("inf")),
            r"num_leaves takes finite numbers. Got inf instead",
        ),
        (
            lambda r: r["train"]["tuning"]["search_space"]["num_leaves"].update(type="float"),
            r"num_leaves takes whole numbers: use type: int. Got type: float instead",
        ),
        (
            lambda r: r["train"]["tuning"]["search_space"].update(subsample={"type": "float", "low": 0.6, "high": 1.5}),
            r"subsample must lie in \(0, 1\]. Got 1.5 instead",
        ),
        (
            lambda r: r["labels"].update(
                source="outcome", outcome={"kind": "revenue_next_days", "horizon_days": 180, "thresholds_days": [30]}
            ),
            r"labels.outcome.kind 'revenue_next_days' does not read \['thresholds_days'\]: thresholds_days is read by",
        ),
        (
            lambda r: r["labels"].update(source="outcome", outcome={"cut_points": [500.0, 50.0]}),
            r"kind 'days_to_next_purchase' does not read \['cut_points'\]",
        ),
        (
            lambda r: r["labels"].update(outcome={"kind": "purchase_stage", "horizon_days": 90}),
            r"labels.outcome is used only with labels.source 'outcome' .*Got source 'table' instead",
        ),
        (
            lambda r: r["labels"].update(source="outcome", outcome={"loyal_purchases": 5}),
            r"kind 'days_to_next_purchase' does not read \['loyal_purchases'\]",
        ),
        (
            lambda r: r["labels"].update(source="outcome", outcome={"kind": "purchase_stage", "horizon_days": 180}),
            r"scheme 'time_to_close' has 5 levels but purchase_stage makes 4 \(loyal, repeat, first-time, prospect",
        ),
        (
            lambda r: r["labels"].update(
                source="outcome", scheme="purchase_stage", outcome={"kind": "purchase_stage", "loyal_purchases": 1}
            ),
            r"labels.outcome.loyal_purchases.*greater than or equal to 2",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path, mutate, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, mutate))


def test_entity_as_of_days_that_nothing_reads_is_an_error(tmp_path):
    """A day after each entity's start only days_to_win labels measure from, and only the event families
    describe: set anywhere else, it would be silently ignored."""
    with pytest.raises(
        ConfigError,
        match=r"features.entity_as_of_days .*only labels.outcome.kind 'days_to_win'.*Got "
        r"labels.source 'table' instead",
    ):
        load_config(_write(tmp_path, lambda r: r["features"].update(entity_as_of_days=14)))
    b2b = yaml.safe_load((REPO / "configs" / "demo_b2b.yaml").read_text())
    b2b["features"]["families"] = ["customers"]
    path = tmp_path / "b2b.yaml"
    path.write_text(yaml.safe_dump(b2b))
    with pytest.raises(ConfigError, match=r"features.entity_as_of_days \(14\) .*neither.*Got \['customers'\] instead"):
        load_config(path)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_data_root_override_order(tmp_path, monkeypatch):
    monkeypatch.setenv("LEADTIER_DATA_ROOT", "/env/root")
    assert load_config(DEMO_CONFIG).data.root == "/env/root"
    assert load_config(DEMO_CONFIG, data_root="/cli/root").data.root == "/cli/root"
    monkeypatch.delenv("LEADTIER_DATA_ROOT")
    assert load_config(DEMO_CONFIG).data.root == "data/demo"


def test_duckdb_memory_limit_reaches_the_connection():
    from leadtier.pipelines.features import connect

    cfg = load_config(DEMO_CONFIG)
    cfg.duckdb_memory_limit = "1GB"
    con = connect(cfg)
    limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit.replace(" ", "") in {"1.0GB", "953.6MiB", "1GB", "0.9GiB"}, limit


def test_a_config_outside_configs_still_sees_the_builtin_schemes(tmp_path):
    elsewhere = tmp_path / "team" / "leads.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(DEMO_CONFIG.read_text())
    cfg = load_config(elsewhere)
    assert cfg.labels.scheme == "time_to_close" and cfg.scheme.codes == ["A", "B", "C", "D", "E"]
    assert {"intent", "relationship", "deal_heat"} <= set(cfg.schemes)
    # a schemes.yaml beside it adds its own
    (elsewhere.parent / "schemes.yaml").write_text(
        yaml.safe_dump(
            {
                "schemes": {
                    "vip": {
                        "title_en": "VIP",
                        "title_zh": "贵宾",
                        "levels": [{"code": c, "en": c, "zh": c} for c in ("gold", "silver")],
                    }
                }
            }
        )
    )
    assert {"vip", "intent"} <= set(load_config(elsewhere).schemes)


def test_assignment_is_validated_like_the_file():
    cfg = load_config(DEMO_CONFIG)
    before = cfg.model_dump()
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        cfg.train.tuning.n_trials = 0
    with pytest.raises(ValidationError, match="windows must include 30"):
        cfg.features.windows_days = [7, 90]
    with pytest.raises(ValidationError, match="has no attribute .n_trails."):
        cfg.train.n_trails = 3
    with pytest.raises(ValidationError, match="give both train_as_of and eval_as_of"):
        cfg.snapshots.train_as_of = [cfg.data.as_of]
    assert cfg.model_dump() == before  # a refused value leaves the config as it was
    cfg.train.tuning.n_trials = "5"  # coerced as in YAML
    assert cfg.train.tuning.n_trials == 5


def test_override_checks_the_whole_config_and_names_the_key_and_source():
    cfg = load_config(DEMO_CONFIG)
    override(cfg, "train.tuning.n_trials", 3, source="--n-trials")
    assert cfg.train.tuning.n_trials == 3
    with pytest.raises(ConfigError, match=r"(?s)from --n-trials.*train\.tuning\.n_trials: Input should be greater"):
        override(cfg, "train.tuning.n_trials", 0, source="--n-trials")
    # a rule across sections (primary metric vs. the scheme's levels) is checked too, and cfg is kept
    with pytest.raises(ConfigError, match="'roc_auc' needs a two-level scheme"):
        override(cfg, "train.primary_metric", "roc_auc")
    with pytest.raises(ConfigError, match="unknown key; allowed keys here: cv_folds, n_trials"):
        override(cfg, "train.tuning.n_trails", 3)
    with pytest.raises(ConfigError, match="'trian' is not a section of the config. Got key 'trian.folds' instead"):
        override(cfg, "trian.folds", 3)
    assert cfg.train.tuning.n_trials == 3 and cfg.train.primary_metric == "macro_f1"


def test_a_command_line_override_meets_the_schema():
    res = CliRunner().invoke(app, ["train", "--config", str(DEMO_CONFIG), "--n-trials", "0"])
    assert res.exit_code == 2, res.output
    assert "error: invalid value 0 for train.tuning.n_trials (from --n-trials)" in res.output


def test_path_is_shorthand_for_one_file():
    spec = TableSpec(path="c.csv", columns={"customer_id": "Id"}, encoding="latin-1")
    assert [(f.path, f.columns, f.encoding) for f in spec.files] == [("c.csv", {"customer_id": "Id"}, "latin-1")]
    assert spec.path is None
    spec.exclude = {"test rows": "customer_id < 0"}  # assignment re-runs the table's rules and keeps the file
    assert len(spec.files) == 1
    with pytest.raises(ValidationError, match="give either 'path'"):
        TableSpec(path="c.csv", files=[{"path": "d.csv"}])


def test_user_errors_share_one_base_that_the_cli_maps_to_exit_2():
    from leadtier.pipelines.cli import _user_errors
    from leadtier.pipelines.tracking import ModelLoadError

    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)
    from leadtier.pipelines.predict import RejectShareError
    from leadtier.pipelines.serve import PortBusyError
    from leadtier.pipelines.sources import InputError
    from leadtier.pipelines.spark import SparkSetupError
    from leadtier.pipelines.train import TrainingDataError

    assert issubclass(ModelLoadError, UserError)
    for error in (InputError, TrainingDataError, RejectShareError, PortBusyError, SparkSetupError):
        assert issubclass(error, UserError), error  # one base: nothing collected by hand in the CLI
    assert _user_errors() == (UserError, FileNotFoundError)


def test_config_schema_command_prints_a_schema_the_example_configs_meet():
    res = CliRunner().invoke(app, ["config-schema"])
    assert res.exit_code == 0, res.output
    schema = json.loads(res.output)
    assert schema["$schema"].endswith("2020-12/schema") and schema["title"] == "leadtier config"
    validator = jsonschema.Draft202012Validator(schema)

    def as_an_editor_reads(path):  # YAML 1.2 (what editors speak) has no date type: 2026-06-30 is a string
        return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))

    for path in sorted((REPO / "configs").glob("*.yaml")):
        if path.name != "schemes.yaml":
            assert list(validator.iter_errors(as_an_editor_reads(path))) == [], path.name
    raw = as_an_editor_reads(DEMO_CONFIG)
    raw["train"]["tuning"]["n_trials"] = 0
    raw["train"]["n_trails"] = 3
    problems = sorted(".".join(map(str, e.absolute_path)) for e in validator.iter_errors(raw))
    assert problems == ["train", "train.tuning.n_trials"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("as_of: 2026-06-30", "as_of: 2026-06-31", 1), r"data\.as_of: .*valid date"),
        (lambda t: t.replace("as_of: 2026-06-30", "as_of: 2026-13-01", 1), r"data\.as_of: .*valid date"),
        (lambda t: t + "\nseed: 7\n", r"not valid YAML: line \d+, column 1: key 'seed' appears twice"),
    ],
    ids=["no-such-day", "no-such-month", "key-twice"],
)
def test_a_config_text_mistake_is_one_error_line_naming_the_key(tmp_path, edit, expected):
    text = DEMO_CONFIG.read_text()
    assert "as_of: 2026-06-30" in text and text.count("\nseed: ") == 1
    path = tmp_path / "cfg.yaml"
    path.write_text(edit(text))
    (tmp_path / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    with pytest.raises(ConfigError, match=expected):
        load_config(path)
    res = CliRunner().invoke(app, ["features", "--config", str(path)])
    assert res.exit_code == 2 and res.output.startswith("error: ") and "Traceback" not in res.output, res.output


def test_a_config_that_is_not_utf8_is_an_error_naming_the_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: démo\n".encode("latin-1"))
    res = CliRunner().invoke(app, ["features", "--config", str(path)])
    assert res.exit_code == 2, res.output
    assert res.output.strip() == f"error: config file {path} is not UTF-8 text: byte 0xe9 at offset 7; save it as UTF-8"


def test_an_unquoted_yes_no_mapping_key_says_to_quote_it(tmp_path):
    path = _write(tmp_path, lambda r: r["labels"].update(mapping={True: "A", False: "E"}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 2 and all(line.strip().startswith("labels.mapping (a key): ") for line in lines), lines
    assert all(
        "YAML reads an unquoted yes/no, on/off or true/false as" in line and "quote it" in line for line in lines
    )
    assert sorted(line.rsplit(" as ", 1)[1] for line in lines) == ["False: quote it ('no')", "True: quote it ('yes')"]


def test_keys_beside_files_describe_every_file_and_a_files_own_keys_win(tmp_path):
    def two_exports(r):
        r["data"]["tables"]["transactions"] = {
            "columns": {"customer_id": "Kunden-Nr", "ts": "Datum"},
            "date_format": "%d.%m.%Y %H:%M",
            "encoding": "latin-1",
            "files": [
                {"path": "jan.csv"},
                {"path": "feb.csv", "columns": {"amount": "Betrag"}, "date_format": "%d.%m.%Y"},
            ],
        }

    jan, feb = load_config(_write(tmp_path, two_exports)).data.tables.transactions.files
    assert jan.columns == {"customer_id": "Kunden-Nr", "ts": "Datum"} and jan.date_format == "%d.%m.%Y %H:%M"
    assert feb.columns == {"customer_id": "Kunden-Nr", "ts": "Datum", "amount": "Betrag"}
    assert feb.date_format == "%d.%m.%Y" and jan.encoding == feb.encoding == "latin-1"


def test_a_mapping_key_with_the_files_spaces_maps_the_value_read_without_them(tmp_path):
    import pandas as pd
    from leadtier.pipelines.train import attach_labels

    # label values are read without surrounding spaces; a key copied from the file with them must still map
    path = _write(tmp_path, lambda r: r["labels"].update(mapping={"iv ": "A", " iii": "B", "ii": "C"}))
    cfg = load_config(path)
    assert cfg.labels.mapping == {"iv": "A", "iii": "B", "ii": "C"}
    feats = pd.DataFrame({"customer_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    labels = pd.DataFrame({"customer_id": ["a", "b", "c"], "tier": ["iv ", " iii", "ii"]})
    assert attach_labels(cfg, feats, labels).set_index("customer_id")["tier"].to_dict() == {
        "a": "A",
        "b": "B",
        "c": "C",
    }
    clash = _write(tmp_path, lambda r: r["labels"].update(mapping={"iv ": "A", "iv": "B"}))
    with pytest.raises(
        ConfigError, match=r"labels.mapping.*keys 'iv' with and without spaces map to '[AB]' and '[AB]'"
    ):
        load_config(clash)


def test_an_order_column_without_the_ordered_protocol_is_said_to_be_unread():
    from leadtier.pipelines.train import unread_settings

    cfg = load_config(DEMO_CONFIG)
    assert unread_settings(cfg) == []
    cfg.train.order_by = "created_at"
    assert unread_settings(cfg) == [
        "train.order_by ('created_at') is read only by train.evaluation: ordered_holdout; this run evaluates "
        "by holdout, with rows in no time order"
    ]
    cfg.train.evaluation = "ordered_holdout"
    assert unread_settings(cfg) == []


def test_an_encoding_leadtier_cannot_read_says_how_to_convert_the_file(tmp_path):
    path = _write(tmp_path, lambda r: r["data"]["tables"]["customers"].update(encoding="euc-kr"))
    with pytest.raises(ConfigError, match=r"encoding: must be 'utf-8', .*'gbk', .*Got 'euc-kr' .*iconv -f EUC-KR"):
        load_config(path)


def test_yaml_merge_keys_still_load_and_the_mapping_own_keys_win(tmp_path):
    text = DEMO_CONFIG.read_text()
    assert "segments:\n  k: null" in text and "k_range: [3, 7]" in text
    path = tmp_path / "cfg.yaml"
    path.write_text(
        text.replace("segments:\n", "segments:\n  <<: {k_range: [2, 9], exclude_columns: [rfm_score]}\n", 1)
    )
    (tmp_path / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    segments = load_config(path).segments
    assert list(segments.k_range) == [3, 7] and list(segments.exclude_columns) == ["rfm_score"]

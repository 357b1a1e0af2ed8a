"""Config validation: every mistake names the key and what is allowed."""

from __future__ import annotations

import pytest
import yaml
from leadtier.pipelines.config import ConfigError, load_config

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
        (lambda r: r["features"].update(windows_days=[30, 7]), r"windows must be increasing"),
        (lambda r: r["report"].update(lang="fr"), r"report\.lang: must be 'en' or 'zh'. Got 'fr'"),
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
    ],
)
def test_bad_config_names_the_key(tmp_path, mutate, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, mutate))


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

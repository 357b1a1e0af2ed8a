"""Feature SQL: exact values on hand-made data, point-in-time correctness, windows and joins."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from leadtier.features.queries import feature_query, render_family, slug
from leadtier.pipelines.features import build
from leadtier.pipelines.reasons import features_of

from tests.conftest import AS_OF, REPO, small_config, write_tables

TS = pd.Timestamp


def _customers():
    return pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "late"],
            "created_at": pd.to_datetime(["2025-01-01", "2026-06-01", "2024-05-05", "2026-07-02"]),
            "lead_source": ["web_form", "referral", None, "web_form"],
            "industry": ["retail", "software", "retail", "retail"],
            "company_size": ["1-10", "11-50", "1-10", "1-10"],
            "region": ["north", "south", "east", "west"],
            "annual_revenue_musd": [1.5, np.nan, 3.0, 1.0],
            "contact_name": ["A", "B", "C", "D"],
            "email": ["a@x", "b@x", "c@x", "d@x"],
            "phone": ["1", "2", "3", "4"],
        }
    )


def _transactions():
    rows = [
        # customer, ts, invoice, amount, qty
        ("c1", TS("2026-06-29 23:59:59"), "i1", 100.0, 1),  # 1 day before as-of
        ("c1", TS("2026-05-31 12:00"), "i2", 50.0, 1),  # exactly 30 days before: inside 30d
        ("c1", TS("2026-05-30 12:00"), "i3", 20.0, 1),  # 31 days before: outside 30d, inside prev 30d
        ("c1", TS("2026-06-10 09:00"), "i4", -30.0, -1),  # a return
        ("c1", TS("2026-06-30 00:00"), "i5", 999.0, 1),  # on the as-of date: the future
        ("c3", TS("2025-01-01 08:00"), "i6", 10.0, 1),
        ("c3", TS("2025-01-01 08:00"), "i6", 5.0, 2),  # second line of the same invoice
        ("c2", TS("2026-06-01 10:00"), "j1", 100.0, 1),  # invoice with a returned line: net +70
        ("c2", TS("2026-06-01 10:00"), "j1", -30.0, -1),
        ("c2", TS("2026-06-02 10:00"), "j2", 20.0, 1),
        ("c2", TS("2026-06-03 10:00"), "j3", -50.0, -1),  # a return invoice
    ]
    return pd.DataFrame(rows, columns=["customer_id", "ts", "invoice_id", "amount", "quantity"])


def _interactions():
    rows = [
        ("c1", TS("2026-06-29 10:00"), "call", 300.0),
        ("c1", TS("2026-06-23 10:00"), "email_open", np.nan),  # 7 days before: inside 7d
        ("c1", TS("2026-06-22 10:00"), "email_open", np.nan),  # 8 days before: outside 7d
        ("c2", TS("2026-07-01 10:00"), "meeting", 3600.0),  # future
        ("c2", TS("2026-04-15 10:00"), "web_visit", 60.0),
    ]
    return pd.DataFrame(rows, columns=["customer_id", "ts", "type", "duration_s"])


@pytest.fixture
def hand_cfg(workdir):
    root = workdir / "hand"
    write_tables(root, _customers(), _transactions(), _interactions())
    cfg = small_config(root)
    cfg.data.tables.labels = None
    return cfg


def test_rfm_and_windows_exact_values(hand_cfg):
    f = build(hand_cfg, with_labels=False).features.set_index("customer_id")
    c1 = f.loc["c1"]
    assert c1["rfm_recency_days"] == 1
    assert c1["rfm_frequency"] == 3  # i1, i2, i3 (the return i4 is not a purchase; i5 is the future)
    assert c1["rfm_monetary"] == pytest.approx(100 + 50 + 20 - 30)
    assert c1["rfm_monetary_div_frequency"] == pytest.approx(170 / 3)
    assert c1["rfm_return_lines"] == 1 and c1["rfm_return_amount"] == pytest.approx(30)
    assert c1["rfm_frequency_30d"] == 2  # 1 and 30 days before; 31 days is outside
    assert c1["rfm_frequency_7d"] == 1
    assert c1["rfm_frequency_trend_30d"] == 2 - 1
    assert c1["rfm_gap_mean_days"] == pytest.approx((1 + 29) / 2)
    assert c1["ix_call_7d"] == 1 and c1["ix_email_open_7d"] == 1 and c1["ix_email_open_30d"] == 2
    assert c1["ix_recency_days"] == 1
    assert c1["ix_duration_s_30d"] == pytest.approx(300)
    c3 = f.loc["c3"]
    assert c3["rfm_frequency"] == 1 and c3["rfm_monetary"] == pytest.approx(15)  # one invoice, two lines


def test_monetary_is_net_of_every_returned_line_counted_once(hand_cfg):
    c2 = build(hand_cfg, with_labels=False).features.set_index("customer_id").loc["c2"]
    assert c2["rfm_frequency"] == 2  # j1 (net +70) and j2; j3 is a return
    assert c2["rfm_monetary"] == pytest.approx(100 - 30 + 20 - 50)
    assert c2["rfm_return_lines"] == 2 and c2["rfm_return_amount"] == pytest.approx(80)
    assert c2["ix_meeting_90d"] == 0  # the meeting is after the as-of date
    assert c2["cust_tenure_days"] == (AS_OF - dt.date(2026, 6, 1)).days


def test_customers_without_events_get_zero_counts_and_missing_recency(hand_cfg):
    c3 = build(hand_cfg, with_labels=False).features.set_index("customer_id").loc["c3"]
    assert c3["ix_count"] == 0 and c3["ix_count_30d"] == 0
    assert np.isnan(c3["ix_recency_days"])


def test_customer_created_after_as_of_does_not_exist_yet(hand_cfg):
    f = build(hand_cfg, with_labels=False).features
    assert "late" not in set(f["customer_id"])
    assert f["customer_id"].is_unique and len(f) == 3


def test_personal_columns_never_become_features(hand_cfg):
    f = build(hand_cfg, with_labels=False).features
    for col in f.columns:
        assert col not in {
            "cust_contact_name",
            "cust_email",
            "cust_phone",
            "contact_name",
            "email",
            "phone",
        }, col
    assert "a@x" not in f.astype(str).to_numpy().ravel().tolist()


def test_events_after_as_of_change_no_feature(demo_data):
    """Point in time: appending future events (on/after the as-of date) leaves every feature equal."""
    cfg = demo_data
    root = cfg.data_path(".")
    before = build(cfg, with_labels=False).features
    tx = pd.read_parquet(root / "transactions.parquet")
    ix = pd.read_parquet(root / "interactions.parquet")
    rng = np.random.default_rng(0)
    ids = tx["customer_id"].sample(500, random_state=1).to_numpy()
    future = pd.to_datetime(AS_OF) + pd.to_timedelta(rng.integers(0, 200 * 86400, len(ids)), unit="s")
    tx2 = pd.concat(
        [
            tx,
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "ts": future,
                    "invoice_id": [f"F{i}" for i in range(len(ids))],
                    "product_id": "P1",
                    "channel": "online",
                    "quantity": 1,
                    "amount": 1e6,
                }
            ),
        ],
        ignore_index=True,
    )
    ix2 = pd.concat(
        [ix, pd.DataFrame({"customer_id": ids, "ts": future, "type": "meeting", "duration_s": 100.0})],
        ignore_index=True,
    )
    tx2.astype(tx.dtypes.to_dict()).to_parquet(root / "transactions.parquet", index=False)
    ix2.astype(ix.dtypes.to_dict()).to_parquet(root / "interactions.parquet", index=False)
    after = build(cfg, with_labels=False).features
    pd.testing.assert_frame_equal(before, after)


def test_a_customer_scored_in_a_small_file_gets_the_features_of_the_full_run(demo_data, caplog):
    """RFM quintiles rank against the configured customers' buyers, so who else is scored changes nothing."""
    cfg = demo_data
    full = build(cfg, with_labels=False).features.set_index("customer_id")
    customers = pd.read_parquet(cfg.data_path("customers.parquet"))
    few = customers[customers["customer_id"].isin(full.index[full["rfm_frequency"] > 0][:7])]
    few.to_parquet(cfg.data_path("few.parquet"), index=False)
    scoring = cfg.model_copy(update={"predict": cfg.predict.model_copy(update={"input": "few.parquet"})})
    alone = features_of(scoring, few["customer_id"].astype(str).tolist(), cfg.data.as_of).set_index("customer_id")
    assert len(alone) == 7
    scores = ["rfm_r_score", "rfm_f_score", "rfm_m_score", "rfm_score", "rfm_segment"]
    assert alone[scores].nunique().max() > 1  # the 7 are not all alike: the test can tell ranks apart
    pd.testing.assert_frame_equal(alone, full.loc[alone.index, alone.columns], check_dtype=False)
    # without the customers table the 7 can only be ranked among themselves, and the run says so
    cfg.data_path("customers.parquet").rename(cfg.data_path("elsewhere.parquet"))
    ids = few["customer_id"].astype(str).tolist()
    among_themselves = features_of(scoring, ids, cfg.data.as_of).set_index("customer_id")
    assert "RFM quintile scores rank the scored customers among themselves" in caplog.text
    assert not among_themselves[scores].equals(alone[scores])


def test_a_scored_buyer_outside_the_customer_base_ranks_as_if_it_joined_it(demo_data):
    """New prospects who already bought are scored against the base's buyers, never as 'no purchase' (0)."""
    cfg = demo_data
    full = build(cfg, with_labels=False).features.set_index("customer_id")
    customers = pd.read_parquet(cfg.data_path("customers.parquet"))
    buyers = full.index[full["rfm_frequency"] > 0]
    new_ids = list(buyers[::40])  # spread over the ranks
    is_new = customers["customer_id"].astype(str).isin(new_ids)
    customers[is_new].to_parquet(cfg.data_path("prospects.parquet"), index=False)
    customers[~is_new].to_parquet(cfg.data_path("customers.parquet"), index=False)  # not in the base
    scoring = cfg.model_copy(update={"predict": cfg.predict.model_copy(update={"input": "prospects.parquet"})})
    scored = features_of(scoring, new_ids, cfg.data.as_of).set_index("customer_id").loc[new_ids]
    base = full.loc[buyers.difference(new_ids)]
    for score, source, better_is_lower in (
        ("rfm_r_score", "rfm_recency_days", True),
        ("rfm_f_score", "rfm_frequency", False),
        ("rfm_m_score", "rfm_monetary", False),
    ):
        mine = full.loc[new_ids, source].to_numpy()[:, None]
        below = (base[source].to_numpy() > mine) if better_is_lower else (base[source].to_numpy() < mine)
        expected = np.minimum(5, 1 + np.floor(5 * below.sum(axis=1) / len(base)))
        np.testing.assert_array_equal(scored[score].to_numpy(dtype=float), expected, err_msg=score)
    assert scored["rfm_r_score"].min() >= 1 and scored["rfm_r_score"].nunique() > 2
    assert (scored["rfm_segment"] != "no_purchase").all()


def test_feature_build_is_deterministic(demo_data, monkeypatch):
    """Bit for bit, even when DuckDB adds up many small row groups on several threads."""
    import leadtier.pipelines.features as stage

    root = demo_data.data_path("")
    for name in ("transactions", "interactions"):
        pd.read_parquet(root / f"{name}.parquet").to_parquet(root / f"{name}.parquet", row_group_size=500)
    plain = stage.connect
    monkeypatch.setattr(stage, "connect", lambda cfg=None, threads=None, **kw: plain(cfg, threads=4, **kw))
    a = build(demo_data, with_labels=False).features
    for _ in range(3):
        pd.testing.assert_frame_equal(a, build(demo_data, with_labels=False).features, check_exact=True)
    assert a["customer_id"].is_monotonic_increasing


def test_every_sql_file_states_its_grain():
    for fam in ("customers", "rfm", "interactions"):
        sql = render_family(fam, AS_OF, interaction_types=["call"])
        assert "One row per customer, as of" in sql
        assert ":as_of" not in sql and "DATE '2026-06-30'" in sql


def test_feature_query_requires_customers_family_and_a_date():
    with pytest.raises(ValueError, match="customers"):
        feature_query(["rfm"], AS_OF)
    with pytest.raises(TypeError, match="as_of must be a date"):
        render_family("rfm", "2026-06-30")  # type: ignore[arg-type]


def test_slug_names_columns_consistently():
    assert slug("Total Time Spent on Website") == "total_time_spent_on_website"
    assert slug("Page Views Per Visit") == "page_views_per_visit"
    assert slug("2nd choice") == "c_2nd_choice"
    assert slug("城市") == "城市" and slug("预算 (万元)") == "预算_万元" and slug("Région") == "région"
    with pytest.raises(ValueError, match="no letters"):
        slug("???")


def test_columns_named_in_chinese_become_features_that_read_in_chinese(tmp_path):
    from leadtier.features.meta import phrase
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.demo_data import write_demo
    from leadtier.pipelines.features import build

    cfg = load_config(REPO / "configs" / "demo.yaml", data_root=str(tmp_path))
    write_demo(cfg, n_customers=200)
    customers = pd.read_parquet(tmp_path / "customers.parquet")
    customers.rename(columns={"region": "地区", "annual_revenue_musd": "年收入(百万美元)"}).to_parquet(
        tmp_path / "customers.parquet", index=False
    )
    spec = cfg.data.tables.customers
    spec.categorical = [c if c != "region" else "地区" for c in spec.categorical]
    spec.numeric = ["年收入(百万美元)"]
    feats = build(cfg, with_labels=False).features
    assert feats["cust_地区"].tolist() == customers["region"].astype(str).tolist()
    pd.testing.assert_series_equal(
        feats["cust_年收入_百万美元"], customers["annual_revenue_musd"], check_names=False, check_dtype=False
    )
    assert phrase("cust_地区", "north", lang="zh") == "地区：north"


def test_spark_sql_back_quotes_identifiers_with_letters_beyond_ascii():
    from leadtier.pipelines.spark import expr_to_spark, input_sql, to_spark_sql

    sql = to_spark_sql('SELECT c."城市" AS cust_城市, c.region AS cust_region FROM customers AS c')
    assert "`cust_城市`" in sql and "c.`城市`" in sql and "cust_region" in sql and "`cust_region`" not in sql
    assert expr_to_spark("\"行业\" = 'IT'") == "`行业` = 'IT'"
    assert input_sql("SELECT upper(城市) AS city FROM t WHERE 行业 = 'IT'") == (
        "SELECT UPPER(`城市`) AS city FROM t WHERE `行业` = 'IT'"
    )  # derived columns and exclude rules, as written in a config


def test_na_values_mean_missing_in_number_columns_as_in_categories(tmp_path):
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.demo_data import write_demo
    from leadtier.pipelines.features import build
    from leadtier.pipelines.sources import InputError

    cfg = load_config(REPO / "configs" / "demo.yaml", data_root=str(tmp_path))
    write_demo(cfg, n_customers=200)
    customers = pd.read_parquet(tmp_path / "customers.parquet")
    revenue = customers["annual_revenue_musd"].astype(str)
    revenue[[0, 5]] = [" n/a ", "unknown"]
    customers.assign(annual_revenue_musd=revenue).to_parquet(tmp_path / "customers.parquet", index=False)
    with pytest.raises(InputError, match="'annual_revenue_musd'.*2 value"):
        build(cfg, with_labels=False)
    cfg.data.tables.customers.na_values = ["n/a", "unknown"]
    feats = build(cfg, with_labels=False).features.set_index("customer_id")
    got = feats.loc[customers["customer_id"].astype(str), "cust_annual_revenue_musd"].to_numpy()
    assert np.isnan(got[[0, 5]]).all() and np.allclose(got[1:5], customers["annual_revenue_musd"][1:5])


def test_a_number_that_means_missing_is_missing_whether_the_file_holds_numbers_or_text(tmp_path):
    """na_values: [999] ('never contacted') in a number column: the same rows are missing when the file's
    column is numbers and when one 'n/a' elsewhere makes it text, so a row's features (and score) do not
    depend on the other rows of its file."""
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.demo_data import write_demo
    from leadtier.pipelines.features import build

    cfg = load_config(REPO / "configs" / "demo.yaml", data_root=str(tmp_path))
    write_demo(cfg, n_customers=200)
    cfg.data.tables.customers.na_values = ["n/a", "999"]
    customers = pd.read_parquet(tmp_path / "customers.parquet")
    revenue = customers["annual_revenue_musd"].astype(float)
    revenue[[0, 5]] = 999.0
    got = {}
    for kind, column in (("numbers", revenue), ("text", revenue.astype(str).mask(revenue.index == 7, "n/a"))):
        customers.assign(annual_revenue_musd=column).to_parquet(tmp_path / "customers.parquet", index=False)
        feats = build(cfg, with_labels=False).features.set_index("customer_id")
        got[kind] = feats.loc[customers["customer_id"].astype(str), "cust_annual_revenue_musd"].to_numpy()
    assert np.isnan(got["numbers"][[0, 5]]).all() and not np.isnan(got["numbers"][7])
    np.testing.assert_allclose(np.delete(got["numbers"], 7), np.delete(got["text"], 7))
    assert np.isnan(got["text"][7]) and np.allclose(got["numbers"][1:5], revenue[1:5])

"""REST scoring: MLflow's scoring server started by pipelines.serve answers like the batch predictions."""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from leadtier.pipelines import serve

from tests.conftest import tiny_trained_world

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_command_binds_loopback_and_runs_the_limited_app_in_this_interpreter():
    cmd = serve.command(port=5099)
    assert cmd[:3] == [sys.executable, "-m", "uvicorn"] and cmd[-1] == "leadtier.pipelines.rest:app"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "5099"
    assert serve.pinned("models:/x@champion", "7") == "models:/x/7"
    assert serve.pinned("runs:/r/model", "") == "runs:/r/model"
    assert json.loads(serve.payload(pd.DataFrame({"a": [1.5, np.nan], "b": ["x", None]}))) == {
        "dataframe_split": {"columns": ["a", "b"], "data": [[1.5, "x"], [None, None]]}
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    yield from tiny_trained_world(tmp_path_factory, "serve", adjust=lambda cfg: setattr(cfg.report, "currency", "£"))


def test_a_busy_port_is_one_clear_error_before_anything_starts(trained):
    from leadtier.pipelines.cli import _user_errors

    cfg, _ = trained
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        echoed: list[str] = []
        with pytest.raises(
            serve.PortBusyError, match=rf"cannot serve on 127\.0\.0\.1:{port}: .*choose another with --port"
        ):
            serve.run(cfg, host="127.0.0.1", port=port, echo=echoed.append)
    assert echoed == []  # no "serving ..." line for a server that never ran
    assert issubclass(serve.PortBusyError, _user_errors())  # the CLI prints it as one error: line, exit 2


@pytest.fixture(scope="module")
def server(trained):
    """The scoring server on a free loopback port; always stopped (whole process group) afterwards."""
    cfg, work = trained
    cfg.serve.max_request_mb = 1  # the limit tests send a little more than this
    port = free_port()
    url = serve.base_url("127.0.0.1", port)
    with open(work / "server.log", "wb") as log:
        proc = serve.start(cfg, host="127.0.0.1", port=port, log_file=log)
        try:
            try:
                serve.wait_ready(url, proc, timeout_s=90)
            except serve.ServeError as exc:
                log.flush()
                pytest.fail(f"{exc}\n{(work / 'server.log').read_text(errors='replace')[-3000:]}")
            yield url
        finally:
            serve.stop(proc)
    assert proc.poll() is not None


@pytest.fixture(scope="module")
def batch(trained):
    """Features and batch predictions (leadtier predict) for every customer."""
    from leadtier.pipelines import features, predict

    cfg, work = trained
    feats = features.build(cfg, with_labels=False).features
    res = predict.run(
        cfg, input_path=str(cfg.data_path("customers.parquet")), output=str(work / "batch.parquet"), progress=False
    )
    return feats, pd.read_parquet(res.output).set_index("customer_id")


def _post(url: str, body: str) -> dict:
    req = urllib.request.Request(
        f"{url}/invocations", data=body.encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
        return json.loads(resp.read().decode("utf-8"))


def test_rest_predictions_equal_batch_predictions(server, batch):
    feats, want = batch
    pick = (
        pd.concat(
            [
                feats[feats["cust_annual_revenue_musd"].isna()].head(5),  # missing numbers travel as null
                feats[feats["rfm_recency_days"].isna()].head(5),
                feats.head(20),
            ]
        )
        .drop_duplicates("customer_id")
        .head(20)
    )
    assert len(pick) == 20 and pick.drop(columns="customer_id").isna().any().any()

    body = _post(server, serve.payload(pick.drop(columns="customer_id")))
    assert list(body) == ["predictions"] and isinstance(body["predictions"], list)
    assert len(body["predictions"]) == 20 and isinstance(body["predictions"][0], dict)
    got = pd.DataFrame(body["predictions"])
    exp = want.loc[pick["customer_id"]].reset_index(drop=True)
    probas = [c for c in exp.columns if c.startswith("proba_")]
    assert set(got.columns) == {"tier", "score", "segment_id", "segment", *probas}
    assert got["tier"].tolist() == exp["tier"].tolist()
    for c in [*probas, "score"]:
        g, e = got[c].to_numpy(float), exp[c].to_numpy(float)
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-6, err_msg=c)
    assert got["segment_id"].tolist() == exp["segment_id"].tolist()
    assert got["segment"].tolist() == exp["segment"].tolist()


def test_missing_text_and_all_missing_numbers_are_accepted(server, trained, batch):
    """null in text columns, and a number column that is null in every row of the request."""
    import mlflow

    cfg, _ = trained
    feats, _ = batch
    rows = feats[feats["rfm_recency_days"].isna()].head(3).drop(columns="customer_id").reset_index(drop=True)
    rows.loc[0, "cust_region"] = None
    rows.loc[1, ["cust_industry", "cust_lead_source"]] = None
    got = serve.invoke(server, rows)
    model = mlflow.pyfunc.load_model(f"models:/{cfg.mlflow.model_name}@champion")
    exp = model.predict(rows)
    assert got["tier"].tolist() == exp["tier"].tolist()
    for c in [c for c in exp.columns if c.startswith("proba_")]:
        g, e = got[c].to_numpy(float), exp[c].to_numpy(float)
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-6, err_msg=c)


def test_a_request_missing_a_feature_column_is_a_400_naming_it(server, batch):
    feats, _ = batch
    rows = feats.head(2).drop(columns=["customer_id", "rfm_recency_days"])
    req = urllib.request.Request(
        f"{server}/invocations",
        data=serve.payload(rows).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=60)
    assert err.value.code == 400
    message = json.loads(err.value.read().decode("utf-8"))["message"]
    assert "rfm_recency_days" in message, message


# --------------------------------------------------------------------------- limits

LIMIT = 2**20  # serve.max_request_mb = 1 in the server fixture


def _raw(url: str, head: dict[str, str], parts, timeout_s: float = 30.0) -> tuple[int, bytes, float]:
    """POST ``parts`` (bytes, sent one by one) to /invocations with the given headers; stops sending as soon
    as the server answers or closes. Returns (status, answer body, seconds)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    t0 = time.monotonic()
    try:
        conn.putrequest("POST", "/invocations")
        for k, v in head.items():
            conn.putheader(k, v)
        conn.endheaders()
        for part in parts:
            try:
                conn.send(part)
            except (BrokenPipeError, ConnectionResetError):  # the server answered and closed: stop sending
                break
        resp = conn.getresponse()
        return resp.status, resp.read(), time.monotonic() - t0
    finally:
        conn.close()


def test_a_body_over_the_limit_is_refused_with_413_before_it_is_read(server, batch):
    feats, _ = batch
    ok = serve.payload(feats.head(3).drop(columns="customer_id")).encode("utf-8")
    # announced: 95 MB said, 64 KB sent; the answer comes without waiting for the rest
    status, body, seconds = _raw(
        server,
        {"Content-Type": "application/json", "Content-Length": str(95 * 2**20)},
        [b" " * 65536],
    )
    assert status == 413 and seconds < 10, (status, body[:300])
    assert "larger than 1,048,576 bytes" in json.loads(body)["message"]
    # chunked, no length: cut off once past the limit (at most 24 chunks of 64 KB are offered)
    chunk = b"10000\r\n" + b" " * 65536 + b"\r\n"
    status, body, _ = _raw(
        server,
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        [chunk] * 24 + [b"0\r\n\r\n"],
    )
    assert status == 413, (status, body[:300])
    # just under the limit is scored as before
    padded = ok + b" " * (LIMIT - len(ok) - 1)
    status, body, _ = _raw(server, {"Content-Type": "application/json", "Content-Length": str(len(padded))}, [padded])
    assert status == 200 and len(json.loads(body)["predictions"]) == 3


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("application/json", b'{"dataframe_split": {"columns": ["a"], "data": [["SECRET-BODY-1' + b"x" * 50_000 + b'"'),
        ("application/json", b"\xff\xfeSECRET-BODY-2" + b"\xfe" * 50_000),
        ("application/json", b'{"no_such_key": ["SECRET-BODY-3' + b"y" * 50_000 + b'"]}'),
        ("text/csv", b"a,b\nSECRET-BODY-4" + b"z" * 50_000 + b",1\n"),
        ("application/xml; SECRET-BODY-5=1", b"<x>SECRET-BODY-5</x>"),
    ],
    ids=["truncated-json", "not-utf8", "unknown-key", "csv-wrong-columns", "content-type"],
)
def test_a_malformed_body_is_never_echoed(server, content_type, body):
    status, answer, _ = _raw(server, {"Content-Type": content_type, "Content-Length": str(len(body))}, [body])
    assert 400 <= status < 500, (status, answer[:300])
    assert b"SECRET-BODY" not in answer and len(answer) < 1_000, answer[:300]
    assert b"stack_trace" not in answer and json.loads(answer)["message"]


def test_a_missing_column_is_still_a_400_naming_it_without_the_rows(server, batch):
    feats, _ = batch
    rows = feats.head(2).drop(columns=["customer_id", "rfm_recency_days"])
    rows["cust_region"] = ["SECRET-ROW-VALUE-1", "SECRET-ROW-VALUE-2"]
    body = serve.payload(rows).encode("utf-8")
    status, answer, _ = _raw(server, {"Content-Type": "application/json", "Content-Length": str(len(body))}, [body])
    assert status == 400 and b"rfm_recency_days" in answer and b"SECRET-ROW" not in answer, answer[:500]


def test_error_messages_lose_the_request_values_they_quote():
    from leadtier.pipelines.rest import RequestLimits, without_request

    msg = (
        "Invalid input. Failed to convert column cust_tenure_days to type 'float64'. "
        "Error: 'ValueError(\"could not convert string to float: 'SECRET'\")'"
    )
    got = without_request(msg, b'{"dataframe_split": {"data": [["SECRET"]]}}')
    assert "SECRET" not in got and "cust_tenure_days" in got and "'float64'" in got
    frame = "Failed to predict data '   a\n0  SECRET'. \nError: the feature table lacks 1 column(s): ['rfm_x']"
    assert without_request(frame, b"a\nSECRET") == "the feature table lacks 1 column(s): ['rfm_x']"
    assert len(without_request("x" * 100_000, b"")) < 600
    missing = "the feature table lacks 1 column(s) the model was trained with: ['ix_count']"
    split = b'{"dataframe_split": {"columns": ["ix_count_7d", "note"], "data": [[1, "SECRET"]]}}'
    assert without_request(missing, split) == missing  # a column name, though part of one the request sends
    assert "SECRET" not in without_request("bad value 'SECRET'", split)
    records = b'{"dataframe_records": [{"ix_count_7d": 1, "cust_region": "ix_count"}]}'
    assert "'ix_count'" not in without_request(missing, records)  # also a cell value: masked
    csv = b"ix_count_7d,cust_region\n1,SECRET"
    assert without_request(missing, csv) == missing and "SECRET" not in without_request("'SECRET'", csv)
    broken = b'{"dataframe_split": {"columns": ["a"], "data": [["SECRET"]]'
    assert "SECRET" not in without_request("bad 'SECRET'", broken)
    with pytest.raises(ValueError, match="positive number of bytes. Got 0 instead"):
        RequestLimits(None, 0)


def test_a_request_the_model_would_misread_is_a_400_naming_the_column_or_row():
    from leadtier.pipelines.rest import request_problem

    schema = {"cust_region": "string", "rfm_recency_days": "double"}

    def split(columns, data):
        return json.dumps({"dataframe_split": {"columns": columns, "data": data}})

    ok = split(["customer_id", "cust_region", "rfm_recency_days"], [["C1", "north", 3.0], ["C2", None, None]])
    assert request_problem(ok, schema) is None
    short = split(["cust_region", "rfm_recency_days"], [["north", 3.0], ["south"], ["east"]])
    assert request_problem(short, schema).startswith("dataframe_split: row 1 has 1 values, columns has 2 (2 such rows)")
    twice = split(["cust_region", "cust_region", "rfm_recency_days"], [["a", "b", 1.0]])
    assert request_problem(twice, schema) == "column(s) ['cust_region'] named more than once"
    unknown = split(["cust_region", "rfm_recency_days", "zzz"], [["a", 1.0, 2]])
    assert request_problem(unknown, schema).startswith("unknown column(s) ['zzz']; the model reads 2 feature columns")
    number = split(["cust_region", "rfm_recency_days"], [["a", 1.0], [5, 1.0]])
    assert request_problem(number, schema).startswith("column 'cust_region' holds text, but row 1 gives a number")
    records = json.dumps({"dataframe_records": [{"cust_region": "a", "rfm_recency_days": 1.0, "zzz": 0}]})
    assert request_problem(records, schema).startswith("unknown column(s) ['zzz']")
    assert request_problem(json.dumps({"dataframe_records": [{"cust_region": True}]}), schema).startswith(
        "column 'cust_region' holds text, but row 0"
    )
    negative = split(["cust_region", "rfm_recency_days"], [["a", 1.0], ["b", -5.0]])
    assert request_problem(negative, schema) == (
        "column 'rfm_recency_days' counts days, never below 0 in the feature table `leadtier features` builds, "
        "but row 1 gives a negative number"
    )
    signed = {"rfm_monetary": "double", "cust_budget": "double", "ix_duration_s_30d": "double"}  # as the input says
    assert (
        request_problem(split(["rfm_monetary", "cust_budget", "ix_duration_s_30d"], [[-20.0, -1.0, -3.0]]), signed)
        is None
    )
    assert request_problem("{not json", schema) is None  # MLflow's own answer, without the body
    nan = '{"dataframe_split": {"columns": ["cust_region", "rfm_recency_days"], "data": [[NaN, 1.0]]}}'
    assert request_problem(nan, schema) is None  # NaN is missing to MLflow, as null is
    assert request_problem(split([["cust_region"]], [[1]]), schema) is None  # MLflow refuses it itself
    excluded = {**schema, "cust_lead_number": "ignored"}  # a feature-table column features.exclude keeps out
    assert request_problem(split(["cust_region", "cust_lead_number"], [["a", 7]]), excluded) is None
    assert "the model reads 2 feature columns" in request_problem(split(["zzz"], [[1]]), excluded)


def test_the_server_refuses_short_rows_unknown_languages_and_a_get_with_a_reason(server, batch):
    feats, _ = batch
    rows = feats.head(2).drop(columns="customer_id")
    doc = json.loads(serve.payload(rows))
    doc["dataframe_split"]["data"][0] = doc["dataframe_split"]["data"][0][:-3]  # pandas would pad it with nulls
    body = json.dumps(doc).encode("utf-8")
    status, answer, _ = _raw(server, {"Content-Type": "application/json", "Content-Length": str(len(body))}, [body])
    assert status == 400 and "row 0 has" in json.loads(answer)["message"], answer[:500]
    doc = json.loads(serve.payload(rows))
    doc["params"] = {"lang": "fr"}
    body = json.dumps(doc).encode("utf-8")
    status, answer, _ = _raw(server, {"Content-Type": "application/json", "Content-Length": str(len(body))}, [body])
    assert status == 400 and "params.lang must be en or zh. Got" in json.loads(answer)["message"]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{server}/invocations", timeout=30)
    assert err.value.code == 405 and "POST /invocations" in json.loads(err.value.read())["message"]


def test_reasons_over_rest_equal_batch_reasons_money_in_the_configured_currency(server, trained, batch):
    """The server has the model alone: the currency of report.currency travels in it."""
    from leadtier.pipelines import predict

    cfg, work = trained
    feats, _ = batch
    res = predict.run(
        cfg,
        input_path=str(cfg.data_path("customers.parquet")),
        output=str(work / "why.parquet"),
        progress=False,
        reasons=True,
    )
    want = pd.read_parquet(res.output).set_index("customer_id")
    rows = feats.head(30)
    doc = json.loads(serve.payload(rows.drop(columns="customer_id")))
    doc["params"] = {"reasons": True, "lang": "en"}
    got = pd.DataFrame(_post(server, json.dumps(doc))["predictions"])
    assert got["reasons"].tolist() == want.loc[rows["customer_id"], "reasons"].tolist()
    assert got["reasons"].str.contains("£", regex=False).any(), got["reasons"].head().tolist()


def test_text_values_never_seen_in_training_are_scored_and_said(server, trained, batch, caplog):
    """A new region over REST: scored as the registered model scores it in-process, and the answer says which
    column and rows, without the value; a request without such values has no warnings."""
    import mlflow

    cfg, _ = trained
    feats, _ = batch
    rows = feats.head(3).drop(columns="customer_id").reset_index(drop=True)
    rows.loc[[0, 2], "cust_region"] = "Atlantis"  # no customer of the training data is there
    body = _post(server, serve.payload(rows))
    assert body["warnings"] == ["column 'cust_region': 2 row(s) with a value never seen in training (row 0, 2)"]
    exp = mlflow.pyfunc.load_model(f"models:/{cfg.mlflow.model_name}@champion").predict(rows)
    got = pd.DataFrame(body["predictions"])
    assert got["tier"].tolist() == exp["tier"].tolist()
    probas = [c for c in exp.columns if c.startswith("proba_")]
    np.testing.assert_allclose(got[probas].to_numpy(float), exp[probas].to_numpy(float), rtol=0, atol=1e-6)
    assert "warnings" not in _post(server, serve.payload(feats.head(3).drop(columns="customer_id")))
    with caplog.at_level("WARNING", logger="leadtier.pipelines.serve"):
        assert len(serve.invoke(server, rows)) == 3
    assert "never seen in training (row 0, 2)" in caplog.text and "Atlantis" not in caplog.text


def test_unseen_notes_name_columns_and_rows_never_values():
    from leadtier.pipelines.rest import unseen_notes

    cats = {"cust_region": ["north", "south"], "cust_industry": ["retail"]}
    records = json.dumps(
        {"dataframe_records": [{"cust_region": "west", "cust_industry": None}] * 7 + [{"cust_region": "north"}]}
    )
    assert unseen_notes(records, cats) == [
        "column 'cust_region': 7 row(s) with a value never seen in training (row 0, 1, 2, 3, 4 and 2 more)"
    ]
    split = json.dumps({"dataframe_split": {"columns": ["cust_industry"], "data": [["retail"], [None]]}})
    assert unseen_notes(split, cats) == [] and unseen_notes("{not json", cats) == []


def test_new_prospects_features_from_the_cli_score_over_rest_as_predict_scores_them(server, trained, tmp_path):
    """`leadtier features --input` builds what a REST client sends: the rows predict scores, as it builds them."""
    from leadtier.pipelines import predict
    from leadtier.pipelines.cli import app
    from typer.testing import CliRunner

    from tests.conftest import DEMO_CONFIG

    cfg, work = trained
    some = pd.read_parquet(cfg.data_path("customers.parquet")).head(40)
    prospects = tmp_path / "prospects.csv"
    pd.concat([some, some.head(1)]).to_csv(prospects, index=False)  # the last row repeats an id: left out
    out = tmp_path / "prospects_features.parquet"
    args = ["features", "--config", str(DEMO_CONFIG), "--data-root", str(cfg.data.root), "--input", str(prospects)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "needs --output with a .parquet name" in res.output, res.output
    res = CliRunner().invoke(app, [*args, "--output", str(out)])
    assert res.exit_code == 0, (res.output, res.exception)
    said = " ".join(res.output.split())
    assert "wrote 40 rows" in said and "1 input row(s) left out (1 duplicate customer_id" in said, said
    assert pd.read_csv(tmp_path / "prospects_features.rejects.csv")["input_row"].tolist() == [41]
    feats = pd.read_parquet(out)
    body = _post(server, serve.payload(feats.drop(columns="customer_id")))
    got = pd.DataFrame(body["predictions"])
    batch = predict.run(cfg, input_path=str(prospects), output=str(tmp_path / "p.parquet"), progress=False)
    want = pd.read_parquet(batch.output).set_index("customer_id").loc[feats["customer_id"]]
    assert got["tier"].tolist() == want["tier"].tolist()
    np.testing.assert_allclose(got["score"].to_numpy(float), want["score"].to_numpy(float), atol=1e-6)

"""REST scoring: MLflow's scoring server started by pipelines.serve answers like the batch predictions."""

from __future__ import annotations

import json
import socket
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


def test_command_binds_loopback_and_uses_the_local_environment():
    cmd = serve.command("models:/x@champion", port=5099)
    assert cmd[1:5] == ["-m", "mlflow", "models", "serve"]
    assert cmd[cmd.index("--env-manager") + 1] == "local" and cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--port") + 1] == "5099" and cmd[cmd.index("-m", 2) + 1] == "models:/x@champion"
    assert json.loads(serve.payload(pd.DataFrame({"a": [1.5, np.nan], "b": ["x", None]}))) == {
        "dataframe_split": {"columns": ["a", "b"], "data": [[1.5, "x"], [None, None]]}
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    yield from tiny_trained_world(tmp_path_factory, "serve")


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
    assert serve.PortBusyError in _user_errors()  # the CLI prints it as one error: line, exit status 2


@pytest.fixture(scope="module")
def server(trained):
    """The scoring server on a free loopback port; always stopped (whole process group) afterwards."""
    cfg, work = trained
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

"""An evidence log in object storage: the whole cycle against a real S3 server (moto's, started
here on 127.0.0.1), through fsspec and s3fs as a service would use them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import RunCli
from tests.log_helpers import add_one_model, records

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

BUCKET = "evidence"


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """A moto S3 server on a free port of 127.0.0.1, with a bucket; the environment points boto at it."""
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", endpoint),
                            ("AWS_ENDPOINT_URL_S3", endpoint)):
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        try:
            yield endpoint
        finally:
            server.stop()


def test_a_log_on_s3(tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], s3: str) -> None:
    import boto3

    key, pub = keypair
    log = f"s3://{BUCKET}/service/log"
    model = add_one_model(tmp_path / "add.onnx")
    assert run_cli("log", "init", log, model).exit_code == 0
    np.savez(tmp_path / "xs.npz", x=records(40))
    np.savez(tmp_path / "ys.npz", y=records(40, start=1))
    result = run_cli("log", "append", log, "--inputs-npz", tmp_path / "xs.npz", "--claimed-npz", tmp_path / "ys.npz")
    assert result.exit_code == 0, result.output
    np.save(tmp_path / "x.npy", records(1, start=500)[0])
    assert run_cli("log", "append", log, "-i", f"x={tmp_path / 'x.npy'}", "--run").stdout.strip() == "40"
    assert run_cli("log", "checkpoint", log, "--sign", key).exit_code == 0
    proof = json.loads(run_cli("log", "prove", log, "--index", "7").stdout)
    assert proof["tree_size"] == 41
    assert run_cli("log", "export", log, "--index", "7", "--out", tmp_path / "r7.ogb").exit_code == 0
    assert run_cli("check", tmp_path / "r7.ogb", "--trusted-key", pub).exit_code == 0
    result = run_cli("audit", log, "--trusted-key", pub, "--sample", "all", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sampled"] == 41
    # the objects are where the layout says, in the bucket
    client = boto3.client("s3", endpoint_url=s3)
    names = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="service/log/")["Contents"]}
    assert {"service/log/log.json", "service/log/size", "service/log/checkpoint", "service/log/data/000",
            "service/log/tile/0/000.p/41", "service/log/tile/entries/000.p/41"} <= names
    # a record rewritten in the bucket after the checkpoint fails the audit
    pack = client.get_object(Bucket=BUCKET, Key="service/log/data/000")["Body"].read()
    client.put_object(Bucket=BUCKET, Key="service/log/data/000", Body=pack[:-1] + bytes([pack[-1] ^ 1]))
    result = run_cli("audit", log, "--trusted-key", pub, "--sample", "all", "--format", "json", "--no-explain")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["failed_indices"] == [39]

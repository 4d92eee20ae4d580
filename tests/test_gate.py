"""The CI gate: many bundles with --jobs N on a worker pool, or on a Dask cluster; one exit code."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ogverify
from ogverify.errors import ReplayError, UsageError
from ogverify.evidence.comparison import ComparisonSpec
from ogverify.evidence.execution import ExecutionConfig
from ogverify.evidence.signing import generate_key_pair, load_trusted_keys
from ogverify.packing.pack import runtime_version
from ogverify.report.findings import Report
from ogverify.runtime.jobs import CheckJob, TensorFile
from ogverify.runtime.runner import SessionCache
from ogverify.verify.batch import Checked, CheckSpec, PoolStats, check_all, collect_targets
from ogverify.verify.gate import run_gate
from ogverify.verify.pipeline import CheckOptions
from tests.bundle_helpers import single_error_line
from tests.conftest import RunCli
from tests.fixtures import models
from tests.gate_helpers import Corpus, build_corpus, reference_run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Corpus, Path]:
    """32 bundles: 14 pass, 6 fail, 6 tampered, 6 unsigned; and the public key that signed them."""
    root = tmp_path_factory.mktemp("gate")
    key = root / "producer.key"
    _, public, _ = generate_key_pair(key)
    return build_corpus(root, key), public


def reports_by_bundle(stdout: str) -> dict[str, dict[str, Any]]:
    document = json.loads(stdout)
    return {r["bundle"]: r for r in document["reports"]}


def assert_corpus_verdicts(corpus: Corpus, reports: dict[str, dict[str, Any]]) -> None:
    assert set(reports) == set(corpus.expected)
    for bundle, expected in corpus.expected.items():
        report = reports[bundle]
        assert report["verdict"] == expected, (bundle, report["headline"])
        name = Path(bundle).name
        if name.startswith("pass"):
            assert report["headline"] == "VERIFIED: outputs reproduced"
        elif name.startswith("fail"):
            assert report["headline"].startswith("FAILED: output 'y' [exact]: "), report["headline"]
        elif name.startswith("tampered"):
            assert report["headline"].startswith("FAILED: input 'x': "), report["headline"]
        else:
            assert report["headline"] == "FAILED: bundle is not signed", report["headline"]


def test_gate_over_32_bundles_with_two_jobs(corpus: tuple[Corpus, Path], run_cli: RunCli) -> None:
    bundles, public = corpus
    assert len(bundles.expected) >= 30
    started = time.monotonic()
    result = run_cli("check", bundles.folder, "--jobs", "2", "--trusted-key", public, "--no-explain",
                     "--format", "json")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.stderr
    reports = reports_by_bundle(result.stdout)
    assert_corpus_verdicts(bundles, reports)
    document = json.loads(result.stdout)
    assert (document["verdict"], document["exit_code"]) == ("failed", 1)
    # Bundles come back in sorted order whatever order the workers finished in.
    assert [r["bundle"] for r in document["reports"]] == sorted(bundles.expected)
    # Re-executions ran on the workers' cached sessions, not a process each.
    passing = [r for r in reports.values() if r["verdict"] == "verified"]
    assert {r["replay"]["process"] for r in passing} == {"worker"}
    # Progress and the summary table go to stderr; the report alone to stdout.
    assert "32/32" in result.stderr
    assert "32 bundles: 14 verified, 18 failed, 0 error" in result.stderr
    assert elapsed < 60, f"the gate took {elapsed:.1f} s for 32 bundles"


def test_gate_exit_code_is_the_worst_verdict(corpus: tuple[Corpus, Path], run_cli: RunCli, tmp_path: Path) -> None:
    bundles, public = corpus
    passing = sorted(b for b in bundles.expected if Path(b).name.startswith("pass"))[:4]
    result = run_cli("check", *passing, "--jobs", "2", "--trusted-key", public)
    assert result.exit_code == 0, result.output
    # `check DIR --jobs 2 > out`: the report alone goes to stdout; the summary, counted, to stderr.
    assert "summary" not in result.stdout and "summary" in result.stderr
    assert result.stderr.endswith("4 bundles: 4 verified, 0 failed, 0 error\n")
    junk = tmp_path / "junk.ogb"
    junk.write_bytes(b"not a bundle" * 50)
    failing = next(b for b in bundles.expected if Path(b).name.startswith("fail"))
    result = run_cli("check", *passing, failing, junk, "--jobs", "2", "--trusted-key", public, "--no-explain",
                     "--format", "json")
    assert result.exit_code == 3
    verdicts = {Path(r["bundle"]).name: r["verdict"] for r in json.loads(result.stdout)["reports"]}
    assert verdicts["junk.ogb"] == "error"
    assert verdicts[Path(failing).name] == "failed"


def test_models_are_loaded_once_per_worker(corpus: tuple[Corpus, Path]) -> None:
    bundles, public = corpus
    passing = sorted(b for b in bundles.expected if Path(b).name.startswith("pass"))
    keys = load_trusted_keys([public])
    spec = CheckSpec.from_options(CheckOptions(trusted_keys=keys))
    stats = PoolStats()
    results = check_all(passing, spec, jobs=2, stats=stats)
    assert [r.report.verdict.value for r in results] == ["verified"] * len(passing)
    assert stats.workers_started == 2
    # Two models (by digest) on two workers: at most four loads for 14 bundles; the rest re-used.
    assert stats.sessions_loaded <= 4
    assert stats.sessions_loaded + stats.sessions_reused == len(passing)


def test_gate_via_dask_local_cluster(corpus: tuple[Corpus, Path], run_cli: RunCli) -> None:
    distributed = pytest.importorskip("distributed")
    bundles, public = corpus
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        result = run_cli("check", bundles.folder, "--dask-scheduler", cluster.scheduler_address,
                         "--trusted-key", public, "--no-explain", "--format", "json")
    assert result.exit_code == 1, result.stderr
    assert_corpus_verdicts(bundles, reports_by_bundle(result.stdout))
    assert "32/32" in result.stderr


def test_dask_api_with_a_client_and_file_urls(corpus: tuple[Corpus, Path]) -> None:
    distributed = pytest.importorskip("distributed")
    bundles, public = corpus
    chosen = sorted(bundles.expected)[:3] + sorted(bundles.expected)[-3:]
    urls = [Path(b).as_uri() for b in chosen]
    finished: list[str] = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        reports = ogverify.check_many(urls, trusted_keys=[public], dask_scheduler=client, explain=False,
                                      on_result=lambda r: finished.append(r.bundle))
    assert [r.bundle for r in reports] == urls
    assert sorted(finished) == sorted(urls)
    assert [r.verdict.value for r in reports] == [bundles.expected[b] for b in chosen]


def test_collect_targets(tmp_path: Path, corpus: tuple[Corpus, Path]) -> None:
    bundles, _ = corpus
    everything = collect_targets([bundles.folder])
    assert everything == sorted(bundles.expected)
    # A bundle directory is itself, not a folder of bundles.
    directory_bundle = next(b for b in everything if Path(b).is_dir())
    assert collect_targets([directory_bundle]) == [directory_bundle]
    # Quoted globs are expanded by ogverify; duplicates dropped, order kept.
    pattern = str(bundles.folder / "pass-*.ogb")
    matched = collect_targets([pattern, pattern])
    assert matched == sorted(str(p) for p in bundles.folder.glob("pass-*.ogb"))
    assert len(matched) == 7
    # Nested folders are searched; a folder with no bundle is checked as itself (its report says why).
    empty = tmp_path / "empty"
    empty.mkdir()
    assert collect_targets([empty]) == [str(empty)]
    with pytest.raises(UsageError, match=r"no bundle matches .*nothing-\*\.ogb"):
        collect_targets([str(tmp_path / "nothing-*.ogb")])
    assert collect_targets(["https://example.invalid/b.ogb"]) == ["https://example.invalid/b.ogb"]


def test_glob_that_matches_nothing_is_a_usage_error(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("check", str(tmp_path / "*.ogb"))
    assert result.exit_code == 2
    assert single_error_line(result) == f"error: no bundle matches {tmp_path / '*.ogb'}"


def test_file_url_and_summary_with_output_file(corpus: tuple[Corpus, Path], run_cli: RunCli,
                                               tmp_path: Path) -> None:
    bundles, public = corpus
    first, second = sorted(b for b in bundles.expected if Path(b).name.startswith("pass"))[:2]
    url = Path(first).as_uri()
    out = tmp_path / "report.json"
    result = run_cli("check", url, second, "--trusted-key", public, "--format", "json", "--output", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    document = json.loads(out.read_text())
    assert [r["bundle"] for r in document["reports"]] == [url, second]
    assert f"checking {url} ..." in result.stderr
    assert "2 bundles: 2 verified, 0 failed, 0 error" in result.stderr


def test_process_sticky_settings_run_in_a_fresh_process(tmp_path: Path, run_cli: RunCli) -> None:
    # Small integers throughout: no denormal anywhere, so denormals-as-zero changes no bit on any CPU.
    model = models.save(models.exact_mlp(), tmp_path / "mlp.onnx")
    x = models.exact_input((4, 16), seed=3)
    y = reference_run(model, x)
    sticky = ExecutionConfig(runtime_version(), config_entries={"session.set_denormal_as_zero": "1"})
    ogverify.pack(model, tmp_path / "sticky.ogb", inputs={"x": x}, claimed_outputs={"y": y}, config=sticky)
    ogverify.pack(model, tmp_path / "plain.ogb", inputs={"x": x}, claimed_outputs={"y": y})
    result = run_cli("check", tmp_path / "sticky.ogb", tmp_path / "plain.ogb", "--jobs", "2",
                     "--allow-unsigned", "--format", "json")
    assert result.exit_code == 0, result.output
    process = {Path(r["bundle"]).name: r["replay"]["process"] for r in json.loads(result.stdout)["reports"]}
    assert process == {"sticky.ogb": "fresh", "plain.ogb": "worker"}


def slow_bundles(folder: Path, count: int) -> list[Path]:
    """Bundles of an MLP big enough that one run takes tens of milliseconds."""
    model = models.save(models.mlp(features=1024, hidden=1024, batch=512), folder / "big.onnx")
    x = np.random.default_rng(5).standard_normal((512, 1024)).astype(np.float32)
    y = reference_run(model, x)
    paths = []
    for index in range(count):
        path = folder / f"slow-{index}.ogb"
        ogverify.pack(model, path, inputs={"x": x}, claimed_outputs={"y": y})
        paths.append(path)
    return paths


def test_session_cache_reuses_and_a_timeout_poisons_it(tmp_path: Path) -> None:
    model = models.save(models.mlp(features=1024, hidden=1024, batch=512), tmp_path / "big.onnx")
    x = np.ones((512, 1024), dtype=np.float32)
    y = reference_run(model, x)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    job = CheckJob(
        str(model), (TensorFile("x", str(tmp_path / "x.npy"), "float32", x.shape),),
        (TensorFile("y", str(tmp_path / "y.npy"), "float32", y.shape),), {"y": ComparisonSpec()},
        ExecutionConfig(runtime_version()), model_key="m",
    )
    cache = SessionCache()
    first = cache(job, timeout=60)
    again = cache(job, timeout=60)
    assert (cache.loads, cache.reuses) == (1, 1)
    assert [c.passed for c in (*first.comparisons, *again.comparisons)] == [True, True]
    assert first.run is not None and first.run.process == "worker"
    assert not cache.poisoned
    with pytest.raises(ReplayError, match=r"re-execution did not finish within 0\.001 s"):
        cache(job, timeout=0.001)
    assert cache.poisoned


def test_pool_replaces_workers_whose_run_timed_out(tmp_path: Path, run_cli: RunCli) -> None:
    bundles = slow_bundles(tmp_path, 3)
    result = run_cli("check", *bundles, "--jobs", "2", "--allow-unsigned", "--timeout", "0.001", "--format", "json")
    assert result.exit_code == 3, result.output
    headlines = [r["headline"] for r in json.loads(result.stdout)["reports"]]
    assert headlines == ["COULD NOT VERIFY: re-execution did not finish within 0.001 s"] * 3
    # With time enough, the same bundles verify on the same pool.
    result = run_cli("check", *bundles, "--jobs", "2", "--allow-unsigned")
    assert result.exit_code == 0, result.output


def test_jobs_must_be_positive(corpus: tuple[Corpus, Path], run_cli: RunCli) -> None:
    bundles, public = corpus
    result = run_cli("check", bundles.folder, "--jobs", "0", "--trusted-key", public)
    assert result.exit_code == 2
    assert single_error_line(result) == "error: --jobs must be 1 or more"


def test_bundles_over_http(corpus: tuple[Corpus, Path], run_cli: RunCli) -> None:
    import functools
    import http.server
    import threading

    bundles, public = corpus

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(bundles.folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        urls = [f"{base}/pass-00.ogb", f"{base}/fail-00.ogb", f"{base}/missing.ogb"]
        try:
            result = run_cli("check", *urls, "--jobs", "2", "--trusted-key", public, "--no-explain",
                             "--format", "json")
        finally:
            server.shutdown()
    assert result.exit_code == 3, result.output
    reports = json.loads(result.stdout)["reports"]
    assert [r["bundle"] for r in reports] == urls
    assert [r["verdict"] for r in reports] == ["verified", "failed", "error"]
    assert reports[2]["headline"].startswith(f"COULD NOT VERIFY: cannot fetch {urls[2]}: HTTP Error 404")


class _Recorder:
    """A GateObserver that writes down what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def started(self, targets: Sequence[str], *, parallel: bool) -> None:
        self.events.append(("started", str(parallel)))

    def checking(self, target: str) -> None:
        self.events.append(("checking", Path(target).name))

    def checked(self, result: Checked) -> None:
        self.events.append(("checked", Path(result.report.bundle).name, result.report.verdict.value))

    def finished(self) -> None:
        self.events.append(("finished",))

    def attested(self, path: Path, report: Report, keyid: str) -> None:
        self.events.append(("attested", Path(report.bundle).name))

    def not_attested(self, report: Report, reason: str) -> None:
        self.events.append(("not attested", Path(report.bundle).name, reason))


def test_the_gate_tells_its_observer_and_returns_the_checks_in_order(tmp_path: Path) -> None:
    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    junk = tmp_path / "junk.ogb"
    junk.write_bytes(b"not a bundle" * 50)
    key = tmp_path / "auditor.key"
    generate_key_pair(key)
    observer = _Recorder()
    options = CheckOptions(trusted_keys=load_trusted_keys([fixtures / "demo.key.pub"]), rerun=False)
    result = run_gate([fixtures / "mlp.ogb", junk], options, attest_keys=[key], attest_dir=tmp_path,
                      observer=observer)
    assert [Path(r.bundle).name for r in result.reports] == ["mlp.ogb", "junk.ogb"]
    assert result.exit_code == 3
    assert observer.events == [
        ("started", "False"),
        ("checking", "mlp.ogb"), ("checked", "mlp.ogb", "verified"),
        ("checking", "junk.ogb"), ("checked", "junk.ogb", "error"),
        ("finished",),
        ("attested", "mlp.ogb"), ("not attested", "junk.ogb", "the bundle could not be read"),
    ]
    assert [p.parent for p in result.attestations_written] == [tmp_path]
    assert result.unmatched_attestations == ()

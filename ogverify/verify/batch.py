"""Checking many bundles: target collection, a pool of check workers, and Dask scale-out.

Three ways to run the same per-bundle check (``check_target``):

- serially in this process, each re-execution in a fresh subprocess (``jobs=1``);
- on a pool of ``jobs`` worker processes (``spawn``: each is a fresh interpreter, not a fork of
  the caller). Each worker keeps a ``runner.SessionCache``, so a model is loaded once per worker
  for all the bundles that share its digest and execution configuration; configurations with
  process-sticky settings still get a fresh process per run;
- on a Dask distributed cluster (``dask_scheduler=``), where each Dask worker process keeps its
  own cache. Bundles are then named by paths or URLs that every worker can reach.

Each check runs the pipeline, then ``BatchStages`` (the policy, the facts a signed verdict
records) on the bundle the pipeline opened. Results stream back as they finish (``check_all``
hands each ``Checked``, index, report and facts, to ``on_result``) and are returned in input order.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ogverify.errors import OgverifyError, UsageError
from ogverify.evidence.bundle import MANIFEST, MARKER, Bundle, Limits
from ogverify.evidence.signing import TrustedKey
from ogverify.report.findings import Finding, Report, Status
from ogverify.runtime.runner import Replayer, SessionCache
from ogverify.verify.pipeline import CheckOptions, check_bundle_then
from ogverify.verify.policy import ManifestFacts, Policy, policy_finding

if TYPE_CHECKING:
    from ogverify.verify.attest import VerdictFacts

GLOB_CHARACTERS = frozenset("*?[")
URL_SCHEMES = ("file", "http", "https")
# A worker that exceeds a bundle's timeout by this much is killed (the in-worker timeout failed).
HARD_KILL_GRACE = 60.0


# --- what to check ------------------------------------------------------------------------


def is_url(text: str) -> bool:
    """``file://``, ``http://`` or ``https://`` (bundles all workers can reach)."""
    return urllib.parse.urlsplit(text).scheme in URL_SCHEMES and "://" in text


def is_bundle_dir(path: Path) -> bool:
    return path.is_dir() and ((path / MARKER).is_file() or (path / MANIFEST).is_file())


def bundles_in(folder: Path) -> list[Path]:
    """``*.ogb`` files and bundle directories below ``folder``, sorted; bundles are not entered."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs.sort()
        for name in list(dirs):
            if is_bundle_dir(here / name):
                found.append(here / name)
                dirs.remove(name)
        found.extend(here / f for f in files if f.endswith(".ogb"))
    return sorted(found)


def collect_targets(args: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Expand check arguments into bundles, in a deterministic order, without duplicates.

    A bundle (``.ogb`` or bundle directory) or URL is itself; any other directory stands for
    the bundles inside it; a glob (quoted, so ogverify expands it) for what it matches.

    Raises:
        UsageError: a glob matches nothing.
    """
    targets: list[str] = []
    for arg in args:
        text = str(arg)
        if is_url(text):
            targets.append(text)
            continue
        if GLOB_CHARACTERS & set(text) and not Path(text).exists():
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise UsageError(f"no bundle matches {text}")
            for match in matches:
                path = Path(match)
                targets.extend(str(p) for p in (bundles_in(path) if path.is_dir() and not is_bundle_dir(path)
                                                 else [path]))
            continue
        path = Path(text)
        inside = bundles_in(path) if path.is_dir() and not is_bundle_dir(path) else []
        # A directory with no bundle inside is checked as itself, so its report says why it is none.
        targets.extend(str(p) for p in inside) if inside else targets.append(text)
    return list(dict.fromkeys(targets))


# --- one bundle ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchStages:
    """The stages a batch check adds after the pipeline's, on the bundle it opened (``pipeline.Stage``).

    The policy stage (signer requirements, allowed comparison modes) adds a ``policy`` finding;
    with ``collect_facts`` the stage also returns what a signed verdict records about the check.
    """

    policy: Policy | None = None
    collect_facts: bool = False

    def __call__(self, report: Report, bundle: Bundle | None) -> tuple[Report, VerdictFacts | None]:
        manifest = bundle.manifest if bundle is not None else None
        if self.policy is not None:
            facts = None
            if manifest is not None and self.policy.checks_comparisons:
                facts = ManifestFacts(manifest.model.name, manifest.model.artifact.blake3,
                                      {t.name: manifest.comparison.for_output(t.name) for t in manifest.outputs})
            finding = policy_finding(self.policy, report, facts)
            if finding is not None:
                report = replace(report, findings=(*report.findings, finding))
        if not self.collect_facts:
            return report, None
        from ogverify.runtime.fingerprint import capture
        from ogverify.verify.attest import VerdictFacts

        if manifest is None:
            return report, VerdictFacts(environment=capture())
        return report, VerdictFacts(manifest.model.name, manifest.model.artifact.blake3,
                                    manifest.execution.to_json(), capture())


@dataclass(frozen=True)
class CheckSpec:
    """Everything a worker needs to check bundles; plain data, so it pickles to any worker.

    ``base`` is the ``CheckOptions`` without its trusted keys, which travel as their raw 32-byte
    ed25519 public keys (``trusted_keys``: key objects do not pickle; raw bytes need none of
    cryptography's serialization module, ~25 ms to import, on every check's way to its verdict),
    and without a replayer, which each worker brings. Build one with ``from_options``.
    """

    base: CheckOptions = field(default_factory=CheckOptions)
    trusted_keys: tuple[tuple[str, bytes], ...] = ()
    stages: BatchStages = BatchStages()
    reuse_sessions: bool = True

    @classmethod
    def from_options(
        cls, options: CheckOptions, *, policy: Policy | None = None, reuse_sessions: bool = True,
        collect_facts: bool = False,
    ) -> CheckSpec:
        """The spec of ``options``, with a policy stage for ``policy`` and verdict facts when asked."""
        raw = tuple((k.source, k.key.public_bytes_raw()) for k in options.trusted_keys.values())
        return cls(replace(options, trusted_keys={}, replayer=None), raw, BatchStages(policy, collect_facts),
                   reuse_sessions)

    @property
    def timeout(self) -> float:
        return self.base.timeout

    @property
    def rerun(self) -> bool:
        return self.base.rerun

    @property
    def limits(self) -> Limits:
        return self.base.limits

    def options(self, replayer: Replayer | None = None) -> CheckOptions:
        """The CheckOptions for this spec (``replayer`` None: a fresh process per re-execution)."""
        return replace(self.base, trusted_keys=_load_raw_keys(self.trusted_keys), replayer=replayer)


_KEY_CACHE: dict[tuple[tuple[str, bytes], ...], dict[str, TrustedKey]] = {}


def _load_raw_keys(raw: tuple[tuple[str, bytes], ...]) -> dict[str, TrustedKey]:
    if raw not in _KEY_CACHE:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        from ogverify.evidence.signing import keyid_of

        keys = {}
        for source, public in raw:
            key = Ed25519PublicKey.from_public_bytes(public)
            keys[keyid_of(key)] = TrustedKey(keyid_of(key), key, source)
        _KEY_CACHE[raw] = keys
    return _KEY_CACHE[raw]


def error_report(target: str, message: str, rerun: bool = True) -> Report:
    """The report of a bundle that could not be checked at all."""
    return Report(target, (Finding("bundle", "bundle", Status.ERROR, message),), rerun=rerun)


def _download(url: str, folder: Path, limits: Limits) -> Path:
    """Fetch an ``.ogb`` over http(s) into ``folder``, within ``max_download_bytes`` and
    ``max_download_seconds`` (the whole transfer, however slowly the server sends)."""
    name = Path(urllib.parse.urlsplit(url).path).name or "bundle.ogb"
    target = folder / (name if name.endswith(".ogb") else name + ".ogb")
    seconds, cap = limits.max_download_seconds, limits.max_download_bytes
    stop = threading.Event()
    failure: list[BaseException] = []

    def fetch() -> None:
        try:
            from urllib.request import urlopen  # only for http(s) bundles: it costs ~30 ms of start-up

            # The socket timeout bounds each wait; the deadline below bounds the whole transfer.
            with urlopen(url, timeout=min(60, seconds)) as response, target.open("wb") as out:
                copied = 0
                while not stop.is_set() and (chunk := response.read1(1 << 20)):
                    copied += len(chunk)
                    if copied > cap:
                        raise OgverifyError(f"cannot fetch {url}: more than {cap} bytes (max_download_bytes)")
                    out.write(chunk)
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    # A thread, so that the deadline holds even while the server trickles its headers.
    worker = threading.Thread(target=fetch, name="ogverify-download", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        stop.set()  # the thread stops at its next read; the caller removes its folder
        raise OgverifyError(f"cannot fetch {url}: not finished within {seconds} s (max_download_seconds)")
    if failure:
        exc = failure[0]
        if isinstance(exc, OgverifyError):
            raise exc
        if isinstance(exc, OSError):
            raise OgverifyError(f"cannot fetch {url}: {exc}") from exc
        raise exc
    return target


@dataclass(frozen=True)
class Checked:
    """One finished check: the target's index, its report, and (when asked) facts to attest."""

    index: int
    report: Report
    facts: VerdictFacts | None = None


def check_target(target: str, spec: CheckSpec, replayer: Replayer | None = None) -> Report:
    """Check one bundle named by path or URL under ``spec``; never raises for a bad bundle."""
    return _check_target(target, spec, replayer)[0]


def _check_target(
    target: str, spec: CheckSpec, replayer: Replayer | None = None
) -> tuple[Report, VerdictFacts | None]:
    work: str | None = None
    try:
        if is_url(target):
            parts = urllib.parse.urlsplit(target)
            if parts.scheme == "file":
                from urllib.request import url2pathname

                path = Path(url2pathname(parts.path))
            else:
                work = tempfile.mkdtemp(prefix="ogverify-fetch-")
                path = _download(target, Path(work), spec.limits)
        else:
            path = Path(target)
        report, facts = check_bundle_then(path, spec.options(replayer), spec.stages)
        return replace(report, bundle=target), facts
    except OgverifyError as exc:
        return error_report(target, exc.message, spec.rerun), None
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


# --- in-worker state ----------------------------------------------------------------------

_WORKER_CACHE: SessionCache | None = None
_WORKER_LOCK = threading.Lock()


def worker_cache() -> SessionCache:
    """This process's session cache (one per worker process, shared by its threads)."""
    global _WORKER_CACHE  # noqa: PLW0603 - one cache per process is the point
    with _WORKER_LOCK:
        if _WORKER_CACHE is None or _WORKER_CACHE.poisoned:
            limit = _WORKER_CACHE.process_memory_limit if _WORKER_CACHE is not None else None
            _WORKER_CACHE = SessionCache(process_memory_limit=limit)
        return _WORKER_CACHE


def _checked_in_worker(target: str, spec: CheckSpec) -> tuple[Report, VerdictFacts | None]:
    replayer = worker_cache() if spec.reuse_sessions else None
    try:
        return _check_target(target, spec, replayer)
    except Exception as exc:  # a worker must answer for every bundle it took
        return error_report(target, f"internal error: {type(exc).__name__}: {exc}", spec.rerun), None


# --- process pool -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    """What a pool worker sends back for one bundle: the result, and its session cache's state."""

    checked: Checked
    poisoned: bool
    loads: int
    reuses: int


def _pool_worker(conn: Any, spec: CheckSpec) -> None:
    """Body of one pool process: check what the parent sends until it sends None.

    The worker holds the re-executions of many bundles, so it runs under the policy's
    ``max_replay_memory`` itself, as a fresh re-execution process would.
    """
    global _WORKER_CACHE  # noqa: PLW0603 - the pool worker's one cache, made to know its limit
    from ogverify.runtime.worker import limit_memory

    _WORKER_CACHE = SessionCache(process_memory_limit=limit_memory(spec.limits.max_replay_memory))
    try:
        while True:
            task = conn.recv()
            if task is None:
                break
            index, target = task
            try:
                report, facts = _checked_in_worker(target, spec)
            except BaseException:
                report = error_report(target, "internal error: " + traceback.format_exc(limit=3).splitlines()[-1])
                facts = None
            cache = worker_cache()
            conn.send(_Answer(Checked(index, report, facts), cache.poisoned, cache.loads, cache.reuses))
            if cache.poisoned:
                break  # a run that never ended still holds this process; start afresh
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        conn.close()


@dataclass
class _Worker:
    process: Any
    conn: Any
    task: tuple[int, str, float] | None = None
    loads: int = 0
    reuses: int = 0


@dataclass
class PoolStats:
    """What the pool did: workers started and sessions loaded / re-used by all of them."""

    workers_started: int = 0
    sessions_loaded: int = 0
    sessions_reused: int = 0


def run_pool(
    targets: Sequence[str], spec: CheckSpec, jobs: int, stats: PoolStats | None = None
) -> Iterator[Checked]:
    """Check ``targets`` on ``jobs`` fresh worker processes; yield each ``Checked`` as it finishes."""
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    stats = stats if stats is not None else PoolStats()
    queue = list(enumerate(targets))
    queue.reverse()
    workers: list[_Worker] = []
    # A safety net only: every run inside a check has its own timeout (the re-execution, and each
    # trial run of a drift explanation), so a check taking longer than all of them is stuck.
    trials = spec.base.explain_budget if spec.base.explain else 0
    hard_limit = spec.timeout * (2 + trials) + HARD_KILL_GRACE

    def start() -> _Worker:
        parent, child = context.Pipe()
        process = context.Process(target=_pool_worker, args=(child, spec), name="ogverify-check", daemon=True)
        process.start()
        child.close()
        stats.workers_started += 1
        worker = _Worker(process, parent)
        workers.append(worker)
        return worker

    def retire(worker: _Worker) -> None:
        stats.sessions_loaded += worker.loads
        stats.sessions_reused += worker.reuses
        workers.remove(worker)
        _stop(worker)

    def feed(worker: _Worker) -> None:
        worker.task = None
        if queue:
            index, target = queue.pop()
            worker.task = (index, target, time.monotonic())
            worker.conn.send((index, target))

    try:
        for _ in range(max(1, min(jobs, len(targets)))):
            feed(start())
        while any(w.task is not None for w in workers):
            busy = [w for w in workers if w.task is not None]
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=1.0)
            for worker in busy:
                assert worker.task is not None
                index, target, started = worker.task
                answer: _Answer | None = None
                if worker.conn in ready:
                    try:
                        answer = worker.conn.recv()
                    except (EOFError, OSError):
                        answer = None
                if answer is not None:
                    worker.loads, worker.reuses = answer.loads, answer.reuses
                    if answer.poisoned:
                        retire(worker)
                        feed(start())
                    else:
                        feed(worker)
                    yield answer.checked
                    continue
                died = worker.process.sentinel in ready or not worker.process.is_alive()
                overdue = time.monotonic() - started > hard_limit
                if died or overdue:
                    if worker.process.is_alive():
                        worker.process.kill()
                    worker.process.join(5)
                    why = (f"check worker killed after {hard_limit:g} s" if overdue
                           else f"check worker died (exit code {worker.process.exitcode})")
                    retire(worker)
                    feed(start())
                    yield Checked(index, error_report(target, why, spec.rerun))
    finally:
        for worker in list(workers):
            retire(worker)


def _stop(worker: _Worker) -> None:
    with contextlib.suppress(OSError, ValueError):
        worker.conn.send(None)
    worker.process.join(10)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(5)
    worker.conn.close()


# --- Dask ---------------------------------------------------------------------------------


def _dask_task(target: str, spec: CheckSpec) -> tuple[Report, VerdictFacts | None]:
    return _checked_in_worker(target, spec)


@contextlib.contextmanager
def dask_client(scheduler: Any) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler`` (an address; a given Client is used as it is and
    not closed here).

    Raises:
        UsageError: ``distributed`` is not installed, or the scheduler cannot be reached.
    """
    try:
        from distributed import Client
    except ImportError as exc:
        raise UsageError("--dask-scheduler needs the 'distributed' package: pip install 'ogverify[dask]'") from exc
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, timeout="20s") if own else scheduler  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc
    try:
        yield client
    finally:
        if own:
            client.close()


def run_dask(targets: Sequence[str], spec: CheckSpec, scheduler: Any) -> Iterator[Checked]:
    """Check ``targets`` on a Dask cluster (scheduler address or a ``distributed.Client``).

    Raises:
        UsageError: ``distributed`` is not installed, or the scheduler cannot be reached.
    """
    with dask_client(scheduler) as client:
        from distributed import as_completed

        spec_future = client.scatter(spec, broadcast=True)
        futures = {client.submit(_dask_task, target, spec_future, pure=False): index
                   for index, target in enumerate(targets)}
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            index = futures[future]
            try:
                report, facts = future.result()
            except Exception as exc:  # a lost worker, an unpicklable result ...
                report = error_report(targets[index], f"Dask task failed: {type(exc).__name__}: {exc}", spec.rerun)
                facts = None
            yield Checked(index, report, facts)


# --- all of it ----------------------------------------------------------------------------


def check_all(
    targets: Sequence[str],
    spec: CheckSpec,
    *,
    jobs: int = 1,
    dask_scheduler: Any = None,
    on_result: Callable[[Checked], None] | None = None,
    stats: PoolStats | None = None,
) -> list[Checked]:
    """Results for ``targets`` in their order; ``on_result`` is called as each one finishes."""
    finishing: Iterable[Checked]
    if dask_scheduler is not None:
        finishing = run_dask(targets, spec, dask_scheduler)
    elif jobs > 1 and len(targets) > 1:
        finishing = run_pool(targets, spec, jobs, stats)
    else:
        finishing = (Checked(index, *_check_target(target, spec)) for index, target in enumerate(targets))
    done: dict[int, Checked] = {}
    for checked in finishing:
        done[checked.index] = checked
        if on_result is not None:
            on_result(checked)
    return [done[i] for i in range(len(targets))]

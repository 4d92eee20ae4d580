"""``audit``: how much of what a service logged can be trusted, from a sample it could not predict.

1. The latest checkpoint must be signed by a trusted key, and the log's tiles must give its root.
2. With an earlier checkpoint, the log must be an append-only extension of it (RFC 9162 consistency).
3. A sample is drawn from the checkpoint's root and the auditor's seed (``sampling``).
4. Each sampled record's leaf must be included under the checkpoint's root, its tensors must
   match their digests, and re-executing it under the log's configuration must reproduce its
   claimed outputs. Each record is re-executed as ``check --jobs`` re-executes a bundle (a
   ``CheckJob`` on the worker's session cache), in batches, each worker keeping the model loaded:
   in this process, on ``jobs`` worker processes, or on a Dask cluster (each worker then reads
   its records from the log itself). A failed record gets ``check``'s drift explanation.
5. The exact hypergeometric bound says what the sample proves about the records not sampled.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing.util
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ogverify.errors import ExitCode, OgverifyError, UsageError
from ogverify.evidence.log import layout, merkle, note
from ogverify.evidence.log.layout import Descriptor, LogReader, RecordEntry
from ogverify.evidence.log.store import open_store
from ogverify.evidence.signing import TrustedKey
from ogverify.report.findings import Finding, Report, Status
from ogverify.runtime.runner import checked_timeout
from ogverify.verify import sampling

if TYPE_CHECKING:
    from ogverify.runtime.jobs import CheckResult, TensorFile

DEFAULT_MAX_FAILURE_RATE = 0.01
MAX_SAMPLE = 10_000_000
# Failed records that get check's drift explanation by default (each costs up to --explain-budget trial runs).
EXPLAIN_RECORDS = 3
MAX_TENSOR_BYTES = 4 << 30
Sample = int | Literal["all"] | None


def parse_sample(text: str | None) -> Sample:
    """``--sample``: None, ``all`` or a positive number of records."""
    if text is None:
        return None
    if text == "all":
        return "all"
    if not re.fullmatch(r"[1-9][0-9]{0,18}", text):
        raise UsageError(f"--sample must be a positive number of records or 'all', not {text!r}")
    return int(text)


def parse_seed(text: str | None) -> bytes | None:
    """``--seed``: hex bytes (1 to 64)."""
    if text is None:
        return None
    if not re.fullmatch(r"([0-9a-fA-F]{2}){1,64}", text):
        raise UsageError("--seed must be 1 to 64 bytes written in hex (an even number of hex digits)")
    return bytes.fromhex(text)


@dataclass(frozen=True)
class AuditOptions:
    """What the auditor trusts and how far the audit goes (a value out of range: UsageError, in the
    command line's words, as ``parse_sample`` and ``parse_seed`` speak)."""

    trusted_keys: Mapping[str, TrustedKey] = field(default_factory=dict)
    previous_checkpoint: bytes | None = None
    sample: Sample = None
    confidence: float = 0.95
    max_failure_rate: float | None = None
    seed: bytes | None = None
    jobs: int = 1
    dask_scheduler: Any = None
    timeout: float = 600.0
    explain: bool = True
    explain_budget: int = 32
    explain_records: int = EXPLAIN_RECORDS

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise UsageError("--confidence must be between 0 and 1")
        if self.max_failure_rate is not None and not 0 <= self.max_failure_rate < 1:
            raise UsageError("--max-failure-rate must be at least 0 and below 1")
        if self.jobs < 1 or self.explain_budget < 0 or self.explain_records < 0:
            raise UsageError("--jobs must be positive, --explain-budget and --explain-records 0 or more")
        checked_timeout(self.timeout, "--timeout")


@dataclass(frozen=True)
class RecordOutcome:
    """One sampled record's re-execution: ``pass``, ``fail`` (evidence does not hold) or ``error``."""

    index: int
    status: Literal["pass", "fail", "error"]
    message: str
    comparisons: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class BatchJob:
    """Records for one worker to read, verify and re-execute, each as (index, the leaf hash its
    inclusion proof was checked against); plain data, so it pickles to any worker."""

    location: str
    records: tuple[tuple[int, bytes], ...]
    timeout: float


@dataclass(frozen=True)
class AuditResult:
    """What an audit found, as a Report (for the text, markdown, junit and sarif formats) and the numbers."""

    report: Report
    checkpoint: note.Checkpoint | None
    previous: note.Checkpoint | None = None
    sampled_indices: tuple[int, ...] = ()
    failed_indices: tuple[int, ...] = ()
    error_indices: tuple[int, ...] = ()
    seed: bytes = b""
    confidence: float = 0.95
    max_failure_rate: float | None = None
    failing_bound: int | None = None
    records: tuple[Mapping[str, Any], ...] = ()
    statement: str = ""
    explained: int = 0
    not_explained: int = 0

    @property
    def exit_code(self) -> ExitCode:
        return self.report.exit_code

    @property
    def failure_rate_upper_bound(self) -> float | None:
        if self.failing_bound is None or self.checkpoint is None or self.checkpoint.size == 0:
            return None
        return self.failing_bound / self.checkpoint.size

    def to_json(self) -> dict[str, Any]:
        def point(c: note.Checkpoint | None) -> dict[str, Any] | None:
            return None if c is None else {"origin": c.origin, "size": c.size, "root_hash": c.root.hex()}

        report = self.report.to_json()
        return {
            "report_version": report["report_version"], "log": self.report.bundle, "verdict": report["verdict"],
            "exit_code": report["exit_code"], "headline": report["headline"], "statement": self.statement,
            "checkpoint": point(self.checkpoint), "previous_checkpoint": point(self.previous),
            "sampled": len(self.sampled_indices), "failed": len(self.failed_indices),
            "errors": len(self.error_indices), "sampled_indices": list(self.sampled_indices),
            "failed_indices": list(self.failed_indices), "error_indices": list(self.error_indices),
            "seed": self.seed.hex(), "confidence": self.confidence, "max_failure_rate": self.max_failure_rate,
            "failing_records_upper_bound": self.failing_bound,
            "failure_rate_upper_bound": self.failure_rate_upper_bound,
            "records": [dict(r) for r in self.records], "explained": self.explained,
            "not_explained": self.not_explained, "findings": report["findings"],
        }


# --- the worker side ------------------------------------------------------------------------


@dataclass
class _Loaded:
    descriptor: Descriptor
    model: Path
    model_key: str
    folder: Path  # holds the model; removed when replaced and when the process exits


_LOADED: dict[str, _Loaded] = {}
_LOADED_LOCK = threading.Lock()


def _remove_loaded() -> None:
    for loaded in _LOADED.values():
        shutil.rmtree(loaded.folder, ignore_errors=True)
    _LOADED.clear()


# At exit of this process, or of a pool worker (which leaves by os._exit, skipping atexit).
atexit.register(_remove_loaded)
multiprocessing.util.Finalize(None, _remove_loaded, exitpriority=10)


def _loaded(location: str, reader: LogReader) -> _Loaded:
    """The log's descriptor and a local, verified copy of its model: once per process and log."""
    from ogverify.evidence.log.records import write_model
    from ogverify.evidence.manifest import ModelFile

    with _LOADED_LOCK:
        known = _LOADED.get(location)
        descriptor = reader.descriptor()
        if known is not None and known.descriptor == descriptor:
            return known
        if known is not None:
            shutil.rmtree(_LOADED.pop(location).folder, ignore_errors=True)
        template = descriptor.template
        files = [ModelFile.from_json(template["model"]), *(ModelFile.from_json(f) for f in template["model_files"])]
        folder = Path(tempfile.mkdtemp(prefix="ogverify-audit-model-"))
        try:
            model = write_model(reader, files, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        key = ";".join(f"{f.name}={f.artifact.blake3}" for f in files)
        _LOADED[location] = loaded = _Loaded(descriptor, model, key, folder)
        return loaded


def _tensor(reader: LogReader, ref: layout.Ref, stem: Path, what: str) -> TensorFile:
    """A record's tensor, or its sequence, map or optional, checked against its digest and
    declaration, and written beside ``stem`` (``.npy``, or ``.value`` for the canonical value encoding).

    Raises:
        LogFormatError, EvidenceMismatchError: the stored bytes changed, or are not what the record declares.
    """
    import blake3

    from ogverify.model.agreement import check_tensor
    from ogverify.model.tensors import parse_npy
    from ogverify.model.values import VALUE_SUFFIX, decode
    from ogverify.runtime.jobs import TensorFile

    data = reader.tensor(ref, MAX_TENSOR_BYTES)
    if blake3.blake3(data).hexdigest() != ref.blake3:
        raise layout.LogFormatError(f"{what} does not match its digest (the stored bytes changed)")
    if isinstance(ref, layout.ValueRef):
        value_type, _ = decode(data, what)
        if str(value_type) != ref.type:
            raise layout.LogFormatError(f"{what} holds a {value_type}, not the {ref.type} its entry names")
        path = stem.with_name(stem.name + VALUE_SUFFIX)
        path.write_bytes(data)
        return TensorFile(ref.name, str(path), type=ref.type)
    check_tensor(parse_npy(data, what), ref.dtype, ref.shape, what)
    path = stem.with_name(stem.name + ".npy")
    path.write_bytes(data)
    return TensorFile(ref.name, str(path), ref.dtype, tuple(ref.shape))


def run_batch(job: BatchJob) -> list[RecordOutcome]:
    """Read, verify and re-execute ``job``'s records (in any process: a pool or Dask worker, or here).

    Each record is a ``CheckJob`` answered by this process's session cache (``batch.worker_cache``),
    as ``check --jobs`` answers a bundle's: the same validation, run and comparison
    (``runtime.worker.run_check_job``), on a session loaded once per worker and configuration.
    A configuration that changes process-wide state gets a fresh process per record there.
    """
    from ogverify.evidence.comparison import ComparisonPolicy
    from ogverify.evidence.execution import ExecutionConfig
    from ogverify.runtime.jobs import CheckJob
    from ogverify.verify.batch import worker_cache

    reader = LogReader(open_store(job.location))
    try:
        loaded = _loaded(job.location, reader)
        config = ExecutionConfig.from_json(loaded.descriptor.template["execution"])
        policy = ComparisonPolicy.from_json(loaded.descriptor.template["comparison"])
    except (OgverifyError, KeyError, TypeError, ValueError) as exc:
        message = getattr(exc, "message", str(exc))
        return [RecordOutcome(i, "error", f"cannot load the log's model: {message}") for i, _ in job.records]
    outcomes: list[RecordOutcome] = []
    checks: list[tuple[int, CheckJob]] = []
    with tempfile.TemporaryDirectory(prefix="ogverify-audit-records-") as work:
        folder = Path(work)
        for index, expected in job.records:
            try:
                leaf = reader.leaf(index)
                if merkle.leaf_hash(leaf) != expected:
                    raise layout.LogFormatError("its entry changed while it was audited")
                entry = RecordEntry.parse(leaf, index)
                if entry.log != loaded.descriptor.digest:
                    raise layout.LogFormatError("it was recorded for another model or configuration than the log's")
                inputs = tuple(_tensor(reader, t, folder / f"{index}-input-{i}", f"input {t.name!r}")
                               for i, t in enumerate(entry.inputs))
                claimed = tuple(_tensor(reader, t, folder / f"{index}-claimed-{i}", f"claimed output {t.name!r}")
                                for i, t in enumerate(entry.outputs))
                if entry.trace is not None:
                    reader.trace(entry.trace)  # committed to, so it must still be what was committed
            except OgverifyError as exc:  # a record the producer committed to, but cannot show
                outcomes.append(RecordOutcome(index, "fail", f"record {index}: {exc.message}"))
                continue
            checks.append((index, CheckJob(str(loaded.model), inputs, claimed,
                                           {t.name: policy.for_output(t.name) for t in claimed}, config,
                                           loaded.model_key)))
        answers = worker_cache().check_many([check for _, check in checks], timeout=job.timeout,
                                            max_output_bytes=MAX_TENSOR_BYTES)
        for (index, _), answer in zip(checks, answers, strict=True):
            outcomes.append(RecordOutcome(index, "error", f"record {index}: {answer.message}")
                            if isinstance(answer, OgverifyError) else _outcome(index, answer))
    return outcomes


def _outcome(index: int, result: CheckResult) -> RecordOutcome:
    from ogverify.runtime.jobs import FailureKind

    if result.failure is not None:
        status: Literal["fail", "error"] = "fail" if result.failure.kind is FailureKind.MISMATCH else "error"
        return RecordOutcome(index, status, f"record {index}: {result.failure.headline}")
    failing = [c for c in result.comparisons if not c.passed]
    if failing:
        return RecordOutcome(index, "fail", f"record {index}: output '{failing[0].name}' [{failing[0].spec}]: "
                             f"{failing[0].reason}", tuple(c.to_json() for c in result.comparisons))
    return RecordOutcome(index, "pass", f"record {index}: outputs reproduced")


# --- dispatch -------------------------------------------------------------------------------


def _batches(location: str, indices: Sequence[int], leaves: Mapping[int, bytes], options: AuditOptions,
             workers: int) -> list[BatchJob]:
    size = max(1, min(256, math.ceil(len(indices) / (workers * 4))))
    return [BatchJob(location, tuple((i, leaves[i]) for i in chunk), options.timeout)
            for chunk in (indices[i : i + size] for i in range(0, len(indices), size))]


def _dispatch(jobs: list[BatchJob], options: AuditOptions) -> Iterator[RecordOutcome]:
    if options.dask_scheduler is not None:
        yield from _on_dask(jobs, options.dask_scheduler)
    elif options.jobs > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed


        with ProcessPoolExecutor(max_workers=options.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_batch, job): job for job in jobs}
            for future in as_completed(futures):
                try:
                    yield from future.result()
                except Exception as exc:  # a worker that died
                    yield from (RecordOutcome(i, "error", f"record {i}: audit worker failed: {exc}")
                                for i, _ in futures[future].records)
    else:
        for job in jobs:
            yield from run_batch(job)


def _on_dask(jobs: list[BatchJob], scheduler: Any) -> Iterator[RecordOutcome]:
    from ogverify.verify.batch import dask_client

    with dask_client(scheduler) as client:
        from distributed import as_completed

        futures = {client.submit(run_batch, job, pure=False): job for job in jobs}
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            try:
                yield from future.result()
            except Exception as exc:
                yield from (RecordOutcome(i, "error", f"record {i}: Dask task failed: {exc}")
                            for i, _ in futures[future].records)


# --- the auditor's side ----------------------------------------------------------------------


def _trusted_checkpoint(raw: bytes, keys: Mapping[str, TrustedKey], what: str,
                        origin: str) -> tuple[note.Checkpoint | None, Finding]:
    try:
        signed = note.parse_note(raw)
        checkpoint = note.Checkpoint.parse(signed.text)
    except note.NoteError as exc:
        return None, Finding("checkpoint", what, Status.FAIL, f"{what} is not a valid checkpoint: {exc.message}")
    if checkpoint.origin != origin:
        return None, Finding("checkpoint", what, Status.FAIL,
                             f"{what} is for the log {checkpoint.origin!r}, not this log ({origin!r})")
    trusted = list(keys.values())
    signers = note.verified_by(signed, [k.key for k in trusted])
    facts = {"origin": checkpoint.origin, "size": checkpoint.size, "root_hash": checkpoint.root.hex()}
    if not signers:
        names = ", ".join(sorted({s.name for s in signed.signatures}))
        return None, Finding("checkpoint", what, Status.FAIL,
                             f"{what} (size {checkpoint.size}) is not signed by a trusted key (signed as {names})",
                             facts)
    labels = {id(k.key): k.keyid[:12] for k in trusted}
    who = ", ".join(f"{name} ({labels[id(key)]})" for name, key in signers)
    return checkpoint, Finding("checkpoint", what, Status.PASS,
                               f"{what} of {checkpoint.origin} at size {checkpoint.size} is signed by {who}",
                               {**facts, "signers": [name for name, _ in signers]})


def _percent(value: float) -> str:
    return f"{value * 100:.3g}%"


@dataclass(frozen=True)
class _Explained:
    """``check``'s explanation of one failed record, and the first divergent node when its trace names one."""

    finding: Finding
    first_divergent_node: Mapping[str, Any] | None


def _explanations(reader: LogReader, descriptor: Descriptor, failed: Sequence[RecordOutcome],
                  options: AuditOptions) -> dict[int, _Explained]:
    """``check``'s drift explanation of the first ``options.explain_records`` failed records whose
    outputs differ (each costs trial runs). The record is exported as ``log export`` writes it, with
    its trace when it has one, so the explanation localises the first node that differs."""
    from ogverify.evidence.log.records import write_record_bundle
    from ogverify.evidence.manifest import ModelFile
    from ogverify.verify.pipeline import CheckOptions, check_bundle

    template = descriptor.template
    files = [ModelFile.from_json(template["model"]), *(ModelFile.from_json(f) for f in template["model_files"])]
    found = {}
    for outcome in [o for o in failed if o.comparisons][: options.explain_records]:
        with tempfile.TemporaryDirectory(prefix="ogverify-audit-explain-") as work:
            try:
                path = write_record_bundle(reader, descriptor, files, reader.record(outcome.index),
                                           Path(work) / f"record-{outcome.index}.ogb")
            except OgverifyError:
                continue
            report = check_bundle(path, CheckOptions(allow_unsigned=True, timeout=options.timeout,
                                                     explain_budget=options.explain_budget))
        if report.explanation is not None:
            found[outcome.index] = _Explained(report.explanation, report.first_divergent_node)
    return found


def audit_log(location: str | os.PathLike[str], options: AuditOptions,
              progress: Callable[[str], object] = lambda _: None) -> AuditResult:
    """Audit the log at ``location`` (never raises for a bad log; bad arguments raise UsageError)."""
    where = os.fspath(location)
    findings: list[Finding] = []
    seed = options.seed if options.seed is not None else os.urandom(16)

    def done(**kwargs: Any) -> AuditResult:
        return AuditResult(Report(where, tuple(findings)), seed=seed, confidence=options.confidence,
                           max_failure_rate=options.max_failure_rate, **kwargs)

    try:
        store = open_store(where)
        reader = LogReader(store)
        descriptor = reader.descriptor()
        raw = store.read(layout.CHECKPOINT, note.MAX_NOTE_BYTES) if store.exists(layout.CHECKPOINT) else None
    except UsageError:
        raise
    except OgverifyError as exc:
        findings.append(Finding("log", "log", Status.ERROR, f"cannot read the log: {exc.message}"))
        return done(checkpoint=None)
    if raw is None:
        findings.append(Finding("checkpoint", "checkpoint", Status.FAIL, "the log has no checkpoint"))
        return done(checkpoint=None)
    checkpoint, finding = _trusted_checkpoint(raw, options.trusted_keys, "checkpoint", descriptor.origin)
    findings.append(finding)
    if checkpoint is None:
        return done(checkpoint=None)
    size = checkpoint.size
    try:
        held = reader.size
        if size > held:
            raise layout.LogFormatError(f"the checkpoint signs {size} records; the log holds {held}")
        root = merkle.tree_root(reader, size)
    except OgverifyError as exc:
        findings.append(Finding("log", "tree", Status.FAIL, f"the log does not hold what its checkpoint signs: "
                                f"{exc.message}"))
        return done(checkpoint=checkpoint)
    if root != checkpoint.root:
        findings.append(Finding("log", "tree", Status.FAIL, f"the log's first {size} records do not give the root "
                                "its checkpoint signs (records were rewritten)"))
        return done(checkpoint=checkpoint)
    findings.append(Finding("log", "tree", Status.PASS, f"the log's tiles give the signed root of its {size} records"))
    previous = None
    if options.previous_checkpoint is not None:
        previous, finding = _trusted_checkpoint(options.previous_checkpoint, options.trusted_keys,
                                                "previous checkpoint", descriptor.origin)
        if previous is None:
            findings.append(finding)
            return done(checkpoint=checkpoint)
        findings.append(_consistency(reader, previous, checkpoint))
        if findings[-1].status is not Status.PASS:
            return done(checkpoint=checkpoint, previous=previous)
    if options.sample == "all":
        count = size
    elif options.sample is not None:
        count = min(options.sample, size)
    else:
        count = sampling.smallest_sample(size, options.max_failure_rate or DEFAULT_MAX_FAILURE_RATE,
                                         options.confidence)
    if count > MAX_SAMPLE:
        findings.append(Finding("sample", "sample", Status.ERROR,
                                f"a sample of {count} records is over the limit of {MAX_SAMPLE}"))
        return done(checkpoint=checkpoint, previous=previous)
    indices = sampling.draw_sample(checkpoint.root, seed, size, count)
    findings.append(Finding("sample", "sample", Status.PASS,
                            f"{count} of {size} records drawn from the checkpoint's root and the seed {seed.hex()}",
                            {"seed": seed.hex(), "sampled": count}))
    progress(f"auditing {count} of {size} records of {where} (seed {seed.hex()})")
    leaves, excluded = _inclusion(reader, checkpoint, indices)
    findings.append(_group("inclusion", "inclusion", excluded, f"all {count} sampled records are included "
                           "under the checkpoint's root", "sampled records are not included under the checkpoint"))
    jobs = _batches(where, [i for i in indices if i in leaves], leaves, options,
                    1 if options.dask_scheduler is None and options.jobs < 2 else max(options.jobs, 2))
    outcomes = {o.index: o for o in excluded}
    try:
        for outcome in _dispatch(jobs, options):
            outcomes[outcome.index] = outcome
    except UsageError:
        raise
    failed = [outcomes[i] for i in indices if outcomes[i].status == "fail"]
    errors = [outcomes[i] for i in indices if outcomes[i].status == "error"]
    explained = _explanations(reader, descriptor, failed, options) if options.explain and failed else {}
    drifted = [o for o in failed if o.comparisons]  # failed by their outputs: those an explanation is for
    not_explained = len(drifted[options.explain_records :]) if options.explain else 0
    findings.append(_records(outcomes, indices, {i: e.finding for i, e in explained.items()}, not_explained,
                             options.explain_records))
    bound = sampling.failing_upper_bound(size, count, len(failed), options.confidence) if size else 0
    statement = (f"{len(failed)} of {count} sampled records failed: at {options.confidence * 100:g}% confidence at "
                 f"most {_percent(bound / size) if size else '0%'} of the {size:,} records fail")
    if errors:
        statement += f" ({len(errors)} could not be verified and are not counted)"
    limit = options.max_failure_rate
    over = limit is not None and size > 0 and bound / size > limit
    findings.append(Finding("bound", "failure rate", Status.FAIL if over else Status.PASS,
                            statement + (f", over the limit of {_percent(limit)}" if over and limit is not None
                                         else ""),
                            {"failing_records_upper_bound": bound, "confidence": options.confidence}))
    records = tuple({"index": o.index, "status": o.status, "message": o.message,
                     "comparisons": [dict(c) for c in o.comparisons],
                     "explanation": explained[o.index].finding.message if o.index in explained else None,
                     "first_divergent_node": (dict(node) if o.index in explained
                                              and (node := explained[o.index].first_divergent_node) is not None
                                              else None)}
                    for o in (*failed, *errors))
    return done(checkpoint=checkpoint, previous=previous, sampled_indices=tuple(indices),
                failed_indices=tuple(o.index for o in failed), error_indices=tuple(o.index for o in errors),
                failing_bound=bound, records=records, statement=statement, explained=len(explained),
                not_explained=not_explained)


def _consistency(reader: LogReader, previous: note.Checkpoint, checkpoint: note.Checkpoint) -> Finding:
    what = f"the log at size {checkpoint.size} and the previous checkpoint at size {previous.size}"
    if previous.size > checkpoint.size:
        return Finding("consistency", "previous checkpoint", Status.FAIL,
                       f"the log was truncated: the previous checkpoint signed {previous.size} records, "
                       f"the latest signs {checkpoint.size}")
    try:
        proof = merkle.consistency_path(reader, previous.size, checkpoint.size)
    except OgverifyError as exc:
        return Finding("consistency", "previous checkpoint", Status.FAIL, f"no consistency proof: {exc.message}")
    if not merkle.verify_consistency(previous.size, checkpoint.size, previous.root, checkpoint.root, proof):
        return Finding("consistency", "previous checkpoint", Status.FAIL,
                       f"{what} are not consistent: the log's history before record {previous.size} was "
                       "rewritten or forked")
    return Finding("consistency", "previous checkpoint", Status.PASS,
                   f"{what} are consistent: the log only grew (RFC 9162 consistency proof)",
                   {"first_size": previous.size, "second_size": checkpoint.size,
                    "consistency_path": [h.hex() for h in proof]})


def _inclusion(reader: LogReader, checkpoint: note.Checkpoint,
               indices: Sequence[int]) -> tuple[dict[int, bytes], list[RecordOutcome]]:
    """The leaf hash of each sampled record whose entry is included under the checkpoint's root, and
    the records that are not."""
    included: dict[int, bytes] = {}
    excluded = []
    for index in indices:
        try:
            leaf = merkle.leaf_hash(reader.leaf(index))
            path = merkle.inclusion_path(reader, index, checkpoint.size)
        except OgverifyError as exc:
            excluded.append(RecordOutcome(index, "fail", f"record {index}: {exc.message}"))
            continue
        if not merkle.verify_inclusion(index, checkpoint.size, leaf, path, checkpoint.root):
            excluded.append(RecordOutcome(index, "fail", f"record {index}: its entry is not the leaf the checkpoint "
                                          "signs (the record was rewritten)"))
            continue
        included[index] = leaf
    return included, excluded


def _group(stage: str, subject: str, bad: Sequence[RecordOutcome], ok: str, failing: str) -> Finding:
    children = tuple(Finding(stage, f"record {o.index}", Status.FAIL, o.message) for o in bad)
    if not bad:
        return Finding(stage, subject, Status.PASS, ok)
    return Finding(stage, subject, Status.FAIL, f"{len(bad)} {failing}: records "
                   + ", ".join(str(o.index) for o in bad[:20]) + (" ..." if len(bad) > 20 else ""), children=children)


def _records(outcomes: Mapping[int, RecordOutcome], indices: Sequence[int],
             explained: Mapping[int, Finding], not_explained: int = 0, limit: int = EXPLAIN_RECORDS) -> Finding:
    reran = [outcomes[i] for i in indices]
    bad = [o for o in reran if o.status != "pass"]
    children = tuple(
        Finding("replay", f"record {o.index}", Status.FAIL if o.status == "fail" else Status.ERROR, o.message,
                {"index": o.index, "comparisons": [dict(c) for c in o.comparisons]},
                (explained[o.index],) if o.index in explained else ())
        for o in bad)
    failed = [o.index for o in bad if o.status == "fail"]
    if not bad:
        return Finding("replay", "records", Status.PASS, f"all {len(reran)} sampled records reproduced")
    status = Status.FAIL if failed else Status.ERROR
    named = ", ".join(str(i) for i in (failed or [o.index for o in bad])[:20])
    what = "failed" if failed else "could not be verified"
    if not_explained:
        children += (Finding("drift", "not explained", Status.SKIP,
                             f"{not_explained} more failed record(s) not explained: only the first {limit} are "
                             "(--explain-records N explains more)", {"not_explained": not_explained}),)
    return Finding("replay", "records", status, f"{len(failed or bad)} sampled record(s) {what}: {named}",
                   children=children)

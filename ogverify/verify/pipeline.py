"""``check``: integrity → signatures → environment → re-execution → comparison, as a Report.

Failures to *perform* a stage become ERROR findings (exit 3); evidence that does not hold
becomes FAIL findings (exit 1). Nothing is executed unless integrity and signatures hold.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ogverify.errors import EvidenceMismatchError, OgverifyError
from ogverify.evidence.bundle import DEFAULT_LIMITS, BlobPlace, Bundle, Limits, open_bundle
from ogverify.evidence.comparison import OutputComparison
from ogverify.evidence.manifest import Artifact, Manifest, ValueEntry
from ogverify.evidence.materialise import model_targets
from ogverify.evidence.signing import TrustedKey, verify_envelope
from ogverify.model.agreement import check_model
from ogverify.model.signature import relocate_external_data
from ogverify.report.findings import EnvironmentDifference, Finding, Report, Status
from ogverify.runtime.child import ReplayChild, take_prestarted
from ogverify.runtime.fingerprint import capture_cached, diff_environments
from ogverify.runtime.jobs import CheckJob, CheckResult, FailureKind, RunFacts, TensorFile
from ogverify.runtime.runner import DEFAULT_TIMEOUT, Replayer, checked_timeout
from ogverify.runtime.threads import physical_cores
from ogverify.verify.log_signature import log_signature_finding
from ogverify.verify.policy import EnvironmentPolicy
from ogverify.verify.provenance import check_provenance

# numpy, onnx and onnxruntime are not imported here: the re-execution process (or a check
# worker's session cache) does all numeric work on a ``CheckJob`` (see ``_reexecute``); the
# fresh process starts importing them before this process has even opened the bundle.


@dataclass(frozen=True)
class CheckOptions:
    """What ``check`` trusts and how far it goes.

    Attributes:
        trusted_keys: keyid → public key; a signature counts only if made by one of these.
        allow_unsigned: accept a bundle with no signature from a trusted key (a warning, not a failure).
        rerun: re-execute the model and compare outputs (False: integrity and signatures only).
        timeout: seconds the re-execution may take.
        limits: bounds on what the bundle may make ogverify read.
        replayer: how to answer the re-execution's CheckJob; None: a fresh subprocess
            (``runtime.child``); a ``runner.SessionCache`` re-uses sessions inside a worker.
        environment_policy: environment differences to accept or to fail (policy ``[environment]``).
        explain: on a failed reproduction, search for the cause (``drift.explain``).
        explain_budget: the most trial runs the explanation may spend.
        candidate_model: a model that may have produced the claimed outputs instead.
        while_waiting: work for this process while a re-execution process runs the model
            (the CLI imports its report formatter then); not called when nothing is re-executed.
        model_signing_key: the model publisher's public key: the bundle must carry a
            model_signing signature by it over its model files (``pack --model-signature``).
    """

    trusted_keys: Mapping[str, TrustedKey] = field(default_factory=dict)
    allow_unsigned: bool = False
    rerun: bool = True
    timeout: float = DEFAULT_TIMEOUT
    limits: Limits = DEFAULT_LIMITS
    replayer: Replayer | None = None
    environment_policy: EnvironmentPolicy | None = None
    explain: bool = True
    explain_budget: int = 32
    candidate_model: Path | None = None
    while_waiting: Callable[[], object] | None = None
    model_signing_key: Path | None = None

    def __post_init__(self) -> None:
        checked_timeout(self.timeout)


S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)


class Stage(Protocol[S_co]):
    """Work after the pipeline's own stages, given the report and the bundle still open.

    ``bundle`` is None when the bundle could not be opened (the report says why). A stage
    returns the report (with any findings it adds) and what else it found out: the batch's
    policy stage and the facts a signed verdict records read the manifest here, rather than
    opening the bundle again.
    """

    def __call__(self, report: Report, bundle: Bundle | None, /) -> tuple[Report, S_co]: ...


def _no_stage(report: Report, bundle: Bundle | None) -> tuple[Report, None]:
    return report, None


def check_bundle(path: Path, options: CheckOptions | None = None) -> Report:
    """Check one bundle and return its report; never raises for a bad bundle."""
    return check_bundle_then(path, options, _no_stage)[0]


def check_bundle_then(path: Path, options: CheckOptions | None, stage: Stage[S]) -> tuple[Report, S]:
    """``check_bundle``, then ``stage`` on its report and the same open bundle."""
    options = options or CheckOptions()
    # Started first: it imports numpy and onnxruntime while this process verifies the bundle.
    child = (take_prestarted() or ReplayChild()) if options.rerun and options.replayer is None else None
    scratch: Path | None = None
    try:
        try:
            bundle = open_bundle(path, options.limits)
        except OgverifyError as exc:
            return stage(Report(str(path), (Finding("bundle", "bundle", Status.ERROR, exc.message),),
                                rerun=options.rerun), None)
        with bundle:
            if options.rerun and child is None:
                scratch = Path(tempfile.mkdtemp(prefix="ogverify-check-"))
            return stage(_check_open(bundle, options, child, child.work_dir if child is not None else scratch), bundle)
    finally:
        if child is not None:
            child.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _check_open(bundle: Bundle, options: CheckOptions, child: ReplayChild | None, work_dir: Path | None) -> Report:
    """The stages; ``work_dir`` (when re-executing) receives the re-execution's files."""
    workspace = _Workspace.plan(bundle, work_dir) if work_dir is not None else None
    integrity = _integrity(bundle, workspace)
    signatures = _signatures(bundle, options)
    runnable = integrity.status is Status.PASS and signatures.status in (Status.PASS, Status.WARN)
    outcome = None
    if options.rerun and runnable and workspace is not None:
        outcome = _reexecute(bundle, options, child, workspace)
    if outcome is not None and outcome.changed:
        integrity, outcome = _changed_while_running(integrity, outcome)
    ran_here = outcome.environment if outcome is not None else None
    environment_here = ran_here if ran_here is not None else capture_cached()
    differences = tuple(diff_environments(bundle.manifest.environment, environment_here))
    findings = [integrity, signatures, *check_provenance(bundle, integrity, options.model_signing_key),
                _environment(differences, options.environment_policy)]
    ran = outcome.result.run if outcome is not None and outcome.result is not None else None
    threads = _threads(bundle.manifest, ran) if outcome is not None else None
    if threads is not None:
        findings.append(threads)
    comparisons: list[OutputComparison] = []
    replay_facts = None
    if not options.rerun:
        findings.append(Finding("replay", "re-execution", Status.SKIP, "re-execution skipped (--no-rerun)"))
    elif outcome is None:
        findings.append(Finding(
            "replay", "re-execution", Status.SKIP, "re-execution skipped: integrity or signatures do not hold"
        ))
    else:
        comparisons = outcome.comparisons
        findings.append(outcome.replay_finding)
        findings.extend(_comparison_findings(comparisons))
        result = outcome.result
        replay_facts = result.run.to_json() if result is not None and result.run is not None else None
        if result is not None and options.explain and any(not c.passed for c in comparisons):
            assert workspace is not None
            findings.append(_explanation(bundle, options, result, comparisons, differences, workspace))
    return Report(
        str(bundle.path),
        tuple(findings),
        manifest_sha256=bundle.manifest_sha256.hex,
        comparisons=tuple(comparisons),
        environment_differences=differences,
        replay=replay_facts,
        rerun=options.rerun,
    )


def _changed_while_running(integrity: Finding, outcome: _Outcome) -> tuple[Finding, _Outcome]:
    """A model file verified in place changed while the model ran: integrity fails (as for any
    blob that does not match its digest) and the re-execution's result counts for nothing."""
    changed = dict(outcome.changed)
    children = tuple(
        Finding("integrity", c.subject, Status.FAIL, f"{c.subject}: {changed[c.subject]}", c.evidence)
        if c.subject in changed else c for c in integrity.children)
    first = next(c for c in children if c.subject in changed)
    message = first.message if len(changed) == 1 else f"{len(changed)} artifacts fail: {first.message}; ..."
    void = Finding("replay", "re-execution", Status.FAIL,
                   "re-execution void: the model files it read changed while it ran")
    return (Finding("integrity", "blobs", Status.FAIL, message, children=children),
            _Outcome(void, environment=outcome.environment))


def _graph_drift(recorded: object, here: Mapping[str, object] | None) -> str:
    """A sentence when onnxruntime here optimises the graph differently than where it was packed."""
    if not isinstance(recorded, dict) or here is None or recorded.get("sha256") == here.get("sha256"):
        return ""
    before = recorded.get("op_histogram") or {}
    after = here.get("op_histogram") or {}
    assert isinstance(before, dict) and isinstance(after, dict)
    ops = [f"{op} {before.get(op, 0)}->{after.get(op, 0)}" for op in sorted(set(before) | set(after))
           if before.get(op, 0) != after.get(op, 0)]
    return ("onnxruntime here optimises the graph differently than where the bundle was packed"
            + (f" (op histogram: {', '.join(ops)})" if ops else " (same ops, other graph bytes)"))


def _explanation(
    bundle: Bundle, options: CheckOptions, result: CheckResult, comparisons: list[OutputComparison],
    differences: tuple[EnvironmentDifference, ...], workspace: _Workspace,
) -> Finding:
    """Why the reproduction failed: the drift engine's answer as a finding (a warning: the
    comparison findings already carry the failure). It works on the re-execution's files."""
    import onnxruntime

    from ogverify.model.values import is_tensor
    from ogverify.runtime.worker import load_tensors
    from ogverify.verify.drift.engine import explain

    manifest = bundle.manifest
    failing = next(c for c in comparisons if not c.passed)
    values = [e for e in (*manifest.inputs, *manifest.outputs) if isinstance(e, ValueEntry)]
    if values:
        return Finding("drift", "explanation", Status.WARN,
                       f"no explanation: the drift search explains tensors only, and {values[0].name!r} is a "
                       f"{values[0].type}; the comparison above names where the outputs differ")
    try:
        workspace.copy_in_place_files(bundle)  # the drift search's trials read the model from its folder
        with tempfile.TemporaryDirectory(prefix="ogverify-explain-") as work:
            # Tensors only (checked above), as the drift search takes them.
            inputs = {n: v for n, v in load_tensors(workspace.inputs, "input").items() if is_tensor(v)}
            claimed = {n: v for n, v in load_tensors(workspace.claimed, "claimed output").items() if is_tensor(v)}
            reproduced = {n: v for n, v in result.reproduced.items() if is_tensor(v)}
            explanation = explain(
                workspace.model, inputs, claimed, manifest.execution, reproduced, Path(work) / "trials",
                budget=options.explain_budget, timeout=options.timeout, tolerance=failing.spec,
                candidate_model=options.candidate_model,
                available_providers=onnxruntime.get_available_providers(),
                trace=manifest.trace, profile=manifest.profile,
            )
    except (OgverifyError, OSError) as exc:
        message = exc.message if isinstance(exc, OgverifyError) else str(exc)
        return Finding("drift", "explanation", Status.WARN, f"no explanation: {message}")
    from ogverify.verify.drift.finding import explanation_finding

    policy = options.environment_policy
    numeric = [d for d in differences if d.impact == "high"
               and (policy is None or (policy.decide(d) or ("", ""))[0] != "allow")]
    graph_note = _graph_drift(manifest.environment.get("optimized_graph"), explanation.recorded_graph)
    return explanation_finding(explanation, failing.spec, numeric, graph_note)


def _integrity(bundle: Bundle, workspace: _Workspace | None = None) -> Finding:
    """Every artifact against its digests; those the re-execution needs are verified as they are
    written into ``workspace`` (hashed from the copy), the rest where they lie."""
    children = []
    referenced = set()
    for label, artifact in bundle.manifest.artifacts():
        referenced.add(artifact.blob_path)
        problem = workspace.export(bundle, label, artifact) if workspace is not None else bundle.verify_blob(artifact)
        evidence = {"blake3": artifact.blake3, "size": artifact.size}
        if problem is None:
            children.append(Finding("integrity", label, Status.PASS, f"{label} matches its digest", evidence))
        else:
            children.append(Finding("integrity", label, Status.FAIL, f"{label}: {problem}", evidence))
    for extra in sorted(bundle.blob_names() - referenced):
        children.append(Finding(
            "integrity", extra, Status.FAIL, f"blob {extra} is not named by the manifest (something was added)"
        ))
    failed = [c for c in children if c.status is Status.FAIL]
    if failed:
        message = failed[0].message if len(failed) == 1 else f"{len(failed)} artifacts fail: {failed[0].message}; ..."
        return Finding("integrity", "blobs", Status.FAIL, message, children=tuple(children))
    return Finding("integrity", "blobs", Status.PASS, f"all {len(children)} artifacts match their digests",
                   children=tuple(children))


def _signatures(bundle: Bundle, options: CheckOptions) -> Finding:
    checks = [
        check
        for name, raw in bundle.signature_envelopes.items()
        for check in verify_envelope(name, raw, bundle.manifest_bytes, bundle.manifest, options.trusted_keys)
    ]
    children = []
    for check in checks:
        status = {
            "trusted": Status.PASS, "untrusted": Status.WARN,
        }.get(check.status, Status.FAIL)
        evidence: dict[str, object] = {"keyid": check.keyid, "status": check.status, "envelope": check.source}
        if check.changed_fields:
            evidence["changed_since_signing"] = list(check.changed_fields)
        children.append(Finding("signatures", f"signature {check.keyid[:12]}", status, check.message, evidence))
    through_log = log_signature_finding(bundle, options.trusted_keys)  # a record exported from an evidence log
    if through_log is not None:
        children.append(through_log)
    broken = [c for c in children if c.status is Status.FAIL]
    trusted = [c.keyid for c in checks if c.ok]
    if through_log is not None and through_log.status is Status.PASS:
        trusted.append("evidence log")
    if broken:
        return Finding("signatures", "signatures", Status.FAIL, broken[0].message, children=tuple(children))
    if trusted:
        return Finding("signatures", "signatures", Status.PASS,
                       f"signed by {len(trusted)} trusted key(s)", children=tuple(children))
    if not checks and through_log is None:
        reason = "bundle is not signed"
    elif not options.trusted_keys:
        reason = "bundle is signed, but no trusted key was given (--trusted-key)"
    else:
        reason = "bundle is signed only by untrusted keys"
    if options.allow_unsigned:
        return Finding("signatures", "signatures", Status.WARN, f"{reason} (accepted: --allow-unsigned)",
                       children=tuple(children))
    return Finding("signatures", "signatures", Status.FAIL, reason, children=tuple(children))


def _environment(
    differences: tuple[EnvironmentDifference, ...], policy: EnvironmentPolicy | None = None
) -> Finding:
    if not differences:
        return Finding("environment", "environment", Status.PASS, "environment matches the recorded fingerprint")
    decisions = {d.field: policy.decide(d) if policy is not None else None for d in differences}
    children = []
    for d in differences:
        text = f"{d.field}: {d.change()} ({d.impact} impact: {d.why})"
        decision = decisions[d.field]
        if decision is None:
            children.append(Finding("environment", d.field, Status.WARN if d.impact == "high" else Status.PASS,
                                    text, d.to_json()))
        else:
            verdict, rule = decision
            status = Status.FAIL if verdict == "forbid" else Status.PASS
            word = "forbidden" if verdict == "forbid" else "allowed"
            children.append(Finding("environment", d.field, status, f"{text}; {word} by policy rule {rule!r}",
                                    {**d.to_json(), "policy": verdict, "rule": rule}))
    forbidden = [d for d in differences if (decisions[d.field] or ("", ""))[0] == "forbid"]
    if forbidden:
        return Finding("environment", "environment", Status.FAIL,
                       "environment difference forbidden by policy: "
                       + ", ".join(f"{d.field} ({d.change()})" for d in forbidden),
                       children=tuple(children))
    high = [d for d in differences if d.impact == "high" and decisions[d.field] is None]
    if high:
        return Finding("environment", "environment", Status.WARN,
                       f"{len(differences)} environment difference(s), {len(high)} likely to change numerics: "
                       + ", ".join(d.field for d in high), children=tuple(children))
    return Finding("environment", "environment", Status.PASS,
                   f"{len(differences)} environment difference(s), none known to change numerics"
                   + (" or all allowed by policy" if any(decisions.values()) else ""),
                   children=tuple(children))


def _threads(manifest: Manifest, ran: RunFacts | None) -> Finding | None:
    """A note when the bundle records more intra-op threads than this machine has cores.

    The run still uses the recorded count: a model's bits follow the thread count (how the work
    is split), not the cores it runs on, so more threads than cores costs time, not bits. The
    producer's sensitivity profile, when packed, says whether the count changes bits at all.
    """
    recorded = manifest.execution.intra_op_num_threads
    here = physical_cores()
    if recorded <= here:
        return None
    knob = next((k for k in manifest.profile.knobs if k.knob == "intra_op_num_threads"), None) \
        if manifest.profile is not None else None
    cores = f"{here} physical core{'s' if here != 1 else ''}"
    message = (f"recorded {recorded} intra-op threads, this machine has {cores}"
               + (f": ran {ran.intra_op_num_threads} as recorded" if ran is not None else "")
               + " (slower; bits follow the thread count, not the cores)")
    if knob is None:
        message += "; no sensitivity profile (pack --profile) says whether threads change this model's bits"
    elif knob.changes_bits:
        message += f"; this model's profile shows threads ({', '.join(knob.values)}) change its bits"
    else:
        message += f"; this model's profile shows threads ({', '.join(knob.values)}) do not change its bits"
    evidence = {"recorded": recorded, "physical_cores_here": here,
                "ran": ran.intra_op_num_threads if ran is not None else None,
                "threads_change_bits": None if knob is None else knob.changes_bits}
    return Finding("environment", "intra-op threads", Status.PASS, message, evidence)


def _failed(exc: Exception) -> _Outcome:
    """The outcome of a re-execution that could not start: FAIL for contradicting evidence, else ERROR."""
    if isinstance(exc, EvidenceMismatchError):
        return _Outcome(Finding("replay", "re-execution", Status.FAIL, str(exc)))
    if isinstance(exc, OgverifyError):
        return _Outcome(Finding("replay", "re-execution", Status.ERROR, exc.message, {"detail": exc.detail}))
    assert isinstance(exc, OSError)  # e.g. a model file name longer than the file system allows
    message = f"cannot materialise the model for re-execution: {exc.strerror or exc}"
    return _Outcome(Finding("replay", "re-execution", Status.ERROR, message))


@dataclass(frozen=True)
class _Outcome:
    """What re-execution produced: its finding, its result and comparisons when it ran, and this
    machine's fingerprint when the re-execution process took it."""

    replay_finding: Finding
    result: CheckResult | None = None
    comparisons: list[OutputComparison] = field(default_factory=list)
    environment: Mapping[str, Any] | None = None
    # (artifact label, what changed) for model files read in place that changed while the model ran
    changed: tuple[tuple[str, str], ...] = ()


def _comparison_findings(comparisons: list[OutputComparison]) -> list[Finding]:
    return [
        Finding("comparison", f"output '{c.name}'", Status.PASS if c.passed else Status.FAIL,
                f"output '{c.name}' [{c.spec}]: {c.reason}", c.to_json())
        for c in comparisons
    ]


def _replay_finding(run: RunFacts) -> Finding:
    return Finding(
        "replay", "re-execution", Status.PASS,
        f"re-executed with onnxruntime {run.runtime_version} on {', '.join(run.providers_used)}",
        run.to_json(),
    )


def _tensor_targets(
    bundle: Bundle, folder: Path
) -> tuple[list[tuple[str, Artifact, Path]], tuple[TensorFile, ...], tuple[TensorFile, ...]]:
    """Where the packed inputs and claimed outputs go as .npy files, and the job's entries for them.

    Raises:
        _BundleLimitError: a tensor larger than the limits allow.
    """
    folder.mkdir()
    targets: list[tuple[str, Artifact, Path]] = []
    files: list[list[TensorFile]] = [[], []]
    for index, (label, tensors) in enumerate((("input", bundle.manifest.inputs),
                                              ("claimed output", bundle.manifest.outputs))):
        for position, entry in enumerate(tensors):
            what = f"{label} '{entry.name}'"
            if entry.artifact.size > bundle.limits.max_tensor_bytes:
                raise _BundleLimitError(f"{what} is {entry.artifact.size} bytes, over the "
                                        f"{bundle.limits.max_tensor_bytes}-byte limit")
            if isinstance(entry, ValueEntry):  # a sequence, map or optional in its canonical encoding
                path = folder / f"{index}_{position}.value"
                files[index].append(TensorFile(entry.name, str(path), type=entry.type))
            else:
                path = folder / f"{index}_{position}.npy"
                files[index].append(TensorFile(entry.name, str(path), entry.dtype, tuple(entry.shape)))
            targets.append((what, entry.artifact, path))
    return targets, tuple(files[0]), tuple(files[1])


@dataclass
class _Workspace:
    """The re-execution process's files: planned before the integrity pass, written by it.

    Each blob the re-execution needs is verified as it is written here (``Bundle.copy_verified``
    hashes the copy), so it is read once, not once to verify and again to copy. A plan that
    cannot be made (a model file name pointing outside, a tensor over the limits) keeps its
    error for the re-execution stage, as before; its blobs are then verified in place.

    External-data files the bundle stores uncompressed (a bundle directory's blobs, a ``.ogb``'s
    stored members) are not copied: they are verified where they lie (``Bundle.verify_in_place``),
    the runtime is given a copy of the model whose external data points there
    (``model.signature.relocate_external_data``), and after the run each is checked again
    (``Bundle.recheck``): the same file, unwritten, the same digests. A model whose external
    data cannot be relocated exactly has its files copied as before.
    """

    model: Path
    inputs: tuple[TensorFile, ...] = ()
    claimed: tuple[TensorFile, ...] = ()
    error: Exception | None = None
    # artifact label -> (artifact, file) still to write, in manifest order
    pending: dict[str, list[tuple[Artifact, Path]]] = field(default_factory=dict)
    # model file label -> (manifest name, artifact, where its copy would go): verified in place
    in_place: dict[str, tuple[str, Artifact, Path]] = field(default_factory=dict)
    # model file label -> where it was verified in place
    places: dict[str, BlobPlace] = field(default_factory=dict)

    @classmethod
    def plan(cls, bundle: Bundle, work_dir: Path) -> _Workspace:
        workspace = cls(work_dir / "model" / bundle.manifest.model.name)
        try:
            model = model_targets(bundle.manifest, work_dir / "model")
            tensors, workspace.inputs, workspace.claimed = _tensor_targets(bundle, work_dir / "tensors")
        except (OgverifyError, OSError) as exc:
            workspace.error = exc
            return workspace
        files = {f"model file '{f.name}'": f.name for f in bundle.manifest.model_files}
        stored_plain = all(f.artifact.encoding == "identity" for f in bundle.manifest.model_files)
        for label, artifact, target in (*model, *tensors):
            if stored_plain and label in files:
                workspace.in_place[label] = (files[label], artifact, target)
            else:
                workspace.pending.setdefault(label, []).append((artifact, target))
        return workspace

    def export(self, bundle: Bundle, label: str, artifact: Artifact) -> str | None:
        """Verify ``artifact``, writing it to its place when the plan has one; what is wrong, or None."""
        planned_in_place = self.in_place.get(label)
        if self.error is None and planned_in_place is not None and planned_in_place[1] == artifact:
            problem, place = bundle.verify_in_place(artifact)
            if place is not None:
                self.places[label] = place
            return problem
        planned = self.pending.get(label)
        if self.error is not None or not planned or planned[0][0] != artifact:
            return bundle.verify_blob(artifact)
        target = planned.pop(0)[1]
        try:
            problem = bundle.copy_verified(artifact, target)
        except OSError as exc:  # e.g. a model file name longer than the file system allows
            self.error = exc
            return bundle.verify_blob(artifact)
        return problem

    def complete(self, bundle: Bundle) -> None:
        """Write what the integrity pass did not (it always has, unless names repeat).

        Raises:
            the plan's error; BundleError for a blob that does not verify; OSError.
        """
        if self.error is not None:
            raise self.error
        for label, files in self.pending.items():
            for artifact, target in files:
                bundle.write_blob(artifact, target, label)
        self.pending.clear()
        if set(self.places) != set(self.in_place):  # not all verified in place (names repeat): copy them
            self.copy_in_place_files(bundle)

    def relocated_model(self, bundle: Bundle) -> tuple[Path, str | None]:
        """The model the runtime loads and the folder of its external data (None: beside it).

        With files verified in place: a copy of the model beside the workspace's, its external
        data pointing at the bundle's own files; where that cannot be done exactly, the files
        are copied into the workspace instead.

        Raises:
            ModelError; BundleError for a copied blob that does not verify; OSError.
        """
        if not self.places:
            return self.model, None
        places = {self.in_place[label][0]: (place.path.name, place.offset, place.size)
                  for label, place in self.places.items()}
        folders = {place.path.parent for place in self.places.values()}
        relocated = relocate_external_data(self.model.read_bytes(), bundle.manifest.model.name, places)
        if relocated is None or len(folders) != 1:
            self.copy_in_place_files(bundle)
            return self.model, None
        target = self.model.parent.parent / "model-in-place.onnx"
        target.write_bytes(relocated)
        return target, str(folders.pop())

    def copy_in_place_files(self, bundle: Bundle) -> None:
        """Copy (and verify) into the workspace the model files verified in place: no longer in place.

        Raises:
            BundleError: a file that does not verify. OSError.
        """
        for label, (_, artifact, target) in self.in_place.items():
            if not target.exists():
                bundle.write_blob(artifact, target, label)
        self.in_place.clear()
        self.places.clear()

    def recheck(self) -> tuple[tuple[str, str], ...]:
        """(label, what changed) for each file verified in place that no longer holds what was verified."""
        problems = ((label, Bundle.recheck(place, self.in_place[label][1])) for label, place in self.places.items())
        return tuple((label, problem) for label, problem in problems if problem is not None)


class _BundleLimitError(OgverifyError):
    """A tensor is larger than the limits allow reading."""


def _check_model(bundle: Bundle, model: Path) -> None:
    """The model holds every external-data file it names and accepts the manifest's inputs.

    Checked here, on the written model, before the re-execution process may load it; the
    process then checks each tensor against the manifest.

    Raises:
        EvidenceMismatchError, ModelError.
    """
    manifest = bundle.manifest
    check_model(model, manifest.model.name, {f.name for f in manifest.model_files},
                {t.name: t.declared for t in manifest.inputs})


def _reexecute(bundle: Bundle, options: CheckOptions, child: ReplayChild | None, workspace: _Workspace) -> _Outcome:
    """Hand the re-execution its CheckJob: to the fresh process, or to the given replayer (a check
    worker's session cache); both answer it with ``worker.run_check_job``."""
    manifest = bundle.manifest
    try:
        workspace.complete(bundle)
        _check_model(bundle, workspace.model)
        model, data_folder = workspace.relocated_model(bundle)
        job = CheckJob(
            str(model), workspace.inputs, workspace.claimed,
            {t.name: manifest.comparison.for_output(t.name) for t in manifest.outputs}, manifest.execution,
            model_key=";".join(f"{f.name}={f.artifact.blake3}" for f in (manifest.model, *manifest.model_files)),
            memory_limit=bundle.limits.max_replay_memory, data_folder=data_folder,
        )
        limit = bundle.limits.max_tensor_bytes
        if child is not None:
            result = child.run(job, timeout=options.timeout, max_output_bytes=limit,
                               while_waiting=options.while_waiting)
        else:
            assert options.replayer is not None
            result = options.replayer(job, timeout=options.timeout, max_output_bytes=limit)
    except (OgverifyError, OSError) as exc:
        # A file truncated under the runtime kills it (SIGBUS): that is the change, not the crash.
        changed = workspace.recheck()
        return _Outcome(_failed(exc).replay_finding, changed=changed) if changed else _failed(exc)
    changed = workspace.recheck()
    if changed:
        return _Outcome(Finding("replay", "re-execution", Status.FAIL, "model files changed while the model ran"),
                        environment=result.environment, changed=changed)
    failure = result.failure
    if failure is not None:
        if failure.kind is FailureKind.MISMATCH:
            finding = Finding("replay", "re-execution", Status.FAIL, failure.headline)
        else:
            finding = Finding("replay", "re-execution", Status.ERROR, failure.headline, {"detail": failure.detail})
        return _Outcome(finding, environment=result.environment)
    assert result.run is not None
    return _Outcome(_replay_finding(result.run), result, list(result.comparisons), result.environment)

"""ogverify: pack the evidence of an AI inference into a signed bundle and check it by re-execution.

The public API (everything else is internal)::

    import ogverify

    result = ogverify.pack("model.onnx", "run.ogb", inputs={"x": x}, sign_keys=["me.key"])
    report = ogverify.check("run.ogb", trusted_keys=["me.key.pub"])
    report.verdict, report.exit_code, report.headline, report.to_json()

    reports = ogverify.check_many(["evidence/"], policy="ogverify.toml", jobs=4)

    with ogverify.Recorder("model.onnx", "evidence/", sign_keys=["me.key"]) as session:
        outputs = session.run(None, {"x": x})      # also writes evidence/run-000001.ogb

    log = ogverify.EvidenceLog.create("log/", "model.onnx")   # or an fsspec URL: s3://bucket/log
    log.append({"x": x}, {"y": y})                             # one record; append_batch for many
    log.checkpoint(["me.key"])                                 # then: ogverify audit log/ ...

Heavy modules load on first use, so importing ogverify stays cheap.
"""

from __future__ import annotations

from os import PathLike

__version__ = "0.1.0"

# Nothing else is imported here, not even typing (~8 ms): the console entry point
# (ogverify.cli.entry) starts the re-execution process of a check right after this package is
# imported. Type checkers read the name below as typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, TypedDict, Unpack

    from ogverify.evidence.bundle import Bundle
    from ogverify.evidence.cid import FileCids
    from ogverify.evidence.comparison import ComparisonPolicy
    from ogverify.evidence.execution import ExecutionConfig
    from ogverify.evidence.trace import Profile, Trace
    from ogverify.packing.log import EvidenceLog
    from ogverify.packing.pack import PackResult
    from ogverify.packing.recorder import Recorder
    from ogverify.report.findings import Report
    from ogverify.verify.batch import CheckSpec
    from ogverify.verify.policy import Policy

    class CheckArguments(TypedDict, total=False):
        """The keyword arguments that ``check`` and ``check_many`` share, each optional (see ``check``)."""

        trusted_keys: Sequence[StrPath]
        allow_unsigned: bool
        rerun: bool
        timeout: float
        policy: StrPath | Policy | None
        explain: bool

__all__ = ["EvidenceLog", "Recorder", "Report", "__version__", "check", "check_many", "export_cyclonedx",
           "file_cids", "import_opengradient", "load_bundle", "pack"]

StrPath = str | PathLike[str]


def pack(
    model: StrPath,
    out: StrPath,
    *,
    inputs: Mapping[str, Any],
    claimed_outputs: Mapping[str, Any] | None = None,
    config: ExecutionConfig | None = None,
    comparison: ComparisonPolicy | str | None = None,
    sign_keys: Sequence[StrPath] = (),
    annotations: Mapping[str, str] | None = None,
    with_sha256: bool = False,
    overwrite: bool = False,
    model_cid: str | None = None,
    model_signature: StrPath | None = None,
    trace: bool | Trace = False,
    profile: bool | Profile = False,
) -> PackResult:
    """Pack a model run into an evidence bundle (``.ogb`` → one file, else a directory).

    Args:
        model: the ONNX model file (external-data files beside it are packed too).
        out: where to write the bundle.
        inputs: input name → numpy array.
        claimed_outputs: output name → array as claimed; None computes them now in a fresh process.
        config: execution configuration; default: installed onnxruntime, CPU, ORT_ENABLE_ALL, 1 thread.
        comparison: a ComparisonPolicy, or a mode string such as ``"allclose:1e-4,1e-5"``; default exact.
        sign_keys: private key files to sign with.
        annotations: free-form strings stored in the manifest.
        with_sha256: add per-blob sha256 digests.
        overwrite: replace an existing bundle.
        model_cid: the model's IPFS CID as the producer claims it; ``check`` verifies it.
        model_signature: the publisher's model_signing signature file of the model files, to attach.
        trace: record a digest and sketch of every node output (True: take it now; see docs/drift.md).
        profile: record which configuration knobs change the outputs' bits (True: measure it now).
    """
    from pathlib import Path

    import numpy as np

    from ogverify.evidence.comparison import ComparisonPolicy, ComparisonSpec
    from ogverify.evidence.manifest import Provenance
    from ogverify.model.tensors import canonicalize
    from ogverify.packing.pack import pack as pack_bundle

    def arrays(values: Mapping[str, Any], what: str) -> dict[str, Any]:
        return {name: canonicalize(np.asarray(value), f"{what} {name!r}") for name, value in values.items()}

    policy = ComparisonPolicy(ComparisonSpec.parse(comparison)) if isinstance(comparison, str) else comparison
    return pack_bundle(
        Path(model),
        Path(out),
        inputs=arrays(inputs, "input"),
        claimed_outputs=None if claimed_outputs is None else arrays(claimed_outputs, "claimed output"),
        config=config,
        comparison=policy,
        sign_keys=[Path(k) for k in sign_keys],
        annotations=annotations,
        with_sha256=with_sha256,
        overwrite=overwrite,
        provenance=Provenance(model_cid=model_cid) if model_cid is not None else None,
        model_signature=Path(model_signature) if model_signature is not None else None,
        trace=trace,
        profile=profile,
    )


def file_cids(path: StrPath) -> FileCids:
    """The IPFS CIDs of a file as ``ipfs add`` computes them: ``.v0`` (``Qm...``) and ``.v1`` (raw leaves)."""
    from pathlib import Path

    from ogverify.evidence.cid import file_cids as cids

    return cids(Path(path))


def export_cyclonedx(bundle: StrPath, *, report: StrPath | None = None) -> dict[str, Any]:
    """A bundle as a CycloneDX 1.6 ML-BOM (a JSON document), with the verdict of ``report``
    (``check --format json`` of this bundle) when given."""
    from pathlib import Path

    from ogverify.interop.cyclonedx import export_bundle

    return export_bundle(Path(bundle), Path(report) if report is not None else None)


def import_opengradient(
    model: StrPath,
    out: StrPath,
    *,
    tx: StrPath | None = None,
    receipt: StrPath | None = None,
    input_json: StrPath | None = None,
    output_json: StrPath | None = None,
    sign_keys: Sequence[StrPath] = (),
    overwrite: bool = False,
) -> PackResult:
    """Pack an OpenGradient on-chain inference as a bundle: from its transaction and receipt
    (``eth_getTransactionByHash`` / ``eth_getTransactionReceipt`` results, JSON files), or from the
    SDK's decoded input and ModelOutput (JSON files). Needs ``pip install 'ogverify[opengradient]'``
    for the transaction form."""
    from pathlib import Path

    from ogverify.errors import UsageError
    from ogverify.evidence.cid import file_cids
    from ogverify.interop.opengradient import read_record, read_sdk_json
    from ogverify.packing.opengradient import import_record

    if tx is not None and receipt is not None:
        record, files = read_record(Path(tx), Path(receipt))
    elif input_json is not None and output_json is not None:
        record, files = read_sdk_json(Path(input_json), Path(output_json), file_cids(Path(model)).v0)
    else:
        raise UsageError("give tx and receipt, or input_json and output_json")
    return import_record(Path(model), Path(out), record, files, sign_keys=[Path(k) for k in sign_keys],
                         overwrite=overwrite)


_CHECK_DEFAULTS: CheckArguments = {
    "trusted_keys": (), "allow_unsigned": False, "rerun": True, "timeout": 600.0, "policy": None, "explain": True,
}


def check(bundle: StrPath, *, model_signing_key: StrPath | None = None, **arguments: Unpack[CheckArguments]) -> Report:
    """Check a bundle and return its Report (never raises for a bad bundle; bad keys raise).

    Args:
        bundle: ``.ogb`` file, bundle directory, or a ``file://`` / ``http(s)://`` URL of one.
        trusted_keys: public key files, or directories of ``.pub`` files (default: none).
        allow_unsigned: accept a bundle without a signature from a trusted key (default False).
        rerun: re-execute and compare (False: integrity and signatures only; default True).
        timeout: seconds the re-execution may take (default 600.0).
        policy: a policy file (``ogverify.toml`` or ``pyproject.toml``) or a loaded Policy; its
            keys, limits, rules and ``[check]`` settings apply over these arguments (default None).
        explain: on a failed reproduction, search for the cause (the ``drift`` stage; default True).
        model_signing_key: the model publisher's EC public key: verify the bundle's model_signing
            signature of its model files (``pip install 'ogverify[model-signing]'``).
    """
    from ogverify.verify.batch import check_target

    spec, _ = _spec("check", arguments, model_signing_key)
    return check_target(str(bundle), spec)


def check_many(
    bundles: Sequence[StrPath],
    *,
    jobs: int = 1,
    dask_scheduler: Any = None,
    on_result: Callable[[Report], None] | None = None,
    **arguments: Unpack[CheckArguments],
) -> list[Report]:
    """Check many bundles (paths, directories of bundles, quoted globs, URLs); reports in input order.

    With ``jobs > 1`` the checks run on that many fresh worker processes, each re-using loaded
    models for bundles that share a model and configuration (run it under
    ``if __name__ == "__main__":`` like any multiprocessing code). ``dask_scheduler`` (an
    address or a ``distributed.Client``) runs them on a Dask cluster instead; every worker must
    reach the bundles by the same path or URL. ``on_result`` sees each report as it finishes.
    The other arguments (``trusted_keys``, ``allow_unsigned``, ``rerun``, ``timeout``, ``policy``,
    ``explain``) are as for ``check``.
    """
    from ogverify.verify.batch import check_all, collect_targets

    spec, policy_jobs = _spec("check_many", arguments)
    results = check_all(
        collect_targets(bundles), spec, jobs=jobs if jobs > 1 else policy_jobs or 1, dask_scheduler=dask_scheduler,
        on_result=None if on_result is None else (lambda checked: on_result(checked.report)),
    )
    return [r.report for r in results]


def _spec(
    function: str, arguments: CheckArguments, model_signing_key: StrPath | None = None
) -> tuple[CheckSpec, int | None]:
    """The CheckSpec for the API's arguments, and the policy's ``jobs``. Arguments that differ
    from their defaults win over the policy's ``[check]`` settings."""
    from pathlib import Path
    from typing import get_args

    from ogverify.evidence.signing import load_trusted_keys
    from ogverify.verify.batch import CheckSpec
    from ogverify.verify.gate import PolicySetting, apply_policy
    from ogverify.verify.pipeline import CheckOptions
    from ogverify.verify.policy import load_policy

    for name in arguments:
        if name not in _CHECK_DEFAULTS:
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}")
    given: CheckArguments = {**_CHECK_DEFAULTS, **arguments}
    policy = given["policy"]
    loaded = load_policy(Path(policy)) if isinstance(policy, str | PathLike) else policy
    options = CheckOptions(
        trusted_keys=load_trusted_keys(Path(k) for k in given["trusted_keys"]),
        allow_unsigned=given["allow_unsigned"],
        rerun=given["rerun"],
        timeout=given["timeout"],
        explain=given["explain"],
        model_signing_key=Path(model_signing_key).resolve() if model_signing_key is not None else None,
    )
    settings: tuple[PolicySetting, ...] = get_args(PolicySetting)
    options = apply_policy(options, loaded, {name for name in settings if given[name] != _CHECK_DEFAULTS[name]})
    return CheckSpec.from_options(options, policy=loaded), loaded.jobs if loaded is not None else None


def load_bundle(path: StrPath) -> Bundle:
    """Open a bundle for reading (validated layout and manifest); use it as a context manager."""
    from pathlib import Path

    from ogverify.evidence.bundle import open_bundle

    return open_bundle(Path(path))


def __getattr__(name: str) -> Any:
    if name == "Report":
        from ogverify.report.findings import Report

        return Report
    if name == "Recorder":
        from ogverify.packing.recorder import Recorder

        return Recorder
    if name == "EvidenceLog":
        from ogverify.packing.log import EvidenceLog

        return EvidenceLog
    raise AttributeError(f"module 'ogverify' has no attribute {name!r}")

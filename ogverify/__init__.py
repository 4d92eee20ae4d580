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

__version__ = "0.1.0"

# Nothing else is imported here, not even typing (~8 ms): the console entry point
# (ogverify.cli.entry) starts the re-execution process of a check right after this package is
# imported. Type checkers read the name below as typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, TypedDict, Unpack

    from ogverify.evidence.bundle import Bundle
    from ogverify.evidence.cid import FileCids
    from ogverify.evidence.paths import StrPath
    from ogverify.packing.log import EvidenceLog
    from ogverify.packing.pack import PackResult, pack
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
    from os import PathLike
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
    if name == "pack":
        from ogverify.packing.pack import pack

        return pack
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

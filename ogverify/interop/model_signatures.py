"""Publishers' model signatures: sigstore bundles made by ``model_signing`` (OpenSSF model-transparency).

A ``model_signing`` signature (``model.sig``) is a sigstore bundle whose DSSE envelope holds an
in-toto statement listing every signed file by name and sha256. ``pack --model-signature`` reads
that list (without a key) to refuse a signature over other files; ``check --model-signing-key``
has the ``model_signing`` library verify the signature and every file (``pip install
'ogverify[model-signing]'``), and names the files that differ when it fails.

EC (P-256/384/521) private-key signatures are verified with the publisher's public key. Keyless
Sigstore signatures need the Sigstore trust root from the network, so they are not verified here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ogverify.errors import OgverifyError, UsageError

MEDIA_TYPE_PREFIX = "application/vnd.dev.sigstore.bundle"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
SINGLE_FILE = "."  # the resource name model_signing gives a signed file (rather than a folder)


class ModelSignatureMismatchError(Exception):
    """The signature does not hold for these files (a failed check, not an error)."""


class ModelSigningUnavailableError(OgverifyError):
    """The model-signing library is not installed."""


@dataclass(frozen=True)
class SignedFiles:
    """What a model signature claims to cover: file name → sha256 hex (``.`` for a signed single file).

    ``method`` is model_signing's serialization (``files``; ``shards`` signs pieces of files, which
    only the library compares).
    """

    media_type: str
    method: str
    files: Mapping[str, str]

    @property
    def single_file(self) -> bool:
        return list(self.files) == [SINGLE_FILE]


def read_signed_files(raw: bytes, what: str) -> SignedFiles:
    """The files a model_signing signature names, read without verifying anything.

    Raises:
        UsageError: not a model_signing sigstore bundle.
    """
    try:
        document = json.loads(raw)
        media_type = str(document["mediaType"])
        statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"], validate=True))
        if not media_type.startswith(MEDIA_TYPE_PREFIX) or statement.get("predicateType") != PREDICATE_TYPE:
            raise ValueError("not a model_signing signature")
        predicate = statement["predicate"]
        method = str(predicate["serialization"]["method"])
        files = {str(r["name"]): str(r["digest"]) for r in predicate["resources"]}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{what} is not a model_signing signature (a sigstore bundle of a model): {exc}") from exc
    return SignedFiles(media_type, method, files)


def file_sha256(path: Path) -> str:
    from ogverify.evidence.digest import digest_file

    return digest_file(path, "sha256").hex


def differences(signed: SignedFiles, files: Mapping[str, str], model_name: str) -> list[str]:
    """How ``files`` (name → sha256 of the model files) differ from what ``signed`` covers, in words.

    Empty when they agree, and for serializations other than ``files`` (the library decides those).
    """
    if signed.method != "files":
        return []
    claimed = dict(signed.files)
    if signed.single_file:
        claimed = {model_name: claimed[SINGLE_FILE]}
    found = []
    for name in sorted(set(claimed) | set(files)):
        if name not in files:
            found.append(f"it signs '{name}', which is not a file of this model")
        elif name not in claimed:
            found.append(f"model file '{name}' is not covered by it")
        elif claimed[name] != files[name]:
            found.append(f"model file '{name}' differs from the signed file "
                         f"(sha256 signed {claimed[name][:12]}..., here {files[name][:12]}...)")
    return found


def verify_model_signature(signature: Path, model_dir: Path, model_name: str, public_key: Path) -> SignedFiles:
    """Verify ``signature`` over the model files in ``model_dir`` with the publisher's EC public key.

    Raises:
        ModelSignatureMismatchError: the signature is not by this key, or the files are not the signed ones.
        ModelSigningUnavailableError: the model-signing library is not installed.
        UsageError: not a model_signing signature, or an unreadable key.
    """
    signed = read_signed_files(signature.read_bytes(), "the model signature")
    try:
        from model_signing import verifying
    except ImportError as exc:
        raise ModelSigningUnavailableError(
            "verifying a model signature needs the model-signing library: pip install 'ogverify[model-signing]'"
        ) from exc
    target = model_dir / model_name if signed.single_file else model_dir
    try:
        verifier = verifying.Config().use_elliptic_key_verifier(public_key=public_key)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, OSError) as exc:
        raise UsageError(f"--model-signing-key {public_key} is not an EC public key (PEM): {exc}") from exc
    try:
        verifier.verify(target, signature)
    except ValueError as exc:
        text = str(exc)
        if text.startswith("Signature mismatch"):  # the signature holds, the files differ: name them
            here = {p.relative_to(model_dir).as_posix(): file_sha256(p) for p in sorted(model_dir.rglob("*"))
                    if p.is_file()}
            named = differences(signed, here, model_name)
            raise ModelSignatureMismatchError("; ".join(named) if named else text) from exc
        if text.startswith("Key mismatch"):
            raise ModelSignatureMismatchError(f"the model signature is not by the key {public_key.name}") from exc
        raise ModelSignatureMismatchError(f"the model signature does not verify: {text}") from exc
    except Exception as exc:  # sigstore's own errors for a forged or malformed envelope
        raise ModelSignatureMismatchError(f"the model signature does not verify: {type(exc).__name__}: {exc}") from exc
    return signed


def signed_names(signed: SignedFiles, model_name: str) -> list[str]:
    """The model files a signature covers, by their names in the bundle."""
    return [model_name] if signed.single_file else sorted(signed.files)


def check_covers(raw: bytes, what: str, files: Mapping[str, Path], model_name: str) -> SignedFiles:
    """Refuse a signature that does not name exactly these model files with these contents.

    Raises:
        UsageError: not a model_signing signature, or one over other files.
    """
    signed = read_signed_files(raw, what)
    named = differences(signed, {name: file_sha256(path) for name, path in files.items()}, model_name)
    if named:
        raise UsageError(f"{what} does not sign this model: {'; '.join(named)}")
    return signed


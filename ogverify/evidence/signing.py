"""ed25519 keys, in-toto Statements and DSSE envelopes over a bundle's manifest.

The envelope's payload is an in-toto Statement v1 whose subject is ``manifest.json`` by sha256
(a registered digest name, so any in-toto tool can match it) and, with ``--sha256``, every blob.
The predicate carries the signed manifest itself, so that when a bundle's manifest no longer
matches its signature ``check`` can name the fields that were changed after signing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ogverify.errors import BundleError, KeyFileError, UsageError
from ogverify.evidence import canonical_json
from ogverify.evidence.manifest import Manifest
from ogverify.evidence.paths import problem

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://ogverify.dev/evidence-bundle/v1"
MAX_KEY_FILE = 64 << 10
MAX_SIGNATURES_PER_ENVELOPE = 8


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    encoded_type = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(encoded_type), encoded_type, len(payload), payload)


# The DER SubjectPublicKeyInfo of an ed25519 key is this prefix and the 32 key bytes (RFC 8410).
# Knowing it lets check read public keys and name them without cryptography's serialization
# module (~25 ms to import: SSH, PKCS#12...); anything else goes through that module.
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM_PUBLIC = re.compile(rb"-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]{60,80})-----END PUBLIC KEY-----\r?\n?")


def keyid_of(public_key: Ed25519PublicKey) -> str:
    """sha256 hex of the DER SubjectPublicKeyInfo: a stable name for a key."""
    return hashlib.sha256(ED25519_SPKI_PREFIX + public_key.public_bytes_raw()).hexdigest()


def _plain_ed25519_pem(raw: bytes) -> Ed25519PublicKey | None:
    """The key of a PEM file that is exactly one ed25519 SubjectPublicKeyInfo block, else None."""
    match = _PEM_PUBLIC.fullmatch(raw.strip() + b"\n")
    if match is None:
        return None
    try:
        der = base64.b64decode(match.group(1).replace(b"\r", b"").replace(b"\n", b""), validate=True)
    except binascii.Error:
        return None
    if len(der) != len(ED25519_SPKI_PREFIX) + 32 or not der.startswith(ED25519_SPKI_PREFIX):
        return None
    return Ed25519PublicKey.from_public_bytes(der[len(ED25519_SPKI_PREFIX):])


@dataclass(frozen=True)
class TrustedKey:
    """A public key the auditor trusts, with where it came from."""

    keyid: str
    key: Ed25519PublicKey
    source: str


def generate_key_pair(private_path: Path, *, overwrite: bool = False) -> tuple[Path, Path, str]:
    """Write a new ed25519 key pair: ``private_path`` (PKCS#8 PEM, mode 0600) and ``.pub``.

    Returns:
        (private path, public path, keyid).

    Raises:
        UsageError: either file exists and ``overwrite`` is false, or the folder is missing.
    """
    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.is_symlink():
            raise UsageError(f"{path} is a symbolic link; refusing to write a key through it")
        if path.exists() and not overwrite:
            raise UsageError(f"{path} already exists; refusing to overwrite a key")
    if not private_path.parent.is_dir():
        raise UsageError(f"directory {private_path.parent} does not exist")
    from cryptography.hazmat.primitives import serialization

    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if overwrite else os.O_EXCL)
    descriptor = os.open(private_path, flags, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(private_pem)
        public_path.write_bytes(public_pem)
    except BaseException:
        # Half a key pair is worse than none: the next keygen would refuse to overwrite it.
        private_path.unlink(missing_ok=True)
        raise
    return private_path, public_path, keyid_of(private_key.public_key())


def _read_key_file(path: Path) -> bytes:
    found = problem(path)
    if found is not None:
        raise KeyFileError(f"key file {path} {found}")
    if path.stat().st_size > MAX_KEY_FILE:
        raise KeyFileError(f"key file {path} is too large to be a key")
    return path.read_bytes()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an unencrypted PKCS#8 PEM ed25519 private key."""
    from cryptography.hazmat.primitives import serialization

    raw = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}; ogverify signs with ed25519 keys")
    return key


def load_public_key(path: Path) -> TrustedKey:
    """Load a PEM SubjectPublicKeyInfo ed25519 public key."""
    raw = _read_key_file(path)
    plain = _plain_ed25519_pem(raw)
    if plain is not None:
        return TrustedKey(keyid_of(plain), plain, str(path))
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}; ogverify trusts ed25519 keys only")
    return TrustedKey(keyid_of(key), key, str(path))


def load_trusted_keys(paths: Iterable[Path]) -> dict[str, TrustedKey]:
    """Public keys from files, or from every ``*.pub``/``*.pem`` file of a keyring directory."""
    keys: dict[str, TrustedKey] = {}
    for path in paths:
        files = sorted(p for p in path.iterdir() if p.suffix in (".pub", ".pem")) if path.is_dir() else [path]
        if not files:
            raise KeyFileError(f"trusted-key directory {path} holds no .pub or .pem files")
        for file in files:
            trusted = load_public_key(file)
            keys[trusted.keyid] = trusted
    return keys


def build_statement(manifest: Manifest, manifest_bytes: bytes, *, blob_subjects: bool) -> dict[str, Any]:
    """The in-toto Statement v1 a signature over this manifest carries."""
    subjects: list[dict[str, Any]] = [
        {"name": "manifest.json", "digest": {"sha256": hashlib.sha256(manifest_bytes).hexdigest()}}
    ]
    if blob_subjects:
        for _, artifact in manifest.artifacts():
            if artifact.sha256 is None:
                raise UsageError("per-blob sha256 subjects need a bundle packed with --sha256")
            subjects.append({"name": artifact.blob_path, "digest": {"sha256": artifact.sha256}})
        subjects = [subjects[0], *sorted({s["name"]: s for s in subjects[1:]}.values(), key=lambda s: s["name"])]
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {"bundle_format_version": 1, "manifest": manifest.to_json()},
    }


def sign_statement(statement: Mapping[str, Any], key: Ed25519PrivateKey) -> tuple[str, bytes]:
    """A DSSE envelope over ``statement``; returns (keyid, canonical envelope bytes)."""
    payload = canonical_json.dumps(statement)
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    keyid = keyid_of(key.public_key())
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}],
    }
    return keyid, canonical_json.dumps(envelope)


def sign_manifest(manifest: Manifest, manifest_bytes: bytes, key: Ed25519PrivateKey) -> tuple[str, bytes]:
    """Sign a manifest; per-blob sha256 subjects are added when the manifest carries them."""
    with_blobs = all(artifact.sha256 is not None for _, artifact in manifest.artifacts())
    return sign_statement(build_statement(manifest, manifest_bytes, blob_subjects=with_blobs), key)


SignatureStatus = Literal["trusted", "untrusted", "invalid", "malformed", "mismatch"]


@dataclass(frozen=True)
class SignatureCheck:
    """What one envelope's signature says about this bundle."""

    source: str
    keyid: str
    status: SignatureStatus
    message: str
    changed_fields: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "trusted"


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise BundleError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise BundleError(f"{what} is not valid base64") from exc


@dataclass(frozen=True)
class EnvelopeSignature:
    """One entry of a DSSE envelope's ``signatures``: the keyid it names ("" when none) and the
    signature bytes, or None and why (``problem``) when they are not base64."""

    keyid: str
    sig: bytes | None
    problem: str = ""


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope of an in-toto statement, parsed but not verified."""

    payload: bytes
    signatures: tuple[EnvelopeSignature, ...]


def parse_envelope(raw: bytes, source: str) -> Envelope:
    """Parse a DSSE envelope (strict JSON) whose payload is an in-toto statement.

    Bundle signatures and verdict attestations are both read here. The number of signatures is
    bounded (``MAX_SIGNATURES_PER_ENVELOPE``): each entry may be tried against every trusted key.

    Raises:
        BundleError: not strict JSON, not a DSSE envelope, another payloadType, a payload that
            is not base64, no signatures or too many.
    """
    envelope = canonical_json.loads_strict(raw, source)
    if not isinstance(envelope, dict) or not isinstance(envelope.get("signatures"), list):
        raise BundleError(f"{source} is not a DSSE envelope")
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise BundleError(f"{source} has payloadType {envelope.get('payloadType')!r}, expected {PAYLOAD_TYPE}")
    payload = _b64(envelope.get("payload"), f"{source} payload")
    entries = envelope["signatures"]
    if not entries:
        raise BundleError(f"{source} holds no signatures")
    if len(entries) > MAX_SIGNATURES_PER_ENVELOPE:
        raise BundleError(f"{source} holds {len(entries)} signatures, more than {MAX_SIGNATURES_PER_ENVELOPE}")
    signatures = []
    for index, entry in enumerate(entries):
        keyid = entry.get("keyid", "") if isinstance(entry, dict) else ""
        keyid = keyid if isinstance(keyid, str) else ""
        try:
            signature = _b64(entry.get("sig") if isinstance(entry, dict) else None, f"{source} signature {index} sig")
        except BundleError as exc:
            signatures.append(EnvelopeSignature(keyid, None, exc.message))
            continue
        signatures.append(EnvelopeSignature(keyid, signature))
    return Envelope(payload, tuple(signatures))


def verify_envelope(
    source: str, raw: bytes, manifest_bytes: bytes, manifest: Manifest, trusted: Mapping[str, TrustedKey]
) -> list[SignatureCheck]:
    """Check every signature of one DSSE envelope against the trusted keys and this manifest."""
    try:
        envelope = parse_envelope(raw, source)
    except BundleError as exc:
        return [SignatureCheck(source, "", "malformed", exc.message)]
    return [
        SignatureCheck(source, entry.keyid, "malformed", entry.problem) if entry.sig is None
        else _verify_one(source, entry.keyid, entry.sig, envelope.payload, manifest_bytes, manifest, trusted)
        for entry in envelope.signatures
    ]


def find_signer(
    keyid: str, signature: bytes, payload: bytes, trusted: Mapping[str, TrustedKey]
) -> TrustedKey | None:
    """The trusted key whose signature over ``payload``'s DSSE PAE this is, or None.

    The envelope's keyid is only a hint: when it names no trusted key, every trusted key is tried.
    """
    candidates = [trusted[keyid]] if keyid in trusted else list(trusted.values())
    for candidate in candidates:
        try:
            candidate.key.verify(signature, pae(PAYLOAD_TYPE, payload))
        except InvalidSignature:
            continue
        return candidate
    return None


def _verify_one(
    source: str, keyid: str, signature: bytes, payload: bytes, manifest_bytes: bytes,
    manifest: Manifest, trusted: Mapping[str, TrustedKey],
) -> SignatureCheck:
    signer = find_signer(keyid, signature, payload, trusted)
    label = keyid[:12] or "(no keyid)"
    if signer is None:
        if keyid in trusted:
            return SignatureCheck(source, keyid, "invalid", f"signature by trusted key {label} does not verify")
        return SignatureCheck(
            source, keyid, "untrusted", f"signed by key {label}, which is not among the trusted keys"
        )
    return _check_statement(source, signer.keyid, payload, manifest_bytes, manifest)


def _check_statement(
    source: str, keyid: str, payload: bytes, manifest_bytes: bytes, manifest: Manifest
) -> SignatureCheck:
    label = keyid[:12]
    try:
        statement = canonical_json.loads_strict(payload, f"{source} statement")
    except BundleError as exc:
        return SignatureCheck(source, keyid, "malformed", exc.message)
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        return SignatureCheck(source, keyid, "malformed", f"{source} payload is not an in-toto Statement v1")
    if statement.get("predicateType") != PREDICATE_TYPE:
        return SignatureCheck(
            source, keyid, "mismatch", f"signature by {label} is over a {statement.get('predicateType')!r} statement"
        )
    expected = hashlib.sha256(manifest_bytes).hexdigest()
    subjects = statement.get("subject")
    signed_digest = None
    if isinstance(subjects, list):
        for subject in subjects:
            if isinstance(subject, dict) and subject.get("name") == "manifest.json":
                digest = subject.get("digest")
                signed_digest = digest.get("sha256") if isinstance(digest, dict) else None
    if signed_digest == expected:
        return SignatureCheck(source, keyid, "trusted", f"valid signature by trusted key {label}")
    predicate = statement.get("predicate")
    signed_manifest = predicate.get("manifest") if isinstance(predicate, dict) else None
    changed = tuple(describe_changes(signed_manifest, manifest.to_json())) if signed_manifest is not None else ()
    detail = f": changed since signing: {'; '.join(changed[:5])}" if changed else ""
    return SignatureCheck(
        source, keyid, "mismatch",
        f"signature by trusted key {label} covers a different manifest{detail}", changed,
    )


def _artifact_label(section: str, item: Any, index: int) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    kind = {"inputs": "input", "outputs": "claimed output", "model_files": "model file"}.get(section, section)
    return f"{kind} '{name}'" if name is not None else f"{section}[{index}]"


def describe_changes(signed: Any, current: Any, path: str = "") -> list[str]:
    """People-readable differences between the signed manifest and the one in the bundle."""
    if isinstance(signed, dict) and isinstance(current, dict):
        changes: list[str] = []
        for key in sorted(set(signed) | set(current)):
            sub = f"{path}.{key}" if path else key
            if key not in signed:
                changes.append(f"{sub} added")
            elif key not in current:
                changes.append(f"{sub} removed")
            elif path == "" and key in ("inputs", "outputs", "model_files") and signed[key] != current[key]:
                changes.extend(_describe_list(key, signed[key], current[key]))
            elif path == "" and key == "model" and signed[key] != current[key]:
                changes.append(f"model '{current[key].get('name')}' changed")
            else:
                changes.extend(describe_changes(signed[key], current[key], sub))
        return changes
    if signed != current:
        return [f"{path}: signed {signed!r}, bundle has {current!r}"]
    return []


def _describe_list(section: str, signed: Any, current: Any) -> list[str]:
    if not isinstance(signed, list) or not isinstance(current, list):
        return [f"{section} changed"]
    changes = []
    for index in range(max(len(signed), len(current))):
        before = signed[index] if index < len(signed) else None
        after = current[index] if index < len(current) else None
        if before == after:
            continue
        if before is None:
            changes.append(f"{_artifact_label(section, after, index)} added")
        elif after is None:
            changes.append(f"{_artifact_label(section, before, index)} removed")
        else:
            fields = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            changes.append(f"{_artifact_label(section, after, index)} changed ({', '.join(fields)})")
    return changes


def sign_bundle(path: Path, key_path: Path) -> str:
    """Add a signature by ``key_path`` to the bundle at ``path`` (either form); return its keyid.

    The bundle's blobs are verified first: ogverify does not sign evidence that does not hold.
    Signing again with the same key replaces that key's envelope (ed25519 is deterministic, so
    the bytes are the same).
    """
    from ogverify.evidence.bundle import bundle_members, open_bundle, write_member_atomically, write_tar

    key = load_private_key(path=key_path)
    with open_bundle(path) as bundle:
        for label, artifact in bundle.manifest.artifacts():
            problem = bundle.verify_blob(artifact)
            if problem is not None:
                raise BundleError(f"refusing to sign: {label}: {problem}")
        keyid, envelope = sign_manifest(bundle.manifest, bundle.manifest_bytes, key)
        member = f"signatures/{keyid}.dsse.json"
        if bundle.form == "directory":
            (path / "signatures").mkdir(exist_ok=True)
            write_member_atomically(path / member, envelope)
            return keyid
        members = [m for m in bundle_members(bundle) if m[0] != member]
        members.append((member, len(envelope), lambda: _bytes_reader(envelope)))
        write_tar(path, members, overwrite=True)
    return keyid


def _bytes_reader(data: bytes) -> Any:
    import io

    return io.BytesIO(data)

"""Keys and signatures: keygen, DSSE envelopes checked independently, ``sign``, and trust decisions.

The DSSE/in-toto checks here deliberately re-implement PAE, keyids and envelope decoding from the
specifications (base64, json, hashlib, cryptography) instead of importing ``ogverify.evidence.signing``, so a
bug shared by signer and verifier cannot hide.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata
import json
import stat
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ogverify.evidence.manifest import Manifest
from ogverify.evidence.signing import TrustedKey, generate_key_pair, load_trusted_keys, verify_envelope
from ogverify.packing.pack import pack
from tests.conftest import RunCli
from tests.fixtures import models

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://ogverify.dev/evidence-bundle/v1"
HEX64 = frozenset("0123456789abcdef")


# --- helpers written from the specifications -----------------------------------------------


def spec_pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 PAE: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal bytes."""
    encoded_type = payload_type.encode("utf-8")
    return b" ".join(
        [b"DSSEv1", str(len(encoded_type)).encode("ascii"), encoded_type, str(len(body)).encode("ascii"), body]
    )


def spki_keyid(public_pem: bytes) -> str:
    """sha256 hex of the DER SubjectPublicKeyInfo of a PEM public key."""
    key = serialization.load_pem_public_key(public_pem)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def load_ed25519_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def bundle_members(bundle: Path) -> dict[str, bytes]:
    """Every regular file of a bundle (either form) by member name."""
    if bundle.is_dir():
        return {p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    members: dict[str, bytes] = {}
    with tarfile.open(bundle) as tar:
        for member in tar.getmembers():
            assert member.isfile(), member.name
            handle = tar.extractfile(member)
            assert handle is not None
            members[member.name] = handle.read()
    return members


def envelopes_of(bundle: Path) -> dict[str, bytes]:
    return {name: raw for name, raw in bundle_members(bundle).items() if name.startswith("signatures/")}


def decode_envelope(raw: bytes) -> tuple[dict[str, Any], bytes, dict[str, Any]]:
    """(envelope, payload bytes, statement) using only json and base64."""
    envelope = json.loads(raw)
    assert isinstance(envelope, dict)
    payload = base64.b64decode(envelope["payload"], validate=True)
    statement = json.loads(payload)
    assert isinstance(statement, dict)
    return envelope, payload, statement


def make_envelope(key_path: Path, payload: bytes, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> tuple[str, bytes]:
    """A correctly signed DSSE envelope made without ogverify: (keyid, envelope bytes)."""
    key = load_ed25519_private(key_path)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyid = spki_keyid(public_pem)
    signature = key.sign(spec_pae(payload_type, payload))
    envelope = {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}],
    }
    return keyid, json.dumps(envelope).encode("utf-8")


def new_key(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    private, public, _ = generate_key_pair(folder / name)
    return private, public


def pack_mlp(
    model: Path, out: Path, x: np.ndarray[Any, Any], *, sign: Sequence[Path] = (), sha256: bool = False
) -> Path:
    """Pack the MLP with claimed outputs from the float64 reference (no subprocess: fast)."""
    claimed = {"y": models.mlp_reference_outputs(models.mlp(), x)}
    return pack(model, out, inputs={"x": x}, claimed_outputs=claimed, sign_keys=sign, with_sha256=sha256).path


def blob_of_input(bundle: Path, name: str) -> str:
    manifest = json.loads(bundle_members(bundle)["manifest.json"])
    entry = next(t for t in manifest["inputs"] if t["name"] == name)
    return f"blobs/blake3/{entry['digest']['blake3']}"


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def check(run_cli: RunCli, bundle: Path, *keys: Path) -> tuple[int, str]:
    args: list[str | Path] = ["check", bundle, "--no-rerun"]
    for key in keys:
        args += ["--trusted-key", key]
    result = run_cli(*args)
    return result.exit_code, " ".join(result.output.split())  # long lines wrap; compare words


@pytest.fixture
def x(mlp_files: dict[str, Path]) -> np.ndarray[Any, Any]:
    array: np.ndarray[Any, Any] = np.load(mlp_files["x"])
    return array


# --- keygen --------------------------------------------------------------------------------


def test_keygen_writes_pkcs8_private_and_spki_public(tmp_path: Path, run_cli: RunCli) -> None:
    key = tmp_path / "signer.key"
    result = run_cli("keygen", "--out", key)
    assert result.exit_code == 0, result.output
    pub = tmp_path / "signer.key.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    private_pem = key.read_bytes()
    public_pem = pub.read_bytes()
    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")  # SubjectPublicKeyInfo
    private = serialization.load_pem_private_key(private_pem, password=None)
    public = serialization.load_pem_public_key(public_pem)
    assert isinstance(private, Ed25519PrivateKey)
    assert isinstance(public, Ed25519PublicKey)
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert private.public_key().public_bytes(*raw) == public.public_bytes(*raw)
    keyid = spki_keyid(public_pem)
    assert keyid in result.stdout.split()
    assert keyid not in result.stderr  # stdout carries the keyid, stderr the chatter


def test_keygen_refuses_to_overwrite_either_file_without_force(tmp_path: Path, run_cli: RunCli) -> None:
    key = tmp_path / "signer.key"
    pub = tmp_path / "signer.key.pub"
    assert run_cli("keygen", "--out", key).exit_code == 0
    before = key.read_bytes(), pub.read_bytes()

    refused = run_cli("keygen", "--out", key)
    assert refused.exit_code == 2
    assert "refus" in refused.stderr and str(key) in refused.stderr
    assert (key.read_bytes(), pub.read_bytes()) == before

    # Only the public half present: still refused, and no private key is written beside it.
    lone = tmp_path / "lone.key"
    lone_pub = tmp_path / "lone.key.pub"
    lone_pub.write_bytes(b"precious")
    refused = run_cli("keygen", "--out", lone)
    assert refused.exit_code == 2
    assert "refus" in refused.stderr and str(lone_pub) in refused.stderr
    assert not lone.exists() and lone_pub.read_bytes() == b"precious"


def test_keygen_force_replaces_both_files_and_keeps_mode_0600(tmp_path: Path, run_cli: RunCli) -> None:
    key = tmp_path / "signer.key"
    first = run_cli("keygen", "--out", key)
    assert first.exit_code == 0
    key.chmod(0o644)  # a too-open existing file must not keep its mode through --force
    second = run_cli("keygen", "--out", key, "--force")
    assert second.exit_code == 0, second.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    new_keyid = spki_keyid((tmp_path / "signer.key.pub").read_bytes())
    assert new_keyid in second.stdout
    assert new_keyid not in first.stdout


def test_keygen_into_missing_directory_is_a_usage_error(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("keygen", "--out", tmp_path / "nowhere" / "signer.key")
    assert result.exit_code == 2
    assert "error:" in result.stderr and "nowhere" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "nowhere").exists()


# --- an independent DSSE / in-toto verification ----------------------------------------------


def test_signed_bundle_verifies_with_spec_pae_and_cryptography_alone(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path], x: np.ndarray[Any, Any]
) -> None:
    key, pub = keypair
    claimed = tmp_path / "y.npy"
    np.save(claimed, models.mlp_reference_outputs(models.mlp(), x))
    bundle = tmp_path / "b.ogb"
    packed = run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "-O", f"y={claimed}",
                     "--sign", key, "--out", bundle)
    assert packed.exit_code == 0, packed.output

    members = bundle_members(bundle)
    public_pem = pub.read_bytes()
    public = serialization.load_pem_public_key(public_pem)
    assert isinstance(public, Ed25519PublicKey)
    keyid = hashlib.sha256(
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).hexdigest()
    assert sorted(envelopes_of(bundle)) == [f"signatures/{keyid}.dsse.json"]

    envelope, payload, statement = decode_envelope(members[f"signatures/{keyid}.dsse.json"])
    assert envelope["payloadType"] == IN_TOTO_PAYLOAD_TYPE
    assert len(envelope["signatures"]) == 1
    entry = envelope["signatures"][0]
    assert entry["keyid"] == keyid
    signature = base64.b64decode(entry["sig"], validate=True)
    assert len(signature) == 64
    public.verify(signature, spec_pae(envelope["payloadType"], payload))  # raises InvalidSignature if not

    assert statement["_type"] == STATEMENT_V1
    assert statement["predicateType"] == PREDICATE_TYPE
    manifest_sha256 = hashlib.sha256(members["manifest.json"]).hexdigest()
    subjects = {s["name"]: s["digest"] for s in statement["subject"]}
    assert subjects == {"manifest.json": {"sha256": manifest_sha256}}  # no --sha256: only the manifest
    assert statement["predicate"]["bundle_format_version"] == 1
    assert statement["predicate"]["manifest"] == json.loads(members["manifest.json"])
    assert f"sha256:{manifest_sha256}" in packed.stderr


def test_securesystemslib_is_not_required(
    tmp_path: Path, mlp_files: dict[str, Path]
) -> None:
    requirements = importlib.metadata.requires("ogverify") or []
    assert not [r for r in requirements if "securesystemslib" in r.lower()]
    # Keygen, pack --sign, sign and check in a process where securesystemslib cannot be imported.
    script = """
import sys
sys.modules["securesystemslib"] = None  # any import of it now raises ImportError
from pathlib import Path
import numpy as np
from ogverify.packing.pack import pack
from ogverify.evidence.signing import generate_key_pair, load_trusted_keys, sign_bundle
from ogverify.verify.pipeline import CheckOptions, check_bundle
folder, model, x = Path(sys.argv[1]), Path(sys.argv[2]), np.load(sys.argv[3])
key, pub, _ = generate_key_pair(folder / "k1")
key2, pub2, _ = generate_key_pair(folder / "k2")
claimed = {"y": np.zeros((4, 8), np.float32)}
bundle = pack(model, folder / "b.ogb", inputs={"x": x}, claimed_outputs=claimed, sign_keys=[key]).path
sign_bundle(bundle, key2)
report = check_bundle(bundle, CheckOptions(trusted_keys=load_trusted_keys([pub, pub2]), rerun=False))
print(report.headline)
"""
    done = subprocess.run([sys.executable, "-c", script, tmp_path, mlp_files["model"], mlp_files["x"]],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "VERIFIED: integrity and signatures hold"


def test_envelope_verifies_with_securesystemslib_when_installed(
    tmp_path: Path, keypair: tuple[Path, Path], mlp_files: dict[str, Path], x: np.ndarray[Any, Any]
) -> None:
    try:
        dsse: Any = importlib.import_module("securesystemslib.dsse")
        signer: Any = importlib.import_module("securesystemslib.signer")
    except ImportError:
        pytest.skip("securesystemslib is not installed (and ogverify does not need it)")
    key, pub = keypair
    bundle = pack_mlp(mlp_files["model"], tmp_path / "b", x, sign=[key])
    ((_, raw),) = envelopes_of(bundle).items()
    keyid = spki_keyid(pub.read_bytes())
    public = serialization.load_pem_public_key(pub.read_bytes())
    sslib_key = signer.SSlibKey.from_crypto(public, keyid=keyid, scheme="ed25519")
    envelope = dsse.Envelope.from_dict(json.loads(raw))
    verified = envelope.verify([sslib_key], 1)
    assert keyid in verified
    assert envelope.payload_type == IN_TOTO_PAYLOAD_TYPE


# --- --sha256 subjects -----------------------------------------------------------------------


def test_sha256_statement_names_every_blob_with_its_sha256(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path]
) -> None:
    key, pub = keypair
    zeros = tmp_path / "zeros.npy"  # compressible, so at least one blob is stored as zstd
    np.save(zeros, np.zeros((4, 16), np.float32))
    bundle = tmp_path / "b.ogb"
    packed = run_cli("pack", mlp_files["model"], "-i", f"x={zeros}", "--run", "--sha256", "--sign", key,
                     "--out", bundle)
    assert packed.exit_code == 0, packed.output
    members = bundle_members(bundle)
    manifest = json.loads(members["manifest.json"])
    (raw,) = envelopes_of(bundle).values()
    _, _, statement = decode_envelope(raw)

    subjects = statement["subject"]
    assert subjects[0] == {"name": "manifest.json",
                           "digest": {"sha256": hashlib.sha256(members["manifest.json"]).hexdigest()}}
    names = [s["name"] for s in subjects[1:]]
    assert names == sorted(names)
    blobs = sorted(name for name in members if name.startswith("blobs/"))
    assert names == blobs and len(blobs) == 3  # model, x, y

    entries = [manifest["model"], *manifest["model_files"], *manifest["inputs"], *manifest["outputs"]]
    encodings = {f"blobs/blake3/{e['digest']['blake3']}": e["encoding"] for e in entries}
    assert "zstd" in encodings.values()
    for subject in subjects[1:]:
        stored = members[subject["name"]]
        content = stored
        if encodings[subject["name"]] == "zstd":
            content = zstandard.ZstdDecompressor().stream_reader(stored, read_across_frames=True).read()
            assert content != stored
        assert subject["digest"] == {"sha256": hashlib.sha256(content).hexdigest()}
        # ...and the manifest records the same sha256 for that blob.
        assert any(e["digest"].get("sha256") == subject["digest"]["sha256"] for e in entries)

    assert check(run_cli, bundle, pub)[0] == 0


# --- ogverify sign ---------------------------------------------------------------------------


def test_sign_directory_bundle_adds_envelope_and_is_idempotent(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path], x: np.ndarray[Any, Any]
) -> None:
    key, pub = keypair
    bundle = pack_mlp(mlp_files["model"], tmp_path / "b", x)
    code, output = check(run_cli, bundle, pub)
    assert code == 1 and "bundle is not signed" in output

    keyid = spki_keyid(pub.read_bytes())
    signed = run_cli("sign", bundle, "--key", key)
    assert signed.exit_code == 0, signed.output
    assert keyid[:12] in signed.stderr
    envelope = bundle / "signatures" / f"{keyid}.dsse.json"
    first = envelope.read_bytes()
    assert sorted(envelopes_of(bundle)) == [f"signatures/{keyid}.dsse.json"]
    code, output = check(run_cli, bundle, pub)
    assert code == 0, output
    assert output.startswith("VERIFIED")

    again = run_cli("sign", bundle, "--key", key)
    assert again.exit_code == 0, again.output
    assert envelope.read_bytes() == first
    assert sorted(envelopes_of(bundle)) == [f"signatures/{keyid}.dsse.json"]


def test_sign_ogb_is_idempotent_and_matches_pack_sign(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path], x: np.ndarray[Any, Any]
) -> None:
    key, pub = keypair
    bundle = pack_mlp(mlp_files["model"], tmp_path / "b.ogb", x)
    unsigned = bundle.read_bytes()
    assert run_cli("sign", bundle, "--key", key).exit_code == 0
    once = bundle.read_bytes()
    assert once != unsigned
    keyid = spki_keyid(pub.read_bytes())
    assert sorted(envelopes_of(bundle)) == [f"signatures/{keyid}.dsse.json"]
    unsigned_members = bundle_members_from_bytes(unsigned, tmp_path)
    assert {n: d for n, d in bundle_members(bundle).items() if not n.startswith("signatures/")} == unsigned_members

    assert run_cli("sign", bundle, "--key", key).exit_code == 0
    assert bundle.read_bytes() == once  # ed25519 is deterministic and the tar is too

    presigned = pack_mlp(mlp_files["model"], tmp_path / "presigned.ogb", x, sign=[key])
    assert presigned.read_bytes() == once
    code, output = check(run_cli, bundle, pub)
    assert code == 0, output


def bundle_members_from_bytes(data: bytes, folder: Path) -> dict[str, bytes]:
    copy = folder / "copy-of-unsigned.ogb"
    copy.write_bytes(data)
    return bundle_members(copy)


@pytest.mark.parametrize("form", ["b", "b.ogb"])
def test_two_keys_give_two_envelopes_and_either_key_verifies(
    tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path], x: np.ndarray[Any, Any], form: str
) -> None:
    key1, pub1 = new_key(tmp_path / "keys", "one.key")
    key2, pub2 = new_key(tmp_path / "keys", "two.key")
    _, pub3 = new_key(tmp_path / "keys", "three.key")
    bundle = pack_mlp(mlp_files["model"], tmp_path / form, x, sign=[key1])
    result = run_cli("sign", bundle, "--key", key2)
    assert result.exit_code == 0, result.output
    keyids = sorted(spki_keyid(p.read_bytes()) for p in (pub1, pub2))
    assert sorted(envelopes_of(bundle)) == [f"signatures/{k}.dsse.json" for k in keyids]

    for trusted in (pub1, pub2):
        code, output = check(run_cli, bundle, trusted)
        assert code == 0, output
        assert "signed by 1 trusted key(s)" in output
    code, output = check(run_cli, bundle, pub1, pub2)
    assert code == 0 and "signed by 2 trusted key(s)" in output
    code, output = check(run_cli, bundle, pub3)
    assert code == 1 and "not among the trusted keys" in output


@pytest.mark.parametrize("form", ["b", "b.ogb"])
def test_sign_refuses_a_bundle_whose_blob_was_corrupted(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path],
    x: np.ndarray[Any, Any], form: str
) -> None:
    key, _ = keypair
    bundle = pack_mlp(mlp_files["model"], tmp_path / form, x)
    blob = blob_of_input(bundle, "x")
    if bundle.is_dir():
        flip_byte(bundle / blob, (bundle / blob).stat().st_size // 2)
    else:
        with tarfile.open(bundle) as tar:
            member = tar.getmember(blob)
        flip_byte(bundle, member.offset_data + member.size // 2)
    corrupted = bundle_members(bundle)

    result = run_cli("sign", bundle, "--key", key)
    assert result.exit_code == 3
    assert "refusing to sign" in result.stderr and "input 'x'" in result.stderr
    assert bundle_members(bundle) == corrupted
    assert not envelopes_of(bundle)


# --- trust ---------------------------------------------------------------------------------


def test_trusted_key_directory_of_pub_files(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path], x: np.ndarray[Any, Any]
) -> None:
    key, pub = keypair
    bundle = pack_mlp(mlp_files["model"], tmp_path / "b.ogb", x, sign=[key])
    keyring = tmp_path / "keyring"
    _, other = new_key(keyring, "other.key")
    (keyring / "other.key").unlink()  # a keyring holds public keys only
    (keyring / "signer.pub").write_bytes(pub.read_bytes())
    (keyring / "README.txt").write_text("not a key, and not read as one\n")
    code, output = check(run_cli, bundle, keyring)
    assert code == 0, output

    only_other = tmp_path / "only-other"
    only_other.mkdir()
    (only_other / "other.pub").write_bytes(other.read_bytes())
    code, output = check(run_cli, bundle, only_other)
    assert code == 1 and "not among the trusted keys" in output


def _rsa_public_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _ec_public_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("make_pem", [_rsa_public_pem, _ec_public_pem], ids=["rsa", "ec"])
def test_non_ed25519_trusted_key_is_a_usage_error(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path],
    x: np.ndarray[Any, Any], make_pem: Any
) -> None:
    key, _ = keypair
    bundle = pack_mlp(mlp_files["model"], tmp_path / "b.ogb", x, sign=[key])
    foreign = tmp_path / "foreign.pub"
    foreign.write_bytes(make_pem())
    result = run_cli("check", bundle, "--trusted-key", foreign, "--no-rerun")
    assert result.exit_code == 2
    assert "ed25519" in result.stderr and str(foreign) in result.stderr
    assert result.stdout == ""
    # The same key inside a keyring directory is refused too, not silently skipped.
    keyring = tmp_path / "keyring"
    keyring.mkdir()
    (keyring / "foreign.pub").write_bytes(foreign.read_bytes())
    result = run_cli("check", bundle, "--trusted-key", keyring, "--no-rerun")
    assert result.exit_code == 2 and "ed25519" in result.stderr and "foreign.pub" in result.stderr


def test_non_ed25519_signing_key_is_a_usage_error(
    tmp_path: Path, run_cli: RunCli, mlp_files: dict[str, Path], x: np.ndarray[Any, Any]
) -> None:
    bundle = pack_mlp(mlp_files["model"], tmp_path / "b", x)
    ec_key = tmp_path / "ec.key"
    ec_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    result = run_cli("sign", bundle, "--key", ec_key)
    assert result.exit_code == 2
    assert "ed25519" in result.stderr and str(ec_key) in result.stderr
    assert not envelopes_of(bundle)


@pytest.mark.parametrize(
    "content",
    [
        b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\n%%%%\n",
        b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb0 someone@example\n",
        b"",
        None,
    ],
    ids=["bad-der", "truncated", "openssh", "empty", "private-key"],
)
def test_malformed_trusted_key_is_a_usage_error(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path],
    x: np.ndarray[Any, Any], content: bytes | None
) -> None:
    key, _ = keypair
    bundle = pack_mlp(mlp_files["model"], tmp_path / "b.ogb", x, sign=[key])
    bad = tmp_path / "bad.pub"
    bad.write_bytes(key.read_bytes() if content is None else content)  # None: the *private* key
    result = run_cli("check", bundle, "--trusted-key", bad, "--no-rerun")
    assert result.exit_code == 2
    assert str(bad) in result.stderr and "not a PEM public key" in result.stderr


def test_missing_trusted_key_file_is_a_usage_error(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path], x: np.ndarray[Any, Any]
) -> None:
    key, _ = keypair
    bundle = pack_mlp(mlp_files["model"], tmp_path / "b.ogb", x, sign=[key])
    result = run_cli("check", bundle, "--trusted-key", tmp_path / "absent.pub", "--no-rerun")
    assert result.exit_code == 2
    assert "absent.pub" in result.stderr and "does not exist" in result.stderr


def test_valid_signature_by_untrusted_key_fails(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path], x: np.ndarray[Any, Any]
) -> None:
    key, _ = keypair
    _, stranger = new_key(tmp_path / "other", "stranger.key")
    bundle = pack_mlp(mlp_files["model"], tmp_path / "b.ogb", x, sign=[key])
    code, output = check(run_cli, bundle, stranger)
    assert code == 1
    assert output.startswith("FAILED:")
    assert "not among the trusted keys" in output
    # --allow-unsigned accepts it, but only as a warning.
    result = run_cli("check", bundle, "--trusted-key", stranger, "--no-rerun", "--allow-unsigned")
    assert result.exit_code == 0 and "untrusted" in result.stdout


def _signed_directory_bundle(
    tmp_path: Path, key: Path, model: Path, x: np.ndarray[Any, Any], name: str = "b"
) -> tuple[Path, Path, bytes]:
    """A directory bundle signed by ``key``: (bundle, envelope path, envelope payload)."""
    bundle = pack_mlp(model, tmp_path / name, x, sign=[key])
    (envelope_path,) = (bundle / "signatures").iterdir()
    _, payload, _ = decode_envelope(envelope_path.read_bytes())
    return bundle, envelope_path, payload


def test_changed_payload_type_fails(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path], x: np.ndarray[Any, Any]
) -> None:
    key, pub = keypair
    bundle, envelope_path, payload = _signed_directory_bundle(tmp_path, key, mlp_files["model"], x)
    original = envelope_path.read_bytes()

    # 1. payloadType edited in place: the signature no longer covers what the envelope says.
    envelope = json.loads(original)
    envelope["payloadType"] = "application/json"
    envelope_path.write_bytes(json.dumps(envelope).encode())
    code, output = check(run_cli, bundle, pub)
    assert code == 1
    assert "payloadType" in output and envelope_path.name in output

    # 2. A genuine signature by the trusted key, but over a different payloadType: still refused.
    _, forged = make_envelope(key, payload, payload_type="application/json")
    envelope_path.write_bytes(forged)
    code, output = check(run_cli, bundle, pub)
    assert code == 1 and "payloadType" in output

    # 3. The hand-made envelope with the right type is accepted: the refusals above are about the type.
    _, remade = make_envelope(key, payload)
    envelope_path.write_bytes(remade)
    code, output = check(run_cli, bundle, pub)
    assert code == 0, output


def test_envelope_replayed_from_another_bundle_fails(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path], x: np.ndarray[Any, Any]
) -> None:
    key, pub = keypair
    _, donor_envelope, _ = _signed_directory_bundle(tmp_path, key, mlp_files["model"], x, "donor")
    victim, victim_envelope, _ = _signed_directory_bundle(tmp_path, key, mlp_files["model"], x + 1, "victim")
    assert donor_envelope.name == victim_envelope.name
    assert check(run_cli, victim, pub)[0] == 0
    victim_envelope.write_bytes(donor_envelope.read_bytes())
    code, output = check(run_cli, victim, pub)
    assert code == 1
    assert "covers a different manifest" in output
    assert "input 'x' changed (digest)" in output
    report = json.loads(run_cli("check", victim, "--trusted-key", pub, "--no-rerun", "--format", "json").stdout)
    (signature,) = next(f for f in report["findings"] if f["stage"] == "signatures")["children"]
    assert signature["status"] == "fail"
    assert signature["evidence"]["status"] == "mismatch"
    assert signature["evidence"]["changed_since_signing"] == [
        "input 'x' changed (digest)", "claimed output 'y' changed (digest)"
    ]


@pytest.mark.parametrize("subject", ["other-digest", "no-manifest-subject"])
def test_statement_over_a_different_subject_digest_fails(
    tmp_path: Path, run_cli: RunCli, keypair: tuple[Path, Path], mlp_files: dict[str, Path],
    x: np.ndarray[Any, Any], subject: str
) -> None:
    key, pub = keypair
    bundle, envelope_path, payload = _signed_directory_bundle(tmp_path, key, mlp_files["model"], x)
    statement = json.loads(payload)
    real = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    assert statement["subject"][0] == {"name": "manifest.json", "digest": {"sha256": real}}
    if subject == "other-digest":
        statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(b"some other manifest").hexdigest()
    else:
        statement["subject"][0]["name"] = "manifest.json.bak"
    _, envelope = make_envelope(key, json.dumps(statement).encode())
    envelope_path.write_bytes(envelope)
    code, output = check(run_cli, bundle, pub)
    assert code == 1
    assert "covers a different manifest" in output


# --- verify_envelope on malformed envelopes ------------------------------------------------


@pytest.fixture(scope="module")
def signed_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(directory bundle signed by the key, public key), packed once for this module."""
    folder = tmp_path_factory.mktemp("envelopes")
    key, pub, _ = generate_key_pair(folder / "k")
    model = models.save(models.mlp(), folder / "mlp.onnx")
    x = np.random.default_rng(2).standard_normal((4, 16)).astype(np.float32)
    return pack_mlp(model, folder / "b", x, sign=[key]), pub


def _verify(signed_bundle: tuple[Path, Path], raw: bytes) -> list[Any]:
    bundle, pub = signed_bundle
    trusted: dict[str, TrustedKey] = load_trusted_keys([pub])
    manifest_bytes = (bundle / "manifest.json").read_bytes()
    return verify_envelope("signatures/test.dsse.json", raw, manifest_bytes, Manifest.from_bytes(manifest_bytes),
                           trusted)


def _genuine(signed_bundle: tuple[Path, Path]) -> dict[str, Any]:
    (envelope_path,) = (signed_bundle[0] / "signatures").iterdir()
    envelope: dict[str, Any] = json.loads(envelope_path.read_bytes())
    return envelope


def test_verify_envelope_accepts_the_genuine_envelope(signed_bundle: tuple[Path, Path]) -> None:
    (check_,) = _verify(signed_bundle, json.dumps(_genuine(signed_bundle)).encode())
    assert check_.status == "trusted" and check_.ok
    assert check_.keyid == spki_keyid(signed_bundle[1].read_bytes())


def _with(envelope: dict[str, Any], **changes: Any) -> bytes:
    return json.dumps({**envelope, **changes}).encode()


MALFORMED_WHOLE: dict[str, Any] = {
    "not-json": lambda e: b"this is not JSON",
    "not-utf8": lambda e: b"\xff\xfe{}",
    "json-list": lambda e: b"[]",
    "json-string": lambda e: b'"envelope"',
    "duplicate-keys": lambda e: b'{"signatures": [], "signatures": []}',
    "deeply-nested": lambda e: b"[" * 500 + b"]" * 500,
    "no-signatures": lambda e: json.dumps({k: v for k, v in e.items() if k != "signatures"}).encode(),
    "signatures-not-list": lambda e: _with(e, signatures={"keyid": "x", "sig": "y"}),
    "signatures-null": lambda e: _with(e, signatures=None),
    "empty-signatures": lambda e: _with(e, signatures=[]),
    "payload-not-base64": lambda e: _with(e, payload="%%% not base64 %%%"),
    "payload-not-string": lambda e: _with(e, payload=12),
    "no-payload-type": lambda e: json.dumps({k: v for k, v in e.items() if k != "payloadType"}).encode(),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_WHOLE))
def test_verify_envelope_malformed_envelope(signed_bundle: tuple[Path, Path], name: str) -> None:
    raw = MALFORMED_WHOLE[name](_genuine(signed_bundle))
    checks = _verify(signed_bundle, raw)
    assert len(checks) == 1
    assert checks[0].status == "malformed"
    assert not checks[0].ok
    assert "signatures/test.dsse.json" in checks[0].message


@pytest.mark.parametrize(
    "entry",
    [
        {"keyid": "KEYID", "sig": "!!! not base64 !!!"},
        {"keyid": "KEYID", "sig": "QUJDRA"},  # missing padding
        {"keyid": "KEYID", "sig": 42},
        {"keyid": "KEYID"},
        "not an object",
        None,
    ],
    ids=["sig-not-base64", "sig-bad-padding", "sig-number", "sig-missing", "entry-string", "entry-null"],
)
def test_verify_envelope_malformed_signature_entry(signed_bundle: tuple[Path, Path], entry: Any) -> None:
    genuine = _genuine(signed_bundle)
    keyid = genuine["signatures"][0]["keyid"]
    if isinstance(entry, dict) and "keyid" in entry:
        entry = {**entry, "keyid": keyid}
    # The malformed entry sits beside the genuine one; each is judged on its own.
    raw = _with(genuine, signatures=[entry, genuine["signatures"][0]])
    first, second = _verify(signed_bundle, raw)
    assert first.status == "malformed" and "signature 0" in first.message
    assert second.status == "trusted"


def test_verify_envelope_signed_garbage_payload_is_malformed(signed_bundle: tuple[Path, Path]) -> None:
    # A genuine signature by the trusted key over a payload that is not a Statement.
    key = signed_bundle[0].parent / "k"
    for payload in (b"not json at all", b"[1, 2, 3]", json.dumps({"_type": "https://in-toto.io/Statement/v0.1"}).encode()):
        _, raw = make_envelope(key, payload)
        (check_,) = _verify(signed_bundle, raw)
        assert check_.status == "malformed", payload


def test_keygen_refuses_to_write_through_a_symlink(tmp_path: Path, run_cli: RunCli) -> None:
    elsewhere = tmp_path / "elsewhere.key"
    elsewhere.write_text("not a key")
    (tmp_path / "signer.key").symlink_to(elsewhere)
    result = run_cli("keygen", "--out", tmp_path / "signer.key", "--force")
    assert result.exit_code == 2
    assert "symbolic link" in result.stderr
    assert elsewhere.read_text() == "not a key"
    assert not (tmp_path / "signer.key.pub").exists()


def test_empty_trusted_key_directory_is_a_usage_error(
    tmp_path: Path, run_cli: RunCli, signed_bundle: tuple[Path, Path]
) -> None:
    empty = tmp_path / "empty-keyring"
    empty.mkdir()
    bundle, _ = signed_bundle
    result = run_cli("check", bundle, "--trusted-key", empty, "--allow-unsigned")
    assert result.exit_code == 2
    assert "holds no .pub or .pem files" in result.stderr


def test_public_keys_read_without_the_serialization_module_match_it(tmp_path: Path) -> None:
    from ogverify.errors import KeyFileError
    from ogverify.evidence.signing import _plain_ed25519_pem, keyid_of, load_public_key

    for index in range(20):
        key = Ed25519PrivateKey.generate().public_key()
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        for variant in (pem, pem.replace(b"\n", b"\r\n"), pem.rstrip(b"\n"), b"\n" + pem + b"\n\n"):
            plain = _plain_ed25519_pem(variant)
            assert plain is not None and plain.public_bytes_raw() == key.public_bytes_raw()
        assert keyid_of(key) == hashlib.sha256(der).hexdigest()
        path = tmp_path / f"{index}.pub"
        path.write_bytes(pem)
        assert load_public_key(path).keyid == keyid_of(key)
    # Anything else takes the full PEM reader, with its own verdicts.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_pem = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for odd in (other, b"comment line\n" + key_pem, key_pem.replace(b"PUBLIC KEY", b"PRIVATE KEY"), b"",
                key_pem[:40] + b"*" + key_pem[41:]):
        assert _plain_ed25519_pem(odd) is None
    (tmp_path / "rsa.pub").write_bytes(other)
    with pytest.raises(KeyFileError, match="ed25519 keys only"):
        load_public_key(tmp_path / "rsa.pub")
    (tmp_path / "commented.pub").write_bytes(b"comment line\n" + key_pem)
    assert load_public_key(tmp_path / "commented.pub").keyid  # cryptography reads it, as before

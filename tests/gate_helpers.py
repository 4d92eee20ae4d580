"""Helpers for the CI-gate tests: a corpus of bundles with known verdicts, built fast.

Claimed outputs are computed once per model in this process (same configuration as the
bundles record), so building dozens of bundles spawns no process at all.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

import ogverify
from ogverify.evidence.signing import generate_key_pair, sign_bundle
from tests.bundle_helpers import blob_name, flip_last_byte, manifest_of, replace_tensor_blob, tamper, tensor_entry
from tests.fixtures import models

Array = npt.NDArray[Any]


def reference_run(model: Path, x: Array) -> Array:
    """The MLP's output under ogverify's default configuration (ORT_ENABLE_ALL, 1 thread).

    Computed on the machine running the test: a re-execution here under the same configuration
    gives the same bits (ogverify's premise), while another CPU's kernels may not, so claims made
    with this are never compared with bits taken elsewhere.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    (y,) = session.run(["y"], {"x": x})
    result: Array = y
    return result


def mlp_claim_and_keys(root: Path, keys: tuple[str, ...], seed: int) -> tuple[Path, Array, Array]:
    """A key pair ``NAME.key`` (and ``.pub``) in ``root`` for each of ``keys``, the MLP saved there,
    a random input batch from ``seed`` and this machine's output for it: (model, x, y)."""
    for name in keys:
        generate_key_pair(root / f"{name}.key")
    model = models.save(models.mlp(), root / "mlp.onnx")
    x = np.random.default_rng(seed).standard_normal((4, 16)).astype(np.float32)
    return model, x, reference_run(model, x)


def tamper_input(bundle: Path) -> None:
    """Flip one byte of the input blob, as an attacker editing the files would."""
    manifest = manifest_of(bundle)
    entry = tensor_entry(manifest, "inputs", "x")

    def change(members: dict[str, bytes]) -> None:
        members[blob_name(entry)] = flip_last_byte(members[blob_name(entry)])

    tamper(bundle, change)


@dataclass
class Corpus:
    """A folder of bundles and the verdict each must get (keyed by the path ``check`` reports)."""

    folder: Path
    expected: dict[str, str] = field(default_factory=dict)
    models: list[Path] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(v == verdict for v in self.expected.values())


def derive(base: Path, out: Path, x: Array, y: Array, key: Path | None) -> None:
    """A new bundle from ``base`` with other input and claimed output, signed by ``key`` (None: unsigned).

    Packing records an optimised-graph fingerprint in a subprocess (a fraction of a second per
    bundle); deriving re-uses that so a corpus of dozens of bundles builds in a second or two.
    """
    if base.is_dir():
        shutil.copytree(base, out)
    else:
        shutil.copyfile(base, out)

    def change(members: dict[str, bytes]) -> None:
        manifest = json.loads(members["manifest.json"])
        replace_tensor_blob(members, manifest, "inputs", "x", x)
        replace_tensor_blob(members, manifest, "outputs", "y", y)
        for name in [n for n in members if n.startswith("signatures/")]:
            del members[name]

    tamper(out, change)
    if key is not None:
        sign_bundle(out, key)


def build_corpus(root: Path, key: Path, *, passing: int = 14, failing: int = 6, tampered: int = 6,
                 unsigned: int = 6, models_count: int = 2) -> Corpus:
    """Bundles of ``models_count`` MLPs: passing (signed, true outputs), failing (signed, outputs off
    by 1e-3), tampered (signed, then an input byte flipped) and unsigned (true outputs, no signature).
    Even-numbered bundles are ``.ogb`` files, odd ones directories."""
    folder = root / "bundles"
    folder.mkdir()
    corpus = Corpus(folder)
    model_dir = root / "models"
    model_dir.mkdir()
    rng = np.random.default_rng(7)
    bases: dict[tuple[int, bool], Path] = {}
    for seed in range(models_count):
        model = models.save(models.mlp(seed=seed), model_dir / f"mlp{seed}.onnx")
        corpus.models.append(model)
        x = rng.standard_normal((4, 16)).astype(np.float32)
        for as_file in (True, False):
            base = model_dir / (f"base{seed}.ogb" if as_file else f"base{seed}")
            ogverify.pack(model, base, inputs={"x": x}, claimed_outputs={"y": reference_run(model, x)})
            bases[seed, as_file] = base
    kinds = [("pass", passing), ("fail", failing), ("tampered", tampered), ("unsigned", unsigned)]
    serial = 0
    for kind, count in kinds:
        for index in range(count):
            seed = serial % len(corpus.models)
            x = rng.standard_normal((4, 16)).astype(np.float32)
            y = reference_run(corpus.models[seed], x)
            if kind == "fail":
                y = y + np.float32(1e-3)
            as_file = serial % 2 == 0
            out = folder / (f"{kind}-{index:02d}" + (".ogb" if as_file else ""))
            derive(bases[seed, as_file], out, x, y, None if kind == "unsigned" else key)
            if kind == "tampered":
                tamper_input(out)
            corpus.expected[str(out)] = "verified" if kind == "pass" else "failed"
            serial += 1
    return corpus

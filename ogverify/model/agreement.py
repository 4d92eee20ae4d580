"""Whether a bundle's pieces agree with each other before anything is re-executed.

A tensor must be what the manifest says it is (dtype and shape); the model must hold every
external-data file it names and accept the packed inputs. When they contradict each other the
evidence does not hold (a FAIL), which is different from not being able to check it (an error).

Used by ``verify`` (the model, before the re-execution process gets its job) and by the
re-execution process (each tensor, once loaded); numpy is imported only where a tensor is checked.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ogverify.errors import EvidenceMismatchError, OgverifyError

if TYPE_CHECKING:
    from ogverify.model.tensors import Array
    from ogverify.model.values import Value


def check_tensor(array: Array, dtype: str, shape: Sequence[int], what: str) -> None:
    """Raise EvidenceMismatchError unless ``array`` is the ``dtype[shape]`` the manifest declares."""
    from ogverify.model.tensors import describe

    declared = f"{dtype}[{','.join(map(str, shape))}]"
    if describe(array) != declared:
        raise EvidenceMismatchError(f"{what} holds {describe(array)}, manifest says {declared}")


def load_packed(raw: bytes, declared: tuple[str, Sequence[int]] | str, what: str) -> Value:
    """A packed input or claimed output, parsed from its blob and checked against the manifest's
    declaration: a tensor's dtype name and shape, or a sequence's, map's or optional's type.

    Raises:
        EvidenceMismatchError: the blob holds something else than the manifest declares.
        BundleError: the blob is not a canonical tensor or value.
    """
    if isinstance(declared, str):
        from ogverify.model.values import decode

        stored_type, value = decode(raw, what)
        if str(stored_type) != declared:
            raise EvidenceMismatchError(f"{what} holds a {stored_type}, manifest says {declared}")
        return value
    from ogverify.model.tensors import parse_npy

    array = parse_npy(raw, what)
    check_tensor(array, declared[0], declared[1], what)
    return array


def check_model(
    model: Path, model_name: str, packed_files: Collection[str],
    inputs: Mapping[str, tuple[str, Sequence[int]] | str],
) -> None:
    """Raise EvidenceMismatchError unless the model's external data is packed and it accepts ``inputs``
    (name -> dtype name and shape, or a non-tensor's type, as the manifest declares them).

    Raises:
        ModelError: the model cannot be parsed (that is an error, not a mismatch).
    """
    from ogverify.model.signature import read_signature

    signature = read_signature(model, model_name)
    for location in signature.external_data:
        if location not in packed_files:
            raise EvidenceMismatchError(f"model names external data {location!r}, which the bundle does not hold")
    try:
        signature.check_input_types(inputs)
    except OgverifyError as exc:
        raise EvidenceMismatchError(f"the model does not accept the packed inputs: {exc.message}") from exc

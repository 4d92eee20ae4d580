"""``EvidenceLog``: record a service's inferences into an evidence log, cheaply, as they happen.

::

    import ogverify

    log = ogverify.EvidenceLog.create("evidence-log/", "model.onnx")   # or "s3://bucket/log"
    index = log.append({"x": x}, {"y": y})            # one record: inputs and claimed outputs
    log.append({"x": x}, trace=True)                  # run the model now, and keep the run's trace
    log.append_batch({"x": xs}, {"y": ys})            # many: the first axis indexes records
    note = log.checkpoint(["producer.key"])           # a C2SP signed-note checkpoint
    log.export(index, "record.ogb")                   # one record as a bundle, signed through the log

The model and the execution configuration are stored once. Each append writes one pack (every
distinct tensor, value and trace once), the tiles that changed and the new size; nothing is
rewritten but the partial tiles. A log has one writer at a time.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ogverify import __version__
from ogverify.errors import UsageError
from ogverify.evidence.comparison import ComparisonPolicy
from ogverify.evidence.digest import digest_file
from ogverify.evidence.execution import ExecutionConfig
from ogverify.evidence.json_fields import JsonFields
from ogverify.evidence.log import layout, merkle, note
from ogverify.evidence.log.attached import LogProof
from ogverify.evidence.log.layout import Descriptor, LogReader, RecordEntry, TensorRef, TileWriter, TraceRef, ValueRef
from ogverify.evidence.log.store import LogStore, open_store
from ogverify.evidence.manifest import Artifact, Manifest, ModelFile
from ogverify.evidence.paths import StrPath
from ogverify.evidence.trace import Trace

if TYPE_CHECKING:
    from ogverify.model.signature import ModelSignature, TensorSpec
    from ogverify.model.tensors import Array
    from ogverify.runtime.trace import TraceTaker

# A pack is closed and the next one begun past this many bytes.
PACK_BYTES = 256 << 20
WRITE_BYTES = 8 << 20
# Tensors remembered for deduplication: the most recent this many (a service's memory stays bounded).
DEDUP_ENTRIES = 1 << 16
MAX_LEAF_BYTES = layout.MAX_ENTRY


@dataclass(frozen=True)
class InclusionProof(JsonFields):
    """RFC 9162 inclusion proof of one record in the tree of ``tree_size`` records."""

    index: int
    tree_size: int
    leaf_hash: bytes
    root_hash: bytes
    inclusion_path: tuple[bytes, ...]


@dataclass(frozen=True)
class ConsistencyProof(JsonFields):
    """RFC 9162 consistency proof: the tree of ``second_size`` extends the one of ``first_size``."""

    first_size: int
    second_size: int
    first_root: bytes
    second_root: bytes
    consistency_path: tuple[bytes, ...]


def default_origin(template_sha256: str) -> str:
    """An origin line naming the log by its model and configuration."""
    return f"ogverify.log/{template_sha256[:32]}"


class _NpyHeaders:
    """The .npy (format 1.0) header of each (dtype, shape), made once."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, tuple[int, ...]], bytes] = {}

    def __call__(self, array: Array) -> bytes:
        key = (array.dtype.str, tuple(array.shape))
        header = self._known.get(key)
        if header is None:
            import io

            import numpy as np

            buffer = io.BytesIO()
            np.lib.format.write_array_header_1_0(buffer, np.lib.format.header_data_from_array_1_0(array))
            header = self._known[key] = buffer.getvalue()
        return header


class EvidenceLog:
    """An evidence log opened for appending (``create`` a new one or ``open`` one)."""

    def __init__(self, store: LogStore, descriptor: Descriptor, model: Path | None = None) -> None:
        self.store = store
        self.descriptor = descriptor
        self.log_digest = descriptor.digest
        self._model = model
        self._materialized: tempfile.TemporaryDirectory[str] | None = None
        self._writer: TileWriter | None = None
        self._headers = _NpyHeaders()
        self._stored: dict[str, tuple[int, int]] = {}  # blake3 -> (pack, offset), recent tensors
        template = dict(descriptor.template)
        try:
            self.config = ExecutionConfig.from_json(template["execution"])
            self.comparison = ComparisonPolicy.from_json(template["comparison"])
            self.model_files = (ModelFile.from_json(template["model"]),
                                *(ModelFile.from_json(f) for f in template["model_files"]))
        except Exception as exc:  # KeyError, TypeError, an OgverifyError of a nested value
            raise layout.LogFormatError(f"{layout.DESCRIPTOR}: the shared manifest is invalid: {exc}") from exc
        self._signature: ModelSignature | None = None
        self._tracer: TraceTaker | None = None
        self._trace_dir: tempfile.TemporaryDirectory[str] | None = None

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        location: StrPath,
        model: StrPath,
        *,
        config: ExecutionConfig | None = None,
        comparison: ComparisonPolicy | str | None = None,
        origin: str | None = None,
        annotations: Mapping[str, str] | None = None,
        overwrite: bool = False,
    ) -> EvidenceLog:
        """A new, empty log at ``location`` (a folder or an fsspec URL) for ``model`` under ``config``."""
        from ogverify.evidence.comparison import ComparisonSpec
        from ogverify.model.initializers import initializer_digests
        from ogverify.model.signature import read_signature
        from ogverify.packing.pack import ONNX_MEDIA_TYPE, _model_files, runtime_version

        model_path = Path(model)
        if not model_path.is_file():
            raise UsageError(f"model {model_path} does not exist")
        store = open_store(location, create=True)
        if store.exists(layout.DESCRIPTOR) and not overwrite:
            raise UsageError(f"{store.location} already holds a log (use --force to start it again)")
        signature = read_signature(model_path)
        config = config or ExecutionConfig(runtime_version=runtime_version())
        policy = ComparisonPolicy(ComparisonSpec.parse(comparison)) if isinstance(comparison, str) else comparison
        files = [(model_path.name, model_path, ONNX_MEDIA_TYPE),
                 *((name, path, "application/octet-stream") for name, path in _model_files(model_path, signature))]
        entries = []
        for name, path, media_type in files:
            digest = digest_file(path).hex
            size = path.stat().st_size
            if not store.exists(layout.blob_path(digest)):
                with path.open("rb") as source, store.open_write(layout.blob_path(digest)) as out:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
            entries.append(ModelFile(name, Artifact(digest, size, "identity", size), media_type))
        manifest = Manifest(
            model=entries[0], model_files=tuple(entries[1:]), inputs=(), outputs=(), execution=config,
            environment=_environment(model_path, config), comparison=policy or ComparisonPolicy(),
            producer={"tool": "ogverify", "version": __version__}, annotations=dict(annotations or {}),
            initializers=initializer_digests(model_path),
        )
        template = layout.template_of(manifest.to_json())
        origin = origin or default_origin(layout.template_digest(template))
        if not origin.isprintable() or "\n" in origin or not origin.strip():
            raise UsageError(f"origin {origin!r} must be one printable line")
        descriptor = Descriptor(origin, template)
        store.write(layout.DESCRIPTOR, descriptor.to_bytes())
        store.write(layout.SIZE, b"0\n")
        if store.exists(layout.CHECKPOINT):
            store.remove(layout.CHECKPOINT)
        log = cls(store, descriptor, model_path)
        log._signature = signature
        return log

    @classmethod
    def open(cls, location: StrPath) -> EvidenceLog:
        """The existing log at ``location``."""
        store = open_store(location)
        if not store.exists(layout.DESCRIPTOR):
            raise UsageError(f"{store.location} is not an evidence log (no {layout.DESCRIPTOR})")
        return cls(store, LogReader(store).descriptor())

    @property
    def origin(self) -> str:
        return self.descriptor.origin

    @property
    def size(self) -> int:
        """How many records the log holds."""
        return self._tiles().size if self._writer is not None else LogReader(self.store).size

    def reader(self) -> LogReader:
        return LogReader(self.store)

    def _tiles(self) -> TileWriter:
        if self._writer is None:
            self._writer = TileWriter(self.store, LogReader(self.store).size)
        return self._writer

    # --- the model -------------------------------------------------------------------------

    def model_path(self) -> Path:
        """A local copy of the model (the file given at ``create``, or one written from the log, verified)."""
        if self._model is None:
            from ogverify.evidence.log.records import write_model

            self._materialized = tempfile.TemporaryDirectory(prefix="ogverify-log-model-")
            self._model = write_model(self.reader(), self.model_files, Path(self._materialized.name))
        return self._model

    def signature(self) -> ModelSignature:
        if self._signature is None:
            from ogverify.model.signature import read_signature

            self._signature = read_signature(self.model_path())
        return self._signature

    def run(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """The outputs the model gives for ``inputs`` under the log's configuration (a session kept loaded)."""
        from ogverify.runtime.runner import SessionCache

        cache = getattr(self, "_cache", None)
        if cache is None:
            cache = self._cache = SessionCache(max_sessions=1)
        names = self.signature().output_names
        key = ";".join(f"{f.name}={f.artifact.blake3}" for f in self.model_files)
        return dict(cache.run_model(self.model_path(), dict(inputs), names, self.config, model_key=key).outputs)

    # --- appending -------------------------------------------------------------------------

    def append(self, inputs: Mapping[str, Any], claimed_outputs: Mapping[str, Any] | None = None, *,
               trace: bool | Trace = False) -> int:
        """Append one record; ``claimed_outputs`` None runs the model now. Returns its index.

        Inputs and outputs are tensors (arrays) or, where the model declares them, sequences, maps
        and optionals (``ogverify.model.values``, or the lists, dicts and None onnxruntime uses).
        ``trace``: True takes the record's trace of node outputs now (``pack --trace``; one more
        run at ``ORT_DISABLE_ALL``), or give one already taken (``runtime.trace.record_trace``).
        """
        return self.append_many([(inputs, claimed_outputs, trace if isinstance(trace, Trace) else None)],
                                trace=trace is True)[0]

    def append_batch(self, inputs: Mapping[str, Any], claimed_outputs: Mapping[str, Any] | None = None, *,
                     trace: bool = False) -> range:
        """Append one record per row: the first axis of every array indexes the records. ``trace``:
        take each record's trace (one more run per record)."""
        import numpy as np

        from ogverify.model.tensors import canonicalize

        arrays = {n: canonicalize(np.asarray(a), f"input {n!r}") for n, a in inputs.items()}
        claims = None if claimed_outputs is None else {
            n: canonicalize(np.asarray(a), f"claimed output {n!r}") for n, a in claimed_outputs.items()}
        counts = {len(a) if a.ndim else -1 for a in (*arrays.values(), *(claims or {}).values())}
        if len(counts) != 1 or -1 in counts:
            raise UsageError("every array of a batch must have the same first dimension (one row per record)")
        count = counts.pop()
        tensor_outputs = all(spec.value_type is None for spec in self.signature().outputs)
        if claims is None and count and tensor_outputs and not trace:  # run each row, then append the columns
            signature = self.signature()
            signature.check_inputs({n: a[0] for n, a in arrays.items()})
            outputs = [self.run({n: a[i] for n, a in arrays.items()}) for i in range(count)]
            claims = {n: np.stack([o[n] for o in outputs]) for n in outputs[0]}
        columns = {**arrays, **(claims or {})}
        if count and not trace and claims is not None and len(columns) == len(arrays) + len(claims) and all(
                a.dtype.kind != "U" and a[0].nbytes > 0 for a in columns.values()):
            return self._append_columns(arrays, claims, count)
        rows = (({n: a[i] for n, a in arrays.items()},
                 None if claims is None else {n: a[i] for n, a in claims.items()}) for i in range(count))
        return self.append_many(rows, canonical=True, trace=trace)

    def _append_columns(self, inputs: Mapping[str, Array], outputs: Mapping[str, Array], count: int) -> range:
        """``append_batch`` for fixed-size tensors: records are laid out in the pack with numpy, a chunk
        at a time, so that Python does per record no more than hash its tensors and write its leaf."""
        import blake3
        import numpy as np

        from ogverify.model.tensors import dtype_name
        from ogverify.packing.pack import _check_claimed

        signature = self.signature()
        signature.check_inputs({n: a[0] for n, a in inputs.items()})
        _check_claimed({n: a[0] for n, a in outputs.items()}, signature)
        order = [(0, n, inputs[n]) for n in signature.input_names if n in inputs]
        order += [(1, n, outputs[n]) for n in signature.output_names if n in outputs]
        parts = []  # (side, name, dtype name, shape, start in a record's block, npy size, header, data columns)
        width = 0
        for side, name, array in order:
            header = self._headers(array[0])
            flat = array.reshape(count, -1).view(np.uint8)
            parts.append((side, name, dtype_name(array.dtype), tuple(array.shape[1:]), width,
                          len(header) + flat.shape[1], header, flat))
            width += len(header) + flat.shape[1]
        # Each tensor's part of a leaf, as RecordEntry.leaf writes it (the audit parses every leaf it
        # samples and refuses one that RecordEntry would not write byte for byte).
        templates = []
        for _, name, dtype, shape, at, size, _, _ in parts:
            sample = TensorRef(name, dtype, shape, blake3="0" * 64, size=size, pack=0, offset=0)
            text = RecordEntry(index=0, log="0" * 64, inputs=(sample,), outputs=()).leaf().decode("utf-8")
            body = text[text.index('{"blake3":') : text.index("]", text.index('"shape":')) + 1]
            head = body[: len('{"blake3":"')]
            middle = body[len('{"blake3":"') + 64 : body.index('"offset":') + len('"offset":')]
            after = body[body.index(',"shape":') :] + f',"size":{size}}}'
            templates.append((at, size, head, middle, after))  # inputs first, as in ``order``
        inputs_count = sum(1 for side, *_ in parts if side == 0)
        stored, log_digest = self._stored, self.log_digest
        tiles = self._tiles()
        first = tiles.size
        chunk = max(1, min(count, WRITE_BYTES // width))
        # Two chunk buffers, reused: while this thread hashes one chunk, the writer thread writes the
        # chunk before it and then lays out the next one (numpy's copy and file writes release the GIL).
        # A fresh buffer per chunk costs its page faults each time.
        starts = range(0, count, chunk)
        buffers = [np.empty((chunk, width), np.uint8) for _ in range(min(2, len(starts)))]
        for buffer in buffers:  # the headers never change: laid once
            for _, _, _, _, at, _, header, _ in parts:
                buffer[:, at : at + len(header)] = np.frombuffer(header, np.uint8)
        columns = [(at + len(header), at + size, flat) for _, _, _, _, at, size, header, flat in parts]

        def lay_out(number: int) -> None:
            start = starts[number]
            block = buffers[number % len(buffers)][: min(count, start + chunk) - start]
            for begin, end, flat in columns:
                block[:, begin:end] = flat[start : start + len(block)]

        pending: list[Future[Any] | None] = [None] * len(buffers)
        written: list[Future[Any]] = []  # the files of the chunks' full tiles, written on the writer thread
        out: Any = None
        pack, offset = first, 0
        with ThreadPoolExecutor(1, thread_name_prefix="ogverify-log-write") as writer:
            try:
                laid = writer.submit(lay_out, 0)
                for number, start in enumerate(starts):
                    stop = min(count, start + chunk)
                    slot = number % len(buffers)
                    laid.result()
                    if pending[slot] is not None:  # written before ``laid`` ran: only its error is wanted
                        pending[slot].result()  # type: ignore[union-attr]
                    if number + 1 < len(starts):  # into the other buffer, once its chunk is written (in order)
                        laid = writer.submit(lay_out, number + 1)
                    block = buffers[slot][: stop - start]
                    data = memoryview(block.reshape(-1))  # type: ignore[arg-type]
                    if out is None or offset >= PACK_BYTES:
                        if out is not None:
                            writer.submit(out.close)
                        pack, offset = first + start, 0
                        out = self.store.open_write(layout.pack_path(pack))
                    digests = iter([blake3.blake3(data[row * width + at : row * width + at + size]).hexdigest()
                                    for row in range(stop - start) for at, size, _, _, _ in templates])
                    pieces: list[tuple[int, int]] = []  # (begin, end) of bytes in ``data`` to store
                    leaves: list[bytes] = []
                    for row in range(stop - start):
                        texts: list[str] = []
                        base = row * width
                        for at, size, head, middle, after in templates:
                            digest = next(digests)
                            where = stored.get(digest)
                            if where is None:
                                where = stored[digest] = (pack, offset)
                                offset += size
                                begin = base + at
                                if pieces and pieces[-1][1] == begin:
                                    pieces[-1] = (pieces[-1][0], begin + size)
                                else:
                                    pieces.append((begin, begin + size))
                            texts.append(f'{head}{digest}{middle}{where[1]},"pack":{where[0]}{after}')
                        leaf = (f'{{"index":{first + start + row},"inputs":[{",".join(texts[:inputs_count])}],'
                                f'"log":"{log_digest}","outputs":[{",".join(texts[inputs_count:])}]}}').encode()
                        if len(leaf) > MAX_LEAF_BYTES:
                            raise UsageError(f"record {first + start + row}: its entry is {len(leaf)} bytes, over the "
                                             f"{MAX_LEAF_BYTES}-byte limit of a log entry")
                        leaves.append(leaf)
                    pending[slot] = writer.submit(_write_pieces, out, data, pieces)
                    # The tiles' hashes here, their files on the writer thread: a thread that ran Python
                    # would hold the GIL that blake3 gives up and takes back for every tensor it hashes.
                    tiles.add(leaves, lambda path, blob: written.append(writer.submit(self.store.write, path, blob)))
                for future in (*pending, *written):
                    if future is not None:
                        future.result()
                if out is not None:
                    writer.submit(out.close).result()
                    out = None
            except BaseException:
                for future in (*pending, *written):  # let the writes end before the file is given up
                    if future is not None:
                        future.exception()
                if out is not None:
                    writer.submit(out.__exit__, RuntimeError, None, None).exception()
                self._stored = {k: v for k, v in self._stored.items() if v[0] < first}
                self._writer = None  # its leaves were not committed: read the tiles afresh
                raise
        tiles.commit()
        self._forget()
        return range(first, first + count)

    def _forget(self) -> None:
        """Keep only the most recently stored tensors for deduplication."""
        excess = len(self._stored) - DEDUP_ENTRIES
        if excess > 0:
            for digest in list(itertools.islice(self._stored, excess)):
                del self._stored[digest]

    def append_many(self, records: Any, *, canonical: bool = False, trace: bool = False) -> range:
        """Append records in order: (inputs, claimed outputs or None) pairs, or triples whose third
        item is the record's ``Trace`` (or None). Returns their indices.

        ``canonical``: every value is already a canonical array (little-endian, C order): rows of
        ``append_batch``'s arrays, which are not converted again. ``trace``: take the trace of each
        record that comes without one.
        """
        import blake3
        import numpy as np

        from ogverify.evidence import canonical_json
        from ogverify.model.tensors import dtype_name
        from ogverify.model.values import encode, is_tensor, type_of
        from ogverify.packing.pack import _check_claimed

        signature = self.signature()
        specs = {spec.name: spec for spec in (*signature.inputs, *signature.outputs)}
        tiles = self._tiles()
        first = tiles.size
        pack = first
        out = None
        offset = 0
        leaves: list[bytes] = []
        pending = bytearray()
        checked: set[tuple[tuple[str, str], ...]] = set()  # validated input/output types
        names: dict[Any, str] = {}  # dtype -> its manifest name

        def store(parts: Sequence[Any], index: int) -> layout.Stored:
            """Keep ``parts`` (their bytes in order) in the pack unless kept recently; where they are."""
            nonlocal out, pack, offset
            hasher = blake3.blake3()
            for part in parts:
                hasher.update(part)
            digest = hasher.hexdigest()
            length = sum(len(part) for part in parts)
            where = self._stored.get(digest)
            if where is None:
                if out is None or offset >= PACK_BYTES:
                    if out is not None:
                        out.write(pending)
                        pending.clear()
                        out.close()
                    pack, offset = index, 0
                    out = self.store.open_write(layout.pack_path(pack))
                for part in parts:
                    pending.extend(part)
                if len(pending) >= WRITE_BYTES:  # few large writes: small ones cost more than the copy
                    out.write(pending)
                    pending.clear()
                where = self._stored[digest] = (pack, offset)
                offset += length
            return layout.Stored(blake3=digest, size=length, pack=where[0], offset=where[1])

        def ref(name: str, value: Any, index: int) -> layout.Ref:
            if is_tensor(value):
                body = memoryview(np.ascontiguousarray(value)).cast("B")  # type: ignore[arg-type]
                stored = store((self._headers(value), body), index)
                dtype = names.get(value.dtype)
                if dtype is None:
                    dtype = names[value.dtype] = dtype_name(value.dtype)
                return TensorRef(name, dtype, tuple(value.shape), **stored)
            spec = specs.get(name)
            # The declared type where the value cannot show it (an empty sequence's element type).
            value_type = (spec.value_type if spec is not None else None) or type_of(value)
            return ValueRef(name, str(value_type), **store((encode(value, value_type),), index))

        def refs(values: Mapping[str, Any], order: Sequence[str], index: int) -> tuple[layout.Ref, ...]:
            return tuple(ref(name, values[name], index) for name in order if name in values)

        try:
            for record in records:
                inputs, claimed, given = (*record, None) if len(record) == 2 else record
                arrays = inputs if canonical else _values(inputs, signature.inputs, "input")
                kinds = _kinds(arrays)
                if kinds not in checked:
                    signature.check_inputs(arrays)
                    checked.add(kinds)
                outputs = self.run(arrays) if claimed is None else claimed if canonical else _values(
                    claimed, signature.outputs, "claimed output")
                kinds = _kinds(outputs)
                if kinds not in checked:
                    if not outputs:
                        raise UsageError("a record needs its claimed outputs (or run the model)")
                    _check_claimed(outputs, signature)
                    checked.add(kinds)
                if given is None and trace:
                    given = self._trace(arrays, outputs, computed=claimed is None)
                index = first + len(leaves)
                input_refs = refs(arrays, signature.input_names, index)  # stored in this order: inputs,
                output_refs = refs(outputs, signature.output_names, index)  # outputs, then the trace
                trace_ref = None
                if given is not None:
                    data = canonical_json.dumps(given.to_json())
                    if len(data) > layout.MAX_TRACE_BLOB:
                        raise UsageError(f"record {index}: its trace is {len(data)} bytes, over the "
                                         f"{layout.MAX_TRACE_BLOB}-byte limit of a record's trace")
                    trace_ref = TraceRef(**store((data,), index))
                leaf = RecordEntry(index=index, log=self.log_digest, inputs=input_refs, outputs=output_refs,
                                   trace=trace_ref).leaf()
                if len(leaf) > MAX_LEAF_BYTES:
                    raise UsageError(f"record {index}: its entry is {len(leaf)} bytes, over the "
                                     f"{MAX_LEAF_BYTES}-byte limit of a log entry (too many tensors or long names)")
                leaves.append(leaf)
            if out is not None:
                out.write(pending)
                out.close()
                out = None
        except BaseException:
            if out is not None:
                out.__exit__(RuntimeError, None, None)
            self._stored = {k: v for k, v in self._stored.items() if v[0] < first}
            raise
        try:
            tiles.append(leaves)
        except BaseException:
            self._writer = None  # not committed: read the tiles afresh
            raise
        self._forget()
        return range(first, first + len(leaves))

    def _trace(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any], *, computed: bool) -> Trace:
        """The record's trace, taken in this process; whether the recorded configuration reproduces
        claimed outputs is asked of the log's loaded session (outputs it computed reproduce)."""
        from ogverify.packing.pack import require_tensors
        from ogverify.runtime.trace import TraceTaker

        tensors = require_tensors(inputs, "--trace")
        claimed = require_tensors(outputs, "--trace")
        if self._tracer is None:
            self._trace_dir = tempfile.TemporaryDirectory(prefix="ogverify-log-trace-")
            self._tracer = TraceTaker(self.model_path(), self.config, Path(self._trace_dir.name))
        reproduced = computed
        if not computed:
            again = self.run(tensors)
            reproduced = all(name in again and getattr(again[name], "dtype", None) == value.dtype
                             and again[name].shape == value.shape and again[name].tobytes() == value.tobytes()
                             for name, value in claimed.items())
        return self._tracer.take(tensors, claim_reproduced=reproduced)

    # --- checkpoints and proofs ------------------------------------------------------------

    def checkpoint(self, sign_keys: Sequence[StrPath], key_name: str | None = None) -> bytes:
        """Sign the current tree size and root; the note is kept as the log's ``checkpoint`` and returned."""
        from ogverify.evidence.signing import load_private_key

        if not sign_keys:
            raise UsageError("a checkpoint needs a signing key")
        keys = [load_private_key(Path(k)) for k in sign_keys]
        name = note.check_key_name(key_name or self.origin) if key_name or " " not in self.origin else None
        if name is None:
            raise UsageError(f"origin {self.origin!r} holds a space; give a key name")
        reader = self.reader()
        size = reader.size
        body = note.Checkpoint(self.origin, size, merkle.tree_root(reader, size)).body()
        signed = note.sign_note(body, [(name, key) for key in keys])
        self.store.write(layout.CHECKPOINT, signed)
        return signed

    def latest_checkpoint(self) -> tuple[bytes, note.Checkpoint] | None:
        """The log's latest checkpoint (note bytes and parsed), or None before the first."""
        if not self.store.exists(layout.CHECKPOINT):
            return None
        raw = self.store.read(layout.CHECKPOINT, note.MAX_NOTE_BYTES)
        return raw, note.Checkpoint.parse(note.parse_note(raw).text)

    def _size_arg(self, size: int | None, reader: LogReader, what: str) -> int:
        if size is None:
            return reader.size
        if not 0 <= size <= reader.size:
            raise UsageError(f"{what} {size} is not a size of this log (it holds {reader.size} records)")
        return size

    def prove(self, index: int, size: int | None = None) -> InclusionProof:
        """The inclusion proof of record ``index`` in the tree of ``size`` records (default: all)."""
        reader = self.reader()
        size = self._size_arg(size, reader, "--size")
        if not 0 <= index < size:
            raise UsageError(f"--index {index} is not a record of a tree of {size} records")
        path = merkle.inclusion_path(reader, index, size)
        return InclusionProof(index, size, reader.leaf_hash(index), merkle.tree_root(reader, size), tuple(path))

    def consistency(self, first: int, second: int | None = None) -> ConsistencyProof:
        """The consistency proof from the tree of ``first`` records to that of ``second`` (default: all)."""
        reader = self.reader()
        second = self._size_arg(second, reader, "--to")
        if not 0 <= first <= second:
            raise UsageError(f"--from {first} must be between 0 and {second}")
        path = merkle.consistency_path(reader, first, second)
        return ConsistencyProof(first, second, merkle.tree_root(reader, first), merkle.tree_root(reader, second),
                                tuple(path))

    def export(self, index: int, out: StrPath, *, overwrite: bool = False) -> Path:
        """Record ``index`` as an ordinary bundle at ``out``, with its inclusion proof in the tree the
        latest checkpoint signs and that checkpoint (``log-proof.json``)."""
        from ogverify.evidence.log.records import write_record_bundle

        latest = self.latest_checkpoint()
        if latest is None:
            raise UsageError("the log has no checkpoint yet: run 'ogverify log checkpoint' first")
        raw_note, checkpoint = latest
        reader = self.reader()
        if checkpoint.size > reader.size:
            raise layout.LogFormatError(
                f"the log's checkpoint signs {checkpoint.size} records; it holds {reader.size}")
        if not 0 <= index < checkpoint.size:
            raise UsageError(f"--index {index} is not covered by the latest checkpoint ({checkpoint.size} records); "
                             "run 'ogverify log checkpoint' first")
        entry = reader.record(index)
        proof = LogProof(entry, checkpoint.size, tuple(merkle.inclusion_path(reader, index, checkpoint.size)), raw_note)
        return write_record_bundle(reader, self.descriptor, self.model_files, entry, Path(out), proof=proof,
                                   overwrite=overwrite)

    def close(self) -> None:
        self._tracer = None
        if self._trace_dir is not None:
            self._trace_dir.cleanup()
            self._trace_dir = None
        if self._materialized is not None:
            self._materialized.cleanup()
            self._materialized = None

    def __enter__(self) -> EvidenceLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _write_pieces(out: Any, data: memoryview, pieces: Sequence[tuple[int, int]]) -> None:
    for begin, end in pieces:
        out.write(data[begin:end])


def _values(given: Mapping[str, Any], specs: Sequence[TensorSpec], what: str) -> dict[str, Any]:
    """Canonical values: arrays, and sequences, maps and optionals where the model declares them
    (given as ``ogverify.model.values`` objects, or as the lists, dicts and None onnxruntime uses)."""
    import numpy as np

    from ogverify.model.tensors import canonicalize
    from ogverify.model.values import MapValue, OptionalValue, SequenceValue, canonical, from_python

    declared = {spec.name: spec for spec in specs}
    values: dict[str, Any] = {}
    for name, obj in given.items():
        spec = declared.get(name)
        label = f"{what} {name!r}"
        if isinstance(obj, SequenceValue | MapValue | OptionalValue):
            values[name] = canonical(obj)
        elif spec is not None and spec.value_type is not None and not spec.value_type.is_tensor:
            values[name] = from_python(obj, spec.value_type, label)
        else:
            values[name] = canonicalize(np.asarray(obj), label)
    return values


def _kinds(values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """What type checks depend on: each name with its dtype and shape, or its value type."""
    from ogverify.model.values import is_tensor, type_of

    return tuple(sorted((n, f"{v.dtype.str}{v.shape}" if is_tensor(v) else str(type_of(v))) for n, v in values.items()))


def _environment(model: Path, config: ExecutionConfig) -> dict[str, object]:
    """This machine's fingerprint, and the optimised graph when onnxruntime can make it without inputs."""
    from ogverify.packing.pack import record_environment
    from ogverify.runtime import fingerprint

    try:
        return record_environment(model, {}, config)
    except Exception:  # the optimised graph needs inputs for this model: the fingerprint alone
        return fingerprint.capture()


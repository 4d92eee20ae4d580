"""Benchmark models, generated on the fly: weights are streamed to external-data files in chunks,
so a multi-GiB model never exists whole in Python memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHUNK_ELEMENTS = 1 << 22  # 16 MiB of float32 per write
KINDS = ("normal", "sparse", "zeros")


class WeightSource:
    """Synthetic weights, fast enough for multi-GiB models: one random 16 MiB block per kind,
    rotated by a different amount for every chunk (so no two chunks are equal, and zstd sees
    the same statistics as fresh random data: its window is far smaller than a block)."""

    def __init__(self, kind: str, scale: float, rng: np.random.Generator) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown weight kind {kind!r}")
        self.kind = kind
        block = rng.standard_normal(CHUNK_ELEMENTS, dtype=np.float32) * np.float32(scale)
        if kind == "sparse":  # 90 % zeros, as in a pruned model
            block[rng.random(CHUNK_ELEMENTS) >= 0.1] = 0
        self.block = block.astype("<f4")
        self.counter = 0

    def chunk(self, count: int) -> bytes:
        if self.kind == "zeros":
            return bytes(4 * count)
        self.counter += 1
        return np.roll(self.block, self.counter * 7919)[:count].tobytes()


def _write_weights(handle: object, rows: int, cols: int, source: WeightSource) -> None:
    remaining = rows * cols
    while remaining:
        count = min(CHUNK_ELEMENTS, remaining)
        handle.write(source.chunk(count))  # type: ignore[attr-defined]
        remaining -= count


def matmul_chain(
    folder: Path,
    *,
    name: str,
    dim: int,
    layers: int,
    batch: int | str = 1,
    external: bool = True,
    seed: int = 0,
    kind: str = "normal",
) -> Path:
    """x[batch, dim] → (MatMul W_i → Tanh) x layers → y; weights W_i float32[dim, dim].

    With ``external`` the weights go to ``<name>.data`` beside ``<name>.onnx``, each at the
    offset after the previous one, written in 16 MiB chunks.
    """
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    source = WeightSource(kind, 1.0 / np.sqrt(dim), rng) if external else None
    data_name = f"{name}.data"
    initializers = []
    nodes = []
    previous = "x"
    layer_bytes = dim * dim * 4
    with (folder / data_name).open("wb") if external else open("/dev/null", "wb") as data:
        for index in range(layers):
            weight = f"w{index}"
            if external:
                offset = data.tell()
                assert source is not None
                _write_weights(data, dim, dim, source)
                tensor = TensorProto(name=weight, data_type=TensorProto.FLOAT, dims=[dim, dim])
                tensor.data_location = TensorProto.EXTERNAL
                for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(layer_bytes))):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, value
            else:
                values = (rng.standard_normal(dim * dim, dtype=np.float32) / np.float32(np.sqrt(dim))).reshape(dim, dim)
                tensor = onnx.numpy_helper.from_array(values, weight)
            initializers.append(tensor)
            nodes.append(helper.make_node("MatMul", [previous, weight], [f"m{index}"]))
            out = "y" if index == layers - 1 else f"h{index}"
            nodes.append(helper.make_node("Tanh", [f"m{index}"], [out]))
            previous = out
    return _save(folder / f"{name}.onnx", nodes, initializers, [batch, dim], [batch, dim])


def _save(path: Path, nodes: list[object], initializers: list[object], x_shape: list[int | str],
          y_shape: list[int | str]) -> Path:
    """The graph x → nodes → y as an opset-17 model file at ``path``."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,  # type: ignore[arg-type]
        path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        initializers,  # type: ignore[arg-type]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path.write_bytes(model.SerializeToString())
    return path


def input_for(dim: int, batch: int, path: Path, seed: int = 1) -> Path:
    """A float32[batch, dim] input saved as .npy."""
    return image_input((batch, dim), path, seed)


def conv_net(folder: Path, *, name: str, batch: int, channels: int, size: int, layers: int, seed: int = 0) -> Path:
    """x[batch, channels, size, size] → (3x3 Conv, pad 1 → Relu) x layers → GlobalAveragePool → y.

    Compute-bound at the defaults a user runs (all cores): each layer is
    2 * 9 * channels^2 * size^2 * batch flops on weights of 36 * channels^2 bytes, inline.
    """
    import onnx
    from onnx import helper

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scale = np.float32(1.0 / np.sqrt(9 * channels))
    initializers, nodes, previous = [], [], "x"
    for index in range(layers):
        weight = rng.standard_normal((channels, channels, 3, 3), dtype=np.float32) * scale
        initializers.append(onnx.numpy_helper.from_array(weight, f"w{index}"))
        nodes.append(helper.make_node("Conv", [previous, f"w{index}"], [f"c{index}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{index}"], [f"r{index}"]))
        previous = f"r{index}"
    nodes.append(helper.make_node("GlobalAveragePool", [previous], ["y"]))
    return _save(folder / f"{name}.onnx", nodes, initializers, [batch, channels, size, size],
                 [batch, channels, 1, 1])


def image_input(shape: tuple[int, ...], path: Path, seed: int = 1) -> Path:
    """A float32 input of ``shape`` saved as .npy."""
    rng = np.random.default_rng(seed)
    np.save(path, rng.standard_normal(shape, dtype=np.float32), allow_pickle=False)
    return path

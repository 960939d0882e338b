# Ref: Wei et al., "T-MAC: CPU Renaissance via Table Lookup for Low-Bit LLM Deployment on Edge",
#      arXiv 2407.00088 §3 (bit-plane decomposition, the symmetric weight code, int8 tables);
#      Mo et al., "LUT Tensor Core", arXiv 2408.06003 §3-4 (table symmetrization, elongated
#      M x N x K tiles, one weight bit-plane per cycle, exponent add for the 2**i weight).
"""The LUT tensor core's arithmetic, bit for bit: table precompute, lookup, bit-plane accumulation.

One *tile* multiplies activations ``A`` (``M x K``, one group of ``K`` per row) by low-bit weight
codes ``W`` (``K x N``) and adds the result to an accumulator tile ``C`` (``M x N``)::

    D[m, n] = C[m, n] + sum_k A[m, k] * v(W[k, n])

**Weights.** A ``b``-bit code ``q`` (``b`` = 1..4) has the value ``v(q) = 2q - (2**b - 1)``: T-MAC's
symmetric code, the odd integers ``-(2**b - 1) .. 2**b - 1`` (``b = 1``: -1, +1). With
``beta_i`` bit ``i`` of ``q`` and ``tau_i = 2 beta_i - 1``, ``v(q) = sum_i 2**i tau_i``. Two
modes add an offset step: ternary (``b = 2``, codes 0, 1, 2 for -1, 0, +1) adds ``+1``, so
``v(q) = 2q - 2``, twice the ternary value (code 3 computes as +4); signed (two's-complement
codes, ``w = q - 2**b`` when the top bit is set) negates the top plane's term and adds ``-1``,
so ``v(q) = 2w``. Any scale, zero point or the factor 2 belongs to the dequantization outside
the core.

**Table.** For each row's group ``a_0 .. a_{K-1}`` the table holds ``T(tau) = sum_k tau_k a_k`` for
every sign vector, indexed by ``idx = sum_k beta_k 2**k``. Float entries (the activation format:
``float16``, ``bfloat16``, any float of at most 16 bits) come from a balanced tree of rounded
additions (RNE in the entry format); every node of the tree, the leaves included, holds only the
half of its sign patterns whose first element is negative (``beta_first = 0``) and gets the other
half by negation (a sign flip, exact). The root does so too with ``symmetric=True`` (2**(K-1)
stored entries, the lookup ``j = idx[0] ? ~idx[K-1:1] : idx[K-1:1]`` negating when ``idx[0] = 1``);
with ``symmetric=False`` it computes all 2**K entries with adders. The two differ only in the signs
of zero and NaN entries (``round(-x - y)`` is +0 where ``-round(x + y)`` is -0). Integer entries
(activations ``int8``) are exact sums ``T``, quantized per table to the entry width: with
``S = sum_k |a_k|``, the shift ``s`` is the least ``s >= 0`` with ``S <= 127 * 2**s`` and each
entry is ``round_half_even(T / 2**s)``, so ``|entry| <= 127`` and negation never overflows; the
entry stands for ``entry * 2**s``.

**Accumulation.** ``P = b`` steps (``b + 1`` for ternary and signed), in this order: plane
``i = 0, 1, ..., b-1`` (least significant first) adds ``2**i * T[idx_i]`` with ``idx_i`` the
plane's bits of the column's ``K`` weights (signed: the top plane adds ``-2**(b-1) *
T[idx_{b-1}]``, the entry's sign flipped); the offset step then adds ``T[2**K - 1]``
(``= sum_k a_k``, ternary) or ``T[0]`` (``= -sum_k a_k``, signed).
Float accumulators: the term (entry with ``i`` added to its exponent, never rounded: it is exact in
the entry format with two more exponent bits) is added to the accumulator and rounded once to the
accumulator format, RNE (``ops.add``). Integer accumulators: ``acc + (entry << (s + i))`` wraps
modulo ``2**acc_bits``.

**Quantized tables for float activations** (``table="int8"``, LUT Tensor Core §3.2 "table
quantization", T-MAC §3): the table of a group of float activations is quantized to signed
integer entries with one power-of-two scale per table, the rule of the integer entries above with
a signed exponent: with ``S = sum_k |a_k|`` (exact), ``e`` is the least integer with
``S <= 127 * 2**e`` (``e = 0`` when ``S = 0``) and each entry is ``round_half_even(T / 2**e)``; the
entry stands for ``entry * 2**e``. Non-finite activations have no quantized table. The core adds
the term ``entry * 2**(e + i)``, exact in :func:`int_term_format`, to its float accumulator with one
rounding (RNE); a zero entry is the term +0.

**External precompute** (:func:`lut_tile_tables`): the paper fuses the table precompute with the
preceding operator, so its core takes the *stored* entries of each table (2**(K-1) with
symmetrization, entry ``j`` the pattern ``idx = 2j``, i.e. ``beta_0 = 0``) and, for integer
entries, the table's scale exponent. The core expands them as the lookup above does: entry
``idx`` with ``idx[0] = 1`` is the stored entry ``~idx[K-1:1]`` negated (a sign flip for floats,
``-x`` for integers, so ``-(-128)`` is 128).
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core, ops
from ._errors import FormatError
from .catalog import get_format
from .descriptors import FloatFormat, Format, IntFormat
from .rounding import Rounding, Saturation, as_saturation

__all__ = ["LUTConfig", "expand", "int_term_format", "lookup_index", "lut_tile", "lut_tile_tables",
           "precompute", "term_format", "weight_values"]

I64 = npt.NDArray[np.int64]

#: Largest group the emulator takes (a table of 2**K entries per row).
MAX_GROUP = 8


def _fmt(value: Format | str, what: str) -> Format:
    try:
        return get_format(value) if isinstance(value, str) else value
    except FormatError as exc:
        raise FormatError(f"{what}: {exc}") from None


def term_format(entry: FloatFormat) -> FloatFormat:
    """Format that holds every shifted float entry ``2**i * T`` (``i <= 3``) exactly: two more
    exponent bits than the entry's, the same mantissa."""
    return FloatFormat(entry.exp_bits + 2, entry.man_bits)


@dataclasses.dataclass(frozen=True)
class LUTConfig:
    """The numeric parameters of a LUT tensor core (the tile shape ``M x N`` is free).

    Parameters
    ----------
    weight_bits : int
        Bits per weight code, 1 to 4 (2 with ``ternary``).
    signed : bool
        Two's-complement weight codes (the top plane negated, offset step ``T[0]``).
    entry : Format or str
        Activation and table entry format: a float format of at most 16 bits (``float16``,
        ``bfloat16``), or a signed integer format of 4 to 8 bits (``int8``: quantized tables).
    acc : Format or str
        Accumulator format: a float of at most 32 bits for float entries, a signed integer of
        at most 62 bits for integer entries.
    group : int
        Activations per table, ``K`` (1 to 8; default 4).
    ternary : bool
        Ternary weights through the offset step (needs ``weight_bits == 2``).
    symmetric : bool
        Table symmetrization: 2**(K-1) stored entries per table instead of 2**K.
    table : Format or str, optional
        Table entry format when it differs from the activations': a signed integer of 4 to 8 bits
        for float activations (quantized tables, a signed scale exponent per table). Integer
        activations' tables are always in their own format.
    saturation : Saturation or str
        Overflow mode of each float accumulation (IEEE P3109's SatFinite, SatPropagate, OvfInf;
        default OvfInf). Integer accumulators wrap and take OvfInf only; the tables (entry
        sums) are built without saturation.
    """

    weight_bits: int
    entry: Format
    acc: Format
    group: int = 4
    ternary: bool = False
    symmetric: bool = True
    signed: bool = False
    table: Format | None = None
    saturation: Saturation = Saturation.OVF_INF

    def __init__(self, weight_bits: int, entry: Format | str, acc: Format | str, *,
                 group: int = 4, ternary: bool = False, symmetric: bool = True,
                 signed: bool = False, table: Format | str | None = None,
                 saturation: Saturation | str = Saturation.OVF_INF) -> None:
        for value, what in ((weight_bits, "weight_bits"), (group, "group")):
            if isinstance(value, bool):
                raise TypeError(f"{what} must be an integer, not {value!r}")
            try:
                operator.index(value)
            except TypeError:
                raise TypeError(f"{what} must be an integer, not {value!r}") from None
        for value, what in ((ternary, "ternary"), (symmetric, "symmetric"), (signed, "signed")):
            if not isinstance(value, bool | np.bool_):
                raise TypeError(f"{what} must be a bool, not {value!r}")
        b, k = operator.index(weight_bits), operator.index(group)
        if not 1 <= b <= 4:
            raise ValueError(f"weight_bits must be between 1 and 4, not {b!r}")
        if not 1 <= k <= MAX_GROUP:
            raise ValueError(f"group must be between 1 and {MAX_GROUP}, not {k!r}")
        if ternary and b != 2:
            raise ValueError(f"ternary weights need weight_bits=2, not {b!r}")
        if ternary and signed:
            raise ValueError("weights are ternary or signed, not both")
        fe, fa = _fmt(entry, "entry"), _fmt(acc, "acc")
        if isinstance(fe, FloatFormat):
            if fe.bits > 16:
                raise ValueError(f"entry must be a float of at most 16 bits or a signed integer "
                                 f"of 4 to 8 bits, not {fe.name!r}")
            if not isinstance(fa, FloatFormat) or fa.bits > 32:
                raise ValueError(f"acc must be a float of at most 32 bits for float entries, "
                                 f"not {fa.name!r}")
        elif isinstance(fe, IntFormat):
            if not fe.signed or not 4 <= fe.bits <= 8:
                raise ValueError(f"entry must be a float of at most 16 bits or a signed integer "
                                 f"of 4 to 8 bits, not {fe.name!r}")
            if not isinstance(fa, IntFormat) or not fa.signed:
                raise ValueError(f"acc must be a signed integer format for integer entries, "
                                 f"not {fa.name!r}")
            if fa.bits < self._int_term_bits(fe, b, k):
                raise ValueError(f"acc must have at least {self._int_term_bits(fe, b, k)} bits "
                                 f"to hold one shifted entry, not {fa.bits}")
        else:
            raise ValueError(f"entry must be a float of at most 16 bits or a signed integer "
                             f"of 4 to 8 bits, not {fe.name!r}")
        ft = None if table is None else _fmt(table, "table")
        if ft is not None:
            if not (isinstance(ft, IntFormat) and ft.signed and 4 <= ft.bits <= 8):
                raise ValueError(f"table must be a signed integer format of 4 to 8 bits, "
                                 f"not {ft.name!r}")
            if isinstance(fe, IntFormat):
                if ft != fe:
                    raise ValueError(f"integer activations keep their tables in their own "
                                     f"format, table must be {fe.name!r}, not {ft.name!r}")
                ft = None
        object.__setattr__(self, "weight_bits", b)
        object.__setattr__(self, "entry", fe)
        object.__setattr__(self, "acc", fa)
        object.__setattr__(self, "group", k)
        object.__setattr__(self, "ternary", bool(ternary))
        object.__setattr__(self, "symmetric", bool(symmetric))
        object.__setattr__(self, "signed", bool(signed))
        object.__setattr__(self, "table", ft)
        sat = as_saturation(saturation)
        if isinstance(fa, IntFormat) and sat is not Saturation.OVF_INF:
            raise ValueError(f"an integer accumulator wraps: saturation must be OvfInf, "
                             f"not {str(sat)!r}")
        object.__setattr__(self, "saturation", sat)

    @staticmethod
    def _int_term_bits(fe: IntFormat, b: int, k: int) -> int:
        q = (1 << (fe.bits - 1)) - 1
        s = max_shift(fe, k)
        return (q << (s + b - 1)).bit_length() + 1

    def __repr__(self) -> str:
        return (f"LUTConfig({self.weight_bits}, {self.entry.name!r}, {self.acc.name!r}, "
                f"group={self.group}, ternary={self.ternary}, symmetric={self.symmetric}"
                + (", signed=True" if self.signed else "")
                + (f", table={self.table.name!r}" if self.table is not None else "")
                + (f", saturation={str(self.saturation)!r})"
                   if self.saturation is not Saturation.OVF_INF else ")"))

    # -- derived facts --------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Accumulation steps per tile: the weight bit-planes, plus the offset step (ternary,
        signed)."""
        return self.weight_bits + int(self.ternary or self.signed)

    @property
    def offset_index(self) -> int | None:
        """Table index the offset step adds: all ones (ternary), zero (signed), or None."""
        if self.ternary:
            return (1 << self.group) - 1
        return 0 if self.signed else None

    @property
    def entries(self) -> int:
        """Stored entries per table: 2**(K-1) with symmetrization, else 2**K."""
        return 1 << (self.group - 1 if self.symmetric else self.group)

    @property
    def is_float(self) -> bool:
        """Whether entries (and the accumulator) are floats."""
        return isinstance(self.entry, FloatFormat)

    @property
    def table_format(self) -> Format:
        """Format of the table entries: ``table``, else the activations'."""
        return self.entry if self.table is None else self.table

    @property
    def int_table(self) -> bool:
        """Whether table entries are integers (integer activations or quantized tables)."""
        return isinstance(self.table_format, IntFormat)

    @property
    def quant_bits(self) -> int:
        """Width of the per-table scale of integer entries: the unsigned shift of integer
        activations' tables, the signed exponent of quantized float tables (0: float entries)."""
        if self.table is not None:
            assert isinstance(self.entry, FloatFormat)
            lo, hi = scale_range(self.entry, self.group)
            return max(5, (max(-lo, hi + 1) - 1).bit_length() + 1)
        if self.is_float:
            return 0
        assert isinstance(self.entry, IntFormat)
        return max(1, max_shift(self.entry, self.group).bit_length())


def max_shift(fe: IntFormat, group: int) -> int:
    """Largest per-table shift of integer entries (``sum |a_k|`` reaches ``K * 2**(bits-1)``)."""
    q = (1 << (fe.bits - 1)) - 1
    top = group << (fe.bits - 1)
    s = 0
    while top > q << s:
        s += 1
    return s


def _least_exp(total: npt.NDArray[np.float64], qmax: int) -> I64:
    """Least integer ``e`` with ``total <= qmax * 2**e`` (0 where ``total`` is 0); exact."""
    safe = np.where(total > 0, total, 1.0)
    m, ex = np.frexp(safe / qmax)  # safe / qmax = m * 2**ex, 0.5 <= m < 1 (rounded quotient)
    e = ex.astype(np.int64)
    # The quotient is rounded: step down while the bound still holds, up while it does not.
    e = np.where(np.ldexp(float(qmax), e - 1) >= safe, e - 1, e)
    e = np.where(np.ldexp(float(qmax), e) < safe, e + 1, e)
    return np.where(total > 0, e, 0)


def scale_range(fe: FloatFormat, group: int) -> tuple[int, int]:
    """Least and greatest scale exponent of a quantized table of ``group`` finite activations of
    ``fe`` (``S`` from the least subnormal to ``group`` times the greatest finite value)."""
    lo = _least_exp(np.array([fe.min_subnormal]), 127)[0]
    hi = _least_exp(np.array([group * fe.max_finite]), 127)[0]
    return int(lo), int(hi)  # both bounds are powers of two times small integers: exact


def int_term_format(config: LUTConfig) -> FloatFormat:
    """Format that holds every term ``entry * 2**(e + i)`` of a quantized float table exactly, for
    any ``e`` of the signed ``quant_bits`` field: an 8-bit significand (``|entry| <= 128``) and
    one more exponent bit than the field."""
    return FloatFormat(config.quant_bits + 1, 7)


def weight_values(config: LUTConfig) -> npt.NDArray[np.int64]:
    """Value of each weight code (index) in the core's units: ``2q - (2**b - 1)``, ``2q - 2``
    (ternary), or twice the two's-complement value (signed)."""
    b = config.weight_bits
    q = np.arange(1 << b, dtype=np.int64)
    if config.signed:
        return 2 * np.where(q >> (b - 1), q - (1 << b), q)
    return 2 * q - ((1 << b) - 1) + int(config.ternary)


# -- table precompute ---------------------------------------------------------------------------

def _neg(codes: npt.NDArray[Any], fmt: FloatFormat) -> npt.NDArray[Any]:
    return codes ^ fmt.code_dtype.type(1 << (fmt.bits - 1))


def _full(stored: npt.NDArray[Any], n: int, fmt: FloatFormat) -> npt.NDArray[Any]:
    """All 2**n sign patterns of a node from its stored half (patterns with bit 0 clear)."""
    idx = np.arange(1 << n)
    mask = (1 << n) - 1
    first = (idx & 1) == 1
    src = np.where(first, (~idx & mask) >> 1, idx >> 1)
    out = stored[..., src]
    return np.where(first, _neg(out, fmt), out)


def _node(a: npt.NDArray[Any], lo: int, hi: int, fmt: FloatFormat) -> npt.NDArray[Any]:
    """Stored half of a tree node over activations ``lo .. hi-1``: the 2**(n-1) patterns whose
    first element is negative, index bit ``j`` = beta of element ``lo + 1 + j``."""
    n = hi - lo
    if n == 1:
        return _neg(a[..., lo:lo + 1], fmt)
    nl = (n + 1) // 2
    left = _node(a, lo, lo + nl, fmt)
    right = _full(_node(a, lo + nl, hi, fmt), n - nl, fmt)
    p = np.arange(1 << (n - 1))
    lpat = p & ((1 << (nl - 1)) - 1)
    rpat = p >> (nl - 1)
    return ops.add(left[..., lpat], right[..., rpat], fmt)


def _float_table(a: npt.NDArray[Any], config: LUTConfig) -> npt.NDArray[Any]:
    fmt = config.entry
    assert isinstance(fmt, FloatFormat)
    k = config.group
    if config.symmetric or k == 1:
        return _full(_node(a, 0, k, fmt), k, fmt)
    nl = (k + 1) // 2
    left = _full(_node(a, 0, nl, fmt), nl, fmt)
    right = _full(_node(a, nl, k, fmt), k - nl, fmt)
    p = np.arange(1 << k)
    return ops.add(left[..., p & ((1 << nl) - 1)], right[..., p >> nl], fmt)


def _signs(k: int) -> I64:
    """``tau[idx, k]``: +1 where bit ``k`` of ``idx`` is set, else -1."""
    idx = np.arange(1 << k)[:, None]
    return np.where((idx >> np.arange(k)[None, :]) & 1, 1, -1).astype(np.int64)


def _rne_shift(x: I64, s: I64) -> I64:
    """``round_half_even(x / 2**s)`` for integers (``s >= 0``)."""
    q = x >> s
    rem = x - (q << s)
    half = np.where(s > 0, np.int64(1) << np.maximum(s - 1, 0), 0)
    up = (s > 0) & ((rem > half) | ((rem == half) & ((q & 1) == 1)))
    return q + up


def _int_table(a: npt.NDArray[Any], config: LUTConfig) -> tuple[I64, I64]:
    fmt = config.entry
    assert isinstance(fmt, IntFormat)
    vals = fmt.to_int(a)
    exact = vals @ _signs(config.group).T  # (..., 2**K)
    total = np.abs(vals).sum(axis=-1)
    qmax = (1 << (fmt.bits - 1)) - 1
    s = np.zeros(total.shape, dtype=np.int64)
    for _ in range(max_shift(fmt, config.group)):
        s = s + (total > (qmax << s))
    return _rne_shift(exact, s[..., None]), s


def _quantized_table(a: npt.NDArray[Any], config: LUTConfig) -> tuple[I64, I64]:
    fe, ft = config.entry, config.table
    assert isinstance(fe, FloatFormat)
    assert isinstance(ft, IntFormat)
    vals = fe.decode(a.astype(fe.code_dtype)).astype(np.float64)
    if not np.all(np.isfinite(vals)):
        raise FormatError("quantized tables need finite activations")
    # Exact integer arithmetic in units of the least subnormal u = 2**e0 (a bfloat16 group can
    # span more than float64's 53 bits): T / 2**e = T_u / 2**(e - e0).
    e0 = int(np.frexp(fe.min_subnormal)[1]) - 1
    units = np.vectorize(lambda v: int(np.ldexp(v, -e0)), otypes=[object])(vals)
    signs = _signs(config.group).astype(object)
    exact = units.dot(signs.T) if units.ndim > 1 else units @ signs.T
    total = np.abs(units).sum(axis=-1)
    qmax = (1 << (ft.bits - 1)) - 1

    def least(t: int) -> int:  # least e - e0 with t <= qmax * 2**(e - e0), may be negative
        if t == 0:
            return -e0
        d = max(t.bit_length() - qmax.bit_length() - 1, -64)
        while qmax * 2**d < t:
            d += 1
        while qmax * 2**(d - 1) >= t:
            d -= 1
        return d

    def rne(x: int, d: int) -> int:  # round_half_even(x / 2**d)
        if d <= 0:
            return x << -d
        q, r = x >> d, x & ((1 << d) - 1)
        half = 1 << (d - 1)
        return q + (1 if r > half or (r == half and q & 1) else 0)

    dd = np.vectorize(least, otypes=[object])(total)
    entries = np.vectorize(rne, otypes=[object])(exact, np.asarray(dd)[..., None])
    return entries.astype(np.int64), (np.asarray(dd).astype(np.int64) + e0)


def precompute(a: npt.ArrayLike, config: LUTConfig) -> tuple[npt.NDArray[Any], I64]:
    """Compute the table of each activation group.

    Parameters
    ----------
    a : array of codes, shape ``(..., K)``
        Activation codes of ``config.entry``.

    Returns
    -------
    table : array, shape ``(..., 2**K)``
        Entry ``idx`` of every table, all 2**K of them (for symmetric tables the negated half as
        the lookup produces it): codes of a float entry format, or the integer entries.
    shift : int64 array, shape ``(...)``
        The per-table shift ``s`` of integer entries (entry ``e`` stands for ``e * 2**s``); zeros
        for float entries.
    """
    arr = np.asarray(a)
    if arr.ndim == 0 or arr.shape[-1] != config.group:
        raise FormatError(f"activations must have a last axis of the group size "
                          f"{config.group}, not shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise FormatError(f"activation codes must be an integer array, not {arr.dtype}")
    if config.table is not None:
        return _quantized_table(arr, config)
    if config.is_float:
        assert isinstance(config.entry, FloatFormat)
        codes = arr.astype(config.entry.code_dtype)
        return _float_table(codes, config), np.zeros(arr.shape[:-1], dtype=np.int64)
    return _int_table(arr, config)


def expand(stored: npt.ArrayLike, config: LUTConfig) -> npt.NDArray[Any]:
    """All 2**K entries of tables given by their stored entries ``(..., config.entries)`` (codes
    of a float table format, or integers), as the core's lookup reads them."""
    st = np.asarray(stored)
    if st.ndim == 0 or st.shape[-1] != config.entries:
        raise FormatError(f"tables must have a last axis of {config.entries} stored entries, "
                          f"not shape {st.shape}")
    if not config.symmetric:
        return st
    k = config.group
    ft = config.table_format
    if isinstance(ft, FloatFormat):
        return _full(st.astype(ft.code_dtype), k, ft)
    idx = np.arange(1 << k)
    odd = (idx & 1) == 1
    src = np.where(odd, (~idx & ((1 << k) - 1)) >> 1, idx >> 1)
    vals = st.astype(np.int64)[..., src]
    return np.where(odd, -vals, vals)


def lookup_index(w: npt.ArrayLike, plane: int, group: int) -> I64:
    """Table index of each column for one bit-plane: ``sum_k bit_plane(w[..., k, n]) << k``.

    ``w`` has shape ``(..., K, N)``; the result ``(..., N)``.
    """
    codes = np.asarray(w).astype(np.int64)
    bits = (codes >> plane) & 1
    return (bits << np.arange(group)[:, None]).sum(axis=-2)


# -- the tile -----------------------------------------------------------------------------------

def _shifted_terms(entries: npt.NDArray[Any], fmt: FloatFormat, shift: int
                   ) -> npt.NDArray[Any]:
    """Entries times ``2**shift`` as exact codes of :func:`term_format`."""
    wide = term_format(fmt)
    cls, neg, sig, exp = _core.unpack_float(fmt, entries)
    return _core.round_float(wide, neg, sig, exp + shift, Rounding.RNE, cls=cls)


def _check_w(wv: npt.NDArray[Any], config: LUTConfig) -> None:
    k = config.group
    if wv.ndim < 2 or wv.shape[-2] != k:
        raise FormatError(f"w must have shape (..., {k}, N), not {wv.shape}")
    if wv.size and (int(wv.min()) < 0 or int(wv.max()) >> config.weight_bits):
        raise FormatError(f"weight codes must lie in [0, 2**{config.weight_bits}), not "
                          f"{int(wv.min()) if int(wv.min()) < 0 else int(wv.max())}")


def lut_tile(a: npt.ArrayLike, w: npt.ArrayLike, c: npt.ArrayLike, config: LUTConfig
             ) -> npt.NDArray[Any]:
    """Compute tiles ``D = C + A @ v(W)`` as the LUT tensor core does, bit for bit.

    Parameters
    ----------
    a : codes, shape ``(..., M, K)``
        Activations (``config.entry``).
    w : codes, shape ``(..., K, N)``
        Weight codes, ``weight_bits`` wide.
    c : codes, shape ``(..., M, N)``
        Accumulator input (``config.acc``).

    Returns
    -------
    codes of ``config.acc``, shape ``(..., M, N)``
    """
    k = config.group
    av = np.asarray(a)
    if av.ndim < 2 or av.shape[-1] != k:
        raise FormatError(f"a must have shape (..., M, {k}), not {av.shape}")
    _check_w(np.asarray(w), config)
    table, shift = precompute(av, config)  # (..., M, 2**K), (..., M)
    return _accumulate(table, shift, w, c, config)


def lut_tile_tables(tables: npt.ArrayLike, scale: npt.ArrayLike | None, w: npt.ArrayLike,
                    c: npt.ArrayLike, config: LUTConfig) -> npt.NDArray[Any]:
    """Compute tiles ``D = C + T @ v(W)`` from precomputed tables, as the core with an external
    precompute does (the paper's: the precompute is fused with the preceding operator).

    Parameters
    ----------
    tables : shape ``(..., M, config.entries)``
        Stored entries of each row's table: codes of a float table format, or the integers of an
        integer one (for ``symmetric`` tables the patterns with ``beta_0 = 0``, see
        :func:`expand`).
    scale : int array, shape ``(..., M)``, or None
        Integer tables: the scale of each table (the shift ``s >= 0`` of integer activations, the
        signed exponent ``e`` of quantized float tables); None for float tables.
    w, c : as :func:`lut_tile`.
    """
    tv = np.asarray(tables)
    _check_w(np.asarray(w), config)
    full = expand(tv, config)
    if config.int_table:
        if scale is None:
            raise FormatError("integer tables need their scales")
        sv = np.broadcast_to(np.asarray(scale).astype(np.int64), tv.shape[:-1])
    else:
        sv = np.zeros(tv.shape[:-1], dtype=np.int64)
    return _accumulate(full, sv, w, c, config)


def _accumulate(table: npt.NDArray[Any], shift: I64, w: npt.ArrayLike, c: npt.ArrayLike,
                config: LUTConfig) -> npt.NDArray[Any]:
    """Bit-plane accumulation of full tables ``(..., M, 2**K)`` with scales ``(..., M)``."""
    k = config.group
    wv = np.asarray(w)
    cv = np.asarray(c)
    shape = np.broadcast_shapes(table.shape[:-2] + (table.shape[-2], 1),
                                cv.shape[:-1] + (1,), wv.shape[:-2] + (1, wv.shape[-1]))
    out_shape = shape[:-2] + (table.shape[-2], wv.shape[-1])
    acc = np.broadcast_to(cv, out_shape).copy()
    # (index, shift, negate) of every step, in order.
    steps: list[tuple[npt.NDArray[Any], int, bool]] = []
    b = config.weight_bits
    for i in range(b):
        idx = lookup_index(wv, i, k)[..., None, :]  # (..., 1, N)
        steps.append((np.broadcast_to(idx, out_shape), i, config.signed and i == b - 1))
    if config.offset_index is not None:
        steps.append((np.full(out_shape, config.offset_index, dtype=np.int64), 0, False))
    tab = np.broadcast_to(table[..., :, None, :], out_shape + (table.shape[-1],))
    sh = np.broadcast_to(shift[..., :, None], out_shape)
    if config.is_float and not config.int_table:
        fe, fa = config.entry, config.acc
        assert isinstance(fe, FloatFormat)
        assert isinstance(fa, FloatFormat)
        wide = term_format(fe)
        acc = acc.astype(fa.code_dtype)
        for idx, i, negate in steps:
            entries = np.take_along_axis(tab, idx[..., None], axis=-1)[..., 0]
            if negate:
                entries = _neg(entries, fe)
            acc = ops.add(_shifted_terms(entries, fe, i), acc, wide, fa, fa,
                          saturate=config.saturation)
        return acc
    if config.is_float:
        fa = config.acc
        assert isinstance(fa, FloatFormat)
        tf = int_term_format(config)
        acc = acc.astype(fa.code_dtype)
        for idx, i, negate in steps:
            entries = np.take_along_axis(tab, idx[..., None], axis=-1)[..., 0].astype(np.int64)
            if negate:
                entries = -entries
            # Exact: |entry| <= 128 and the exponent lies inside the term format's range.
            term = tf.encode(np.ldexp(entries.astype(np.float64), sh + i))
            acc = ops.add(term, acc, tf, fa, fa)
        return acc
    fa = config.acc
    assert isinstance(fa, IntFormat)
    total = fa.to_int(acc)
    modulus = 1 << fa.bits
    for idx, i, negate in steps:
        entries = np.take_along_axis(tab, idx[..., None], axis=-1)[..., 0]
        if negate:
            entries = -entries
        total = total + (entries << (sh + i))
        total = ((total + (modulus >> 1)) % modulus) - (modulus >> 1)
    return fa.from_int(total)

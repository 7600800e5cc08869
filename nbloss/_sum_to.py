"""The host's sum of a gradient back to an operand's shape (the gradient of an operand
broadcast along some axes: a ``(rows, 1)`` target, a ``(cols,)`` weight), as numba
kernels that add in NumPy's order, so that the result has the bits of
``full.sum(axis=..., keepdims=True)``, the sum the host used before (NaN stays NaN; which
NaN, when several meet, may differ).

NumPy's order, for a C-contiguous ``full``: its axes, in C order and without those of
length 1, merge into groups of consecutive summed or kept axes. Each result element
starts at +0.0 and, for each position of the outer groups in C order, adds the innermost
group's run of elements: its pairwise sum (:func:`pairwise`) when that group is summed,
else each element to its own result element. The kernels vectorise what NumPy runs
scalar (pairwise's eight partial sums are one vector): 1.5-4x faster than NumPy's sum
(docs/kernels.md, "Summing a gradient to an operand's shape").
"""

import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import cgutils, types
from numba.extending import intrinsic

from . import _cpu, _jit, _tbb

# NumPy's pairwise sum: runs of up to this many elements are summed with eight partial sums
PAIRWISE_BLOCK = 128
# outer groups the kernels loop over (up to a 4-D loss's: summed, kept, summed, then the
# innermost group); more, and NumPy sums
OUTER_GROUPS = 3

_zero = _cpu._zero_like


@intrinsic
def _eight_sums(typingctx, s, m):
    # (r0, ..., r7): r[k] = s[k] + s[8 + k] + s[16 + k] + ... over s[:m] (m a multiple of
    # 8, at least 8), added in that order, lane by lane, as one 8-wide vector: NumPy's
    # eight partial sums, which numba's loops leave scalar (LLVM unrolls a loop of 8 and
    # then does not vectorise it)
    if not (isinstance(s, types.Array) and s.ndim == 1 and s.layout == "C"
            and isinstance(s.dtype, types.Float)):
        return None
    item = s.dtype

    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        vector = ir.VectorType(context.get_data_type(item), 8)
        align = context.get_abi_sizeof(context.get_data_type(item))

        def load(index):
            address = builder.gep(array.data, [index])
            return builder.load(builder.bitcast(address, vector.as_pointer()), align=align)

        acc = cgutils.alloca_once(builder, vector)
        builder.store(load(context.get_constant(types.intp, 0)), acc)
        eight = context.get_constant(types.intp, 8)
        with cgutils.for_range_slice(builder, eight, args[1], eight) as (index, _):
            builder.store(builder.fadd(builder.load(acc), load(index)), acc)
        total = builder.load(acc)
        lanes = [builder.extract_element(total, ir.Constant(ir.IntType(32), k)) for k in range(8)]
        return context.make_tuple(builder, sig.return_type, lanes)

    return types.UniTuple(item, 8)(s, types.intp), codegen


@_jit.njit(**_jit.OPTIONS)
def _pairwise_block(s, n):
    """NumPy's sum of ``s[:n]``, ``n <= PAIRWISE_BLOCK``: eight partial sums of every
    eighth element, added as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then
    the last ``n % 8`` one by one; below 8 elements, one by one from 0."""
    if n < 8:
        total = _zero(s)
        for i in range(n):
            total += s[i]
        return total
    m = n - n % 8
    r0, r1, r2, r3, r4, r5, r6, r7 = _eight_sums(s, m)
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(m, n):
        total += s[i]
    return total


@_jit.njit(**_jit.OPTIONS)
def pairwise(s, n):
    """NumPy's pairwise sum of ``s[:n]``: longer than ``PAIRWISE_BLOCK``, the sum of the
    first ``n2`` elements plus that of the rest, ``n2`` half of ``n`` rounded down to a
    multiple of 8."""
    if n <= PAIRWISE_BLOCK:
        return _pairwise_block(s, n)
    n2 = n // 2
    n2 -= n2 % 8
    # the blocks summed here, not in a call each: a call per block cost more than its sum
    left = _pairwise_block(s, n2) if n2 <= PAIRWISE_BLOCK else pairwise(s, n2)
    rest = s[n2:]
    right = _pairwise_block(rest, n - n2) if n - n2 <= PAIRWISE_BLOCK else pairwise(rest, n - n2)
    return left + right


def _sum_runs(full, lengths, out_strides, inner, out):
    """``out`` (zeroed) += ``full`` summed over its summed groups, in NumPy's order, when
    the innermost group is summed: each run's pairwise sum added to its result element.
    ``lengths``, ``out_strides``: the three outer groups' lengths (1 for those the array
    does not have) and their strides in ``out`` (elements; 0 for a summed group);
    ``inner``: the innermost group's length. The runs are taken in C order, those of
    one index of the outermost group by one thread: that loop is threaded only where the
    group is kept (each thread then writes its own result elements; the host calls the
    serial twin otherwise)."""
    for i in prange(lengths[0]):
        run = i * lengths[1] * lengths[2]
        for j in range(lengths[1]):
            for k in range(lengths[2]):
                src = full[run * inner:(run + 1) * inner]
                out[i * out_strides[0] + j * out_strides[1] + k * out_strides[2]] += (
                    _pairwise_block(src, inner) if inner <= PAIRWISE_BLOCK else pairwise(src, inner))
                run += 1


def _add_runs(full, lengths, out_strides, inner, out):
    """:func:`_sum_runs` when the innermost group is kept: each run added element by
    element to its run of result elements."""
    for i in prange(lengths[0]):
        run = i * lengths[1] * lengths[2]
        for j in range(lengths[1]):
            for k in range(lengths[2]):
                src = full[run * inner:(run + 1) * inner]
                offset = i * out_strides[0] + j * out_strides[1] + k * out_strides[2]
                dst = out[offset:offset + inner]
                for m in range(inner):
                    dst[m] += src[m]
                run += 1


def _twins(fn):
    """(serial, threaded) dispatchers of kernel ``fn``."""
    serial = _jit.njit(**_jit.OPTIONS)(_jit.serial_twin(fn))
    return serial, _tbb.fork_safe(_jit.njit(parallel=True, **_jit.OPTIONS)(fn), serial)


# by whether the innermost group is summed, then whether threaded
_KERNELS = {True: _twins(_sum_runs), False: _twins(_add_runs)}


def groups(shape, summed):
    """[length, summed] of the merged groups of ``shape``'s axes (``summed``: a flag per
    axis), in C order, axes of length 1 left out."""
    merged = []
    for length, flag in zip(shape, summed):
        if length == 1:
            continue
        if merged and merged[-1][1] == flag:
            merged[-1][0] *= length
        else:
            merged.append([length, flag])
    return merged


def _plan(full_shape, shape):
    """How :func:`_sum_runs` or :func:`_add_runs` sum a C-contiguous array of ``full_shape`` to ``shape``:
    (the three outer groups' lengths, their strides in the result, the innermost group's
    length, whether it is summed, whether the outermost group is kept); None when no
    axis of length above 1 is summed (NumPy's sum, which also gives ``full`` itself for
    equal shapes, as a criterion's copy rule expects) or for more than ``OUTER_GROUPS``
    outer groups."""
    padded = (1,) * (len(full_shape) - len(shape)) + shape
    merged = groups(full_shape, [p == 1 and d != 1 for p, d in zip(padded, full_shape)])
    if not any(flag for _, flag in merged):  # nothing to add: NumPy's sum (-0.0 to +0.0)
        return None
    inner, inner_summed = merged.pop()
    if len(merged) > OUTER_GROUPS:
        return None
    merged += [[1, True]] * (OUTER_GROUPS - len(merged))  # length 1: loops of one turn
    out_strides, step = [], 1 if inner_summed else inner
    for length, flag in reversed(merged):
        out_strides.append(0 if flag else step)
        step *= 1 if flag else length
    return (np.array([length for length, _ in merged], np.int64),
            np.array(out_strides[::-1], np.int64), inner, inner_summed,
            not merged[0][1] and merged[0][0] > 1)


_PLANS: dict[tuple, "tuple | None"] = {}  # (full's shape, shape) -> _plan's result


def sum_to_shape(full, shape, anywhere=False):
    """``full`` (a gradient of the loss's shape) summed back to ``shape``, which
    broadcasts to it, with the bits of NumPy's ``full.sum(axis=..., keepdims=True)``
    None where only axes of length 1 differ (NumPy's result there) or where these
    kernels do not apply (not a C-contiguous float32 or float64 array, no element, more
    than ``OUTER_GROUPS`` outer groups) or do not pay (serial, with summed runs longer
    than ``PAIRWISE_BLOCK``, or shorter than 8 over a summed outermost group; with
    ``anywhere``, they run there too): the caller sums with NumPy."""
    if not (full.flags.c_contiguous and full.dtype in _DTYPES) or full.size == 0:
        return None
    key = (full.shape, shape)
    plan = _PLANS.get(key, False)
    if plan is False:
        plan = _plan(*key)
        if len(_PLANS) < 1024:
            _PLANS[key] = plan
    if plan is None:
        return None
    lengths, out_strides, inner, inner_summed, outermost_kept = plan
    threaded = outermost_kept and full.nbytes >= _cpu.PARALLEL_MIN_BYTES
    if (inner_summed and not (threaded or anywhere)
            and (inner > PAIRWISE_BLOCK or (inner < 8 and not outermost_kept))):
        # long runs (a number target's sum) and short ones over a summed outer axis:
        # NumPy's sum is as fast or faster there (measured: docs/kernels.md)
        return None
    out = np.zeros(shape, full.dtype)
    _KERNELS[inner_summed][threaded](full.reshape(-1), lengths, out_strides, inner,
                                     out.reshape(-1))
    return out


_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

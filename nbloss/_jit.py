"""How nbloss's CPU functions are compiled, and the numba tools its kernels use.

The options every kernel is compiled with are :data:`OPTIONS` (:data:`NOALIAS_OPTIONS`
for the block sums). The kernels' compile-time tools are generic, each one line at its
use in ``_cpu``: :func:`type_constant` (a constant computed from the arguments' dtypes),
:func:`as_promoted` (a scalar in the arrays' dtype), :func:`part`, :func:`value_at` and
:func:`size_of` (which read a 0-d array as one value broadcast over every element),
:func:`block_of` (a 2-D to 4-D broadcast view, block by block), :func:`scratch_array`
and :func:`stack_array` (arrays on the stack) and :func:`serial_twin` (a serial and a
threaded dispatcher of one function). Most are intrinsics, their code emitted into the
function that calls them: an ``@overload``'s implementation is compiled on its own through
numba's whole pipeline, 20-50 ms per signature on a first call, which a dozen of them made
a third of a first call's compile time. How the kernels are built and tuned:
``docs/kernels.md``.

Every numba function of ``_cpu`` (and of ``_math``, compiled by ``_cpu``) is made by
:func:`njit`: ``numba.njit`` with the given options, and with ``cache=True`` the disk
cache of ``_cache``, which a faulty or unwritable cache cannot break. ``@overload``
implementations (:func:`overload_options`) are compiled in memory: they are compiled as
part of a kernel that is itself cached, and a warm process never compiles them.
"""

import types as pytypes

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload
from numba.np.arrayobj import load_item
from numba.np.numpy_support import as_dtype, from_dtype

from . import _cache


class NoAliasCompiler(CompilerBase):
    """numba's nopython pipeline, with LLVM told that no array argument overlaps another
    (``noalias`` on each data pointer): without it a runtime alias check guards each
    vectorised loop that writes (the fused block sum ran 8-17% slower, ``docs/kernels.md``).
    nbloss's kernels can promise it: ``out=`` may not share memory with an input
    (``_validate``), and every other output is freshly allocated."""

    def define_pipelines(self):
        self.state.flags.noalias = True
        return [DefaultPassBuilder.define_nopython_pipeline(self.state)]


# No fastmath flags: nnan/ninf would fold away NaN and inf handling, and reassoc would let
# LLVM reorder a reduction's additions differently in each copy of a function (the order
# is written in the source instead: ``_cpu._block_loss_sum``).
OPTIONS = dict(cache=True, error_model="numpy", fastmath=False)
NOALIAS_OPTIONS = dict(OPTIONS, pipeline_class=NoAliasCompiler)

def njit(**options):
    """``numba.njit(**options)``; with ``cache=True``, cached on disk by ``_cache``, or
    compiled in memory when numba finds no writable cache location."""
    cache = options.pop("cache", False)

    def decorate(fn):
        dispatcher = numba.njit(**options)(fn)
        if cache:
            _cache.install(dispatcher)
        return dispatcher

    return decorate


def overload_options(options):
    """``jit_options`` for ``numba.extending.overload``: ``options`` without the disk
    cache (see the module's docstring)."""
    return {key: value for key, value in options.items() if key != "cache"}


# -- tools for jitted code ----------------------------------------------------------------

def _dtype_of(t):
    """The NumPy dtype of a numba type: an array's dtype, a scalar's own, None for None."""
    if isinstance(t, types.NoneType):
        return None
    return as_dtype(t.dtype if isinstance(t, types.Array) else t)


def _typed_constant(value):
    """(numba type, value) of a Python int, a NumPy scalar or a tuple of either."""
    if isinstance(value, tuple):
        items = [_typed_constant(v) for v in value]
        return types.Tuple([t for t, _ in items]), tuple(v for _, v in items)
    if isinstance(value, (int, np.integer)):
        return types.intp, int(value)
    return from_dtype(np.asarray(value).dtype), value


def type_constant(value_of):
    """An intrinsic for jitted code, ``f(*args)``, whose result is the compile-time
    constant ``value_of(*dtypes)`` (an int, a NumPy scalar or a tuple of them),
    ``dtypes`` being the NumPy dtypes of the arguments' types (an array's dtype, a float
    scalar's dtype, None for None): one value per signature, which LLVM folds into the
    code that uses it."""

    @intrinsic
    def constant(typingctx, *args):
        if len(args) == 1 and isinstance(args[0], types.StarArgTuple):
            args = args[0].types
        result_type, value = _typed_constant(value_of(*(_dtype_of(t) for t in args)))

        def codegen(context, builder, sig, args):
            return context.get_constant_generic(builder, result_type, value)

        # the signature of a function of *args: one tuple of them
        return result_type(types.StarArgTuple.from_types(args)), codegen

    return constant


@intrinsic
def as_promoted(typingctx, x, a, b):
    """``x``, a float, in the dtype NumPy promotes the arrays ``a`` and ``b`` to (a
    conversion, exact for a float that has that dtype's value). Lets a kernel take its
    scalars as Python floats, which numba's dispatcher types several times faster than
    NumPy scalars, and still compute in the arrays' dtype."""
    to = from_dtype(np.promote_types(_dtype_of(a), _dtype_of(b)))

    def codegen(context, builder, sig, args):
        return context.cast(builder, args[0], sig.args[0], to)

    return to(x, a, b), codegen


def _is_one_value(t):
    # numba passes a 0-d array into a prange loop's body as a scalar: both are one value
    return isinstance(t, types.Number) or (isinstance(t, types.Array) and t.ndim == 0)


def _as_it_is(context, builder, sig, args):
    # the argument itself (a borrowed array gets its reference, as numba's functions do)
    return impl_ret_borrowed(context, builder, sig.return_type, args[0])


def _slice_of(context, builder, array_type, value, lo, hi):
    # value[lo:hi] of a 1-D C array, 0 <= lo <= hi <= size (the callers' loops guarantee
    # it): a view from element lo, without numba's clamping of the bounds
    array = context.make_array(array_type)(context, builder, value)
    view = context.make_array(array_type)(context, builder)
    context.populate_array(view, data=builder.gep(array.data, [lo]),
                           shape=[builder.sub(hi, lo)], strides=[array.itemsize],
                           itemsize=array.itemsize, meminfo=array.meminfo,
                           parent=array.parent)
    return impl_ret_borrowed(context, builder, array_type, view._getvalue())


def _is_flat(t):
    return isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C"


def _part_codegen(x):
    # part's code for an operand of type x (the arguments x, lo, hi first), or None
    if isinstance(x, types.NoneType) or _is_one_value(x):
        return _as_it_is
    if not _is_flat(x):
        return None

    def codegen(context, builder, sig, args):
        lo, hi = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:3], sig.args[1:3]))
        return _slice_of(context, builder, sig.args[0], args[0], lo, hi)

    return codegen


@intrinsic
def part(typingctx, x, lo, hi):
    """``x[lo:hi]`` for a 1-D C-contiguous array, 0 <= lo <= hi <= its size (not
    checked); ``x`` itself when it is None or a 0-d array (an operand broadcast from one
    value: the same value for every element). Chosen by type: ``x[lo:hi] if x is not
    None else None`` is typed Optional(array), which a loop over blocks would check at
    run time."""
    codegen = _part_codegen(x)
    return None if codegen is None else (x(x, lo, hi), codegen)


@intrinsic
def value_at(typingctx, x, i):
    """``x[i]`` for a 1-D C-contiguous array, 0 <= i < its size (not checked); a 0-d
    array's (or a number's) one value for every ``i``."""
    if isinstance(x, types.Number):
        return x(x, i), lambda context, builder, sig, args: args[0]
    if not (_is_flat(x) or (isinstance(x, types.Array) and x.ndim == 0)):
        return None

    def codegen(context, builder, sig, args):
        array_type = sig.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        pointer = array.data
        if array_type.ndim:
            pointer = builder.gep(pointer, [context.cast(builder, args[1], sig.args[1], types.intp)])
        return load_item(context, builder, array_type, pointer)

    return x.dtype(x, i), codegen


@intrinsic
def size_of(typingctx, x):
    """The element count of an array (1 for a 0-d one, or a number), 0 for None."""

    def codegen(context, builder, sig, args):
        if isinstance(sig.args[0], types.NoneType):
            return context.get_constant(types.intp, 0)
        if not isinstance(sig.args[0], types.Array):
            return context.get_constant(types.intp, 1)
        array = context.make_array(sig.args[0])(context, builder, args[0])
        return array.nitems

    return types.intp(x), codegen


@intrinsic
def block_of(typingctx, x, lo, hi, scratch):
    """Elements ``[lo, hi)`` of an operand as a block's loop reads them: :func:`part`
    for None, 0-d and 1-D arrays; a 2-D to 4-D array (a view of the loss's elements in C
    order, stride 0 along broadcast axes) is copied into ``scratch``
    (:func:`scratch_array`) by ``_copy_rows``."""
    if _is_laid_out(x):
        def copy(context, builder, sig, args):
            return context.compile_internal(builder, _copy_rows, sig, args)

        return scratch(x, lo, hi, scratch), copy
    codegen = _part_codegen(x)
    return None if codegen is None else (x(x, lo, hi, scratch), codegen)


def _is_laid_out(t):
    # an operand that block_of copies: a 2-D to 4-D view (_host.kernel_operand)
    return isinstance(t, types.Array) and t.ndim in (2, 3, 4)


@intrinsic
def _row_run(typingctx, x, h, i, j, c, m):
    # elements [c, c + m) of the row at (h, i, j) (its indices along the axes before the
    # last: all three in a 4-D array, (i, j) in a 3-D one, j in a 2-D one) as a C view,
    # the row's elements contiguous (the caller checks): LLVM vectorises a copy from it,
    # not from numba's strided slice (1.5x slower)
    arrty = types.Array(x.dtype, 1, "C", readonly=not x.mutable)

    def codegen(context, builder, sig, args):
        array_type = sig.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        index = list(args[5 - array_type.ndim:5])
        first = cgutils.get_item_pointer(context, builder, array_type, array, index)
        view = context.make_array(arrty)(context, builder)
        context.populate_array(view, data=first, shape=[args[5]], strides=[array.itemsize],
                               itemsize=array.itemsize, meminfo=None)
        return view._getvalue()

    return arrty(x, types.intp, types.intp, types.intp, types.intp, types.intp), codegen


def _row_counts(x):
    """(rows along the axis before the last, along the one before that) of a 2-D to 4-D
    array; 1 for an axis it does not have."""
    return x.shape[-2], (x.shape[-3] if x.ndim > 2 else 1)


@overload(_row_counts, jit_options=overload_options(OPTIONS))
def _row_counts_of_type(x):
    if x.ndim == 2:
        return lambda x: (x.shape[0], 1)
    return lambda x: (x.shape[-2], x.shape[-3])


def _copy_rows(x, lo, hi, scratch):
    # row by row (a row: the last axis), each run a loop that LLVM vectorises (a fill
    # where the row is broadcast, else a copy) through slices indexed from 0: with
    # ``scratch[t + k]`` neither did. A row's position (h, i, j) is found once per block
    # and then stepped: a division per row made rows of 50 elements up to 10% slower.
    # The indices an array does not have stay 0 while its rows are read (the one above
    # them wraps only past its last row)
    inner = x.shape[-1]
    count_j, count_i = _row_counts(x)
    r = lo // inner
    c = lo - r * inner
    q = r // count_j
    j = r - q * count_j
    h = q // count_i
    i = q - h * count_i
    count = hi - lo
    t = 0
    while t < count:
        m = min(count - t, inner - c)
        dst = scratch[t:t + m]
        if x.strides[-1] == 0:
            value = _row_run(x, h, i, j, 0, 1)[0]
            for k in range(m):
                dst[k] = value
        else:
            src = _row_run(x, h, i, j, c, m)
            for k in range(m):
                dst[k] = src[k]
        t += m
        c = 0
        j += 1
        if j == count_j:
            j = 0
            i += 1
            if i == count_i:
                i, h = 0, h + 1
    return scratch[:count]


def _stack_array_type(item, count):
    """(type, codegen) of an uninitialised stack array of ``count`` ``item``s, allocated
    in the entry block of the function that calls it: it lives as long as that frame."""
    arrty = types.Array(item, 1, "C")

    def codegen(context, builder, sig, args):
        data_type = context.get_data_type(item)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(data_type))
        array = context.make_array(arrty)(context, builder)
        context.populate_array(array,
                               data=cgutils.alloca_once(builder, data_type, size=count),
                               shape=[context.get_constant(types.intp, count)],
                               strides=[itemsize], itemsize=itemsize, meminfo=None)
        return array._getvalue()

    return arrty, codegen


def stack_array(length_of, dtype=None):
    """An intrinsic for jitted code: ``f(x)``, for a float ``x`` of dtype ``dt``, is an
    uninitialised 1-D C-contiguous array of ``length_of(dt)`` elements of ``dtype`` (of
    ``dt`` when None), on the stack. LLVM keeps such an array in vector registers, which
    it cannot do with a heap array (``np.empty``)."""

    @intrinsic
    def array_on_stack(typingctx, x):
        item = x if dtype is None else from_dtype(np.dtype(dtype))
        arrty, codegen = _stack_array_type(item, int(length_of(as_dtype(x))))
        return arrty(x), codegen

    return array_on_stack


def fold_into(length_of, wide_length):
    """An intrinsic for jitted code: ``f(lanes, wide)``, for a stack array ``lanes`` of
    ``length_of(dt)`` floats of dtype ``dt`` (:func:`stack_array`) and ``wide``, one of
    ``wide_length`` float64s, folds the lanes pairwise, ``lanes[k] += lanes[k + h]`` for
    h = half their count, a quarter, ... while h >= ``wide_length``, and adds the first
    ``wide_length`` to ``wide`` (``wide[k] += lanes[k]``, converted exactly): each
    addition as written, lane by lane, as whole vectors. numba's loops for the same
    steps were unrolled and left scalar, shuffling one lane at a time: as much work as
    the loss over the lanes' run. ``lanes`` is left as it was. Both arrays are read
    as vectors from their first element: only arrays of at least those lengths, such as
    the stack arrays, may be passed (typing refuses non-contiguous ones, and a lane count
    that is not ``wide_length`` times a power of two)."""

    @intrinsic
    def fold(typingctx, lanes, wide):
        count = int(length_of(as_dtype(lanes.dtype)))
        ratio = count // wide_length
        # the vectors cover the arrays' first elements: they must be contiguous and hold
        # that many, which the stack arrays do (their length is part of the function)
        if (count % wide_length or ratio < 1 or ratio & (ratio - 1)
                or wide.dtype != types.float64
                or not all(isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C"
                           for t in (lanes, wide))):
            return None

        def codegen(context, builder, sig, args):
            item = context.get_data_type(sig.args[0].dtype)
            double = context.get_data_type(types.float64)

            def vector_at(array, type_, length):
                data = context.make_array(sig.args[array])(context, builder, args[array]).data
                pointer = builder.bitcast(data, ir.VectorType(type_, length).as_pointer())
                return pointer, context.get_abi_sizeof(type_)

            def half(vector, length, first):
                mask = ir.Constant(ir.VectorType(ir.IntType(32), length),
                                   [ir.Constant(ir.IntType(32), first + k) for k in range(length)])
                return builder.shuffle_vector(vector, vector, mask)

            pointer, align = vector_at(0, item, count)
            folded, length = builder.load(pointer, align=align), count
            while length // 2 >= wide_length:
                length //= 2
                folded = builder.fadd(half(folded, length, 0), half(folded, length, length))
            if item != double:
                folded = builder.fpext(folded, ir.VectorType(double, length))
            pointer, align = vector_at(1, double, length)
            builder.store(builder.fadd(builder.load(pointer, align=align), folded), pointer,
                          align=align)
            return context.get_dummy_value()

        return types.none(lanes, wide), codegen

    return fold


def scratch_array(length_of):
    """An intrinsic: ``f(x)``, for a 2-D to 4-D array ``x`` of dtype ``dt`` (read by
    :func:`block_of`), is an uninitialised stack array of ``length_of(dt)`` ``dt``s in
    the frame of the function that calls ``f`` (never return it); None for other ``x``."""

    @intrinsic
    def scratch_for(typingctx, x):
        if not _is_laid_out(x):
            return types.none(x), lambda context, builder, sig, args: context.get_dummy_value()
        arrty, codegen = _stack_array_type(x.dtype, int(length_of(as_dtype(x.dtype))))
        return arrty(x), codegen

    return scratch_for


def serial_twin(fn):
    """``fn`` under another qualified name (``<name>_serial``), to compile serially beside
    a threaded dispatcher of ``fn``: numba's cache index ignores compile flags, so two
    dispatchers of one function would overwrite each other's cache entries."""
    serial = pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                  fn.__defaults__, fn.__closure__)
    serial.__qualname__ = fn.__qualname__ + "_serial"
    return serial

"""Docstring text that every public function shares, written once.

A docstring names a shared block (a parameter's entry, or a whole section with its
heading) with a line of its own, ``{name}``, indented as the block should be;
:func:`shared` replaces it. Everything particular to a function (its
formula, its parameter, its returns and examples) is written in its own docstring.
"""

import re
import textwrap
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

BLOCKS = {
    "operands": """\
input, target : array_like, CUDA array or Dask array
    The prediction and the target; they broadcast together. NumPy arrays (any layout,
    either byte order, any subclass but a masked array), NumPy scalars, Python numbers or
    lists; or CUDA device arrays (CuPy, numba, torch), or Dask arrays, whose results are
    arrays of the same library.""",
    "reduction": """\
reduction : {'none', 'mean', 'sum'}, default 'mean'
    'none': the elementwise result; 'sum': the sum; 'mean': the sum divided by the
    element count N of the broadcast shape (NaN when N is 0; not by ``sum(weight)``).
    torch's deprecated 'elementwise_mean' means 'mean', with torch's warning.""",
    "weight": """\
weight : array_like, optional
    Broadcastable to the loss's shape; multiplies each element before the reduction.""",
    "stream": """\
stream : optional
    CUDA device arrays only: None (the default stream), a numba, CuPy or torch CUDA
    stream, or a raw ``cudaStream_t`` handle as an int. The kernels run on it; nothing
    waits for the GPU. With host data, ``stream`` must be None.""",
    "legacy": """\
size_average, reduce : bool or None, optional
    torch's deprecated flags: when either is a bool they replace ``reduction`` ('mean'
    when both are true, None counting as true; 'sum' for ``reduce`` alone; 'none' for
    ``reduce=False``), with torch's warning. Anything but a bool or None raises
    TypeError.""",
    "raises": """\
Raises
------
ValueError
    A negative or NaN beta, a delta <= 0 or NaN, an unknown ``reduction``, shapes that do
    not broadcast, a ragged list, ``out`` of the wrong shape, read-only or sharing memory
    with an input, ``stream`` with host data.
TypeError
    An operand's dtype outside the rules below, input and target both integer or bool,
    a Python bool or a masked array as an operand, ``out`` of the wrong type or dtype.
OverflowError
    A Python int beyond float64's range.""",
    "rules": """\
Notes
-----
**Dtypes.** The float operands (input, target, weight) decide the computation dtype, by
NumPy's ``result_type``: an array by its dtype, a NumPy scalar as a typed 0-d array, a
Python number weakly (a float32 array with ``0.5`` stays float32; Python numbers alone,
and lists of Python ints, are float64). An integer or bool array takes that dtype without
deciding it, as in torch (beside float32, int64 is float32), and so does
``grad_output``. float16 is computed in float32 and returned as float16; otherwise the
result dtype is the computation dtype. Complex, object, string and longdouble data raise
TypeError.

**Broadcasting.** Input and target broadcast as in NumPy, with torch's ``UserWarning``
when their shapes differ (not for a Python number). A gradient comes back in its
operand's shape, summed over the axes along which that operand was broadcast.""",
}


def _replace(match: re.Match[str]) -> str:
    indent, name = match.groups()
    return textwrap.indent(BLOCKS[name], indent)


def shared(fn: F) -> F:
    """Decorator: fill ``fn``'s docstring's ``{name}`` lines with the shared blocks."""
    fn.__doc__ = re.sub(r"^( *)\{(\w+)\}$", _replace, fn.__doc__ or "", flags=re.M)
    return fn

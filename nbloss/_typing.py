"""The static types of the public API (``nbloss/py.typed`` makes them a user's).

Static types describe what a type checker can tell apart: NumPy data on the host, whose
results are NumPy arrays and scalars, and CUDA or Dask arrays, whose results are arrays
of the same library (CuPy in, CuPy out; a Dask array in, a lazy Dask array out). Those
libraries share no base type, so calls on them are typed by two structural protocols and
return ``Any``.
"""

from typing import Any, Literal, Protocol, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArrayLike", "DeviceOrDask", "FloatArray", "FloatScalar", "Operand", "Param",
           "Reduction", "Stream", "Legacy", "Weight"]

# torch's deprecated 'elementwise_mean' is accepted at run time, with torch's warning,
# and means 'mean'; it is left out of the type so that a type checker flags it as it
# flags any other string outside the three: new code should not use it.
Reduction = Literal["none", "mean", "sum"]


class CudaArray(Protocol):
    """A CUDA device array: CuPy, numba and torch arrays export this attribute."""

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]: ...


class DaskArray(Protocol):
    """A Dask array (any Dask collection has this method)."""

    def __dask_graph__(self) -> Any: ...


#: a CUDA device array or a Dask array: an operand whose results are that library's arrays
DeviceOrDask = Union[CudaArray, DaskArray]
#: input, target, weight or grad_output: NumPy data (arrays, NumPy scalars, Python
#: numbers, lists) or a CUDA or Dask array
Operand = Union[ArrayLike, CudaArray, DaskArray]
#: ``weight=``: an operand, or None for none
Weight = Union[Operand, None]
#: beta or delta: a real number (a Python float or int, a NumPy float or integer scalar)
Param = Union[float, np.floating[Any], np.integer[Any]]
#: torch's deprecated ``size_average`` and ``reduce`` flags: a bool or None, nothing else
Legacy = Union[bool, np.bool_, None]
#: ``stream=`` for CUDA device arrays: None (the default stream), a numba, CuPy or torch
#: stream, or a raw ``cudaStream_t`` handle as an int; the stream types share no base
Stream = Any
#: a result on the host: a floating-point array...
FloatArray = NDArray[np.floating[Any]]
#: ...or a NumPy floating-point scalar ('mean' and 'sum')
FloatScalar = np.floating[Any]

# The types a checker sees for nbloss._losses: the module's own annotations, plus the
# overloads that make a result's type precise. NumPy data: a NumPy scalar for 'mean' and
# 'sum', an array for 'none' (or for the legacy flags, which may choose either: a union);
# CUDA and Dask operands: Any, an array of their own library. tests/test_typing.py runs
# mypy's stubtest to keep this in step with _losses.py.
from typing import Any, Literal, overload

from . import _call
from ._typing import ArrayLike, DeviceOrDask, FloatArray, FloatScalar, Legacy, Operand, Param
from ._typing import Reduction, Stream

def new_call(input: Any, target: Any, loss: str, param: Any, reduction: Any,
             weight: Any = None, stream: Any = None, warn_shapes: bool = True,
             size_average: Any = None, reduce: Any = None,
             grad_output: Any = None) -> _call.Call: ...

# -- smooth_l1_loss, huber_loss: the reduction decides a scalar or an array
@overload
def smooth_l1_loss(input: DeviceOrDask, target: Operand, beta: Param = 1.0,
                   reduction: Reduction = "mean", *, weight: Operand | None = None,
                   out: Any = None, stream: Stream = None, size_average: Legacy = None,
                   reduce: Legacy = None) -> Any: ...
@overload
def smooth_l1_loss(input: ArrayLike, target: ArrayLike, beta: Param = 1.0,
                   reduction: Literal["mean", "sum"] = "mean", *,
                   weight: ArrayLike | None = None, out: None = None, stream: None = None,
                   size_average: None = None, reduce: None = None) -> FloatScalar: ...
@overload
def smooth_l1_loss(input: ArrayLike, target: ArrayLike, beta: Param,
                   reduction: Literal["none"], *, weight: ArrayLike | None = None,
                   out: FloatArray | None = None, stream: None = None,
                   size_average: None = None, reduce: None = None) -> FloatArray: ...
@overload
def smooth_l1_loss(input: ArrayLike, target: ArrayLike, beta: Param = 1.0, *,
                   reduction: Literal["none"], weight: ArrayLike | None = None,
                   out: FloatArray | None = None, stream: None = None,
                   size_average: None = None, reduce: None = None) -> FloatArray: ...
@overload
def smooth_l1_loss(input: ArrayLike, target: ArrayLike, beta: Param = 1.0,
                   reduction: Reduction = "mean", *, weight: ArrayLike | None = None,
                   out: FloatArray | None = None, stream: None = None,
                   size_average: Legacy = None,
                   reduce: Legacy = None) -> FloatScalar | FloatArray: ...
@overload
def huber_loss(input: DeviceOrDask, target: Operand, delta: Param = 1.0,
               reduction: Reduction = "mean", *, weight: Operand | None = None,
               out: Any = None, stream: Stream = None) -> Any: ...
@overload
def huber_loss(input: ArrayLike, target: ArrayLike, delta: Param = 1.0,
               reduction: Literal["mean", "sum"] = "mean", *, weight: ArrayLike | None = None,
               out: None = None, stream: None = None) -> FloatScalar: ...
@overload
def huber_loss(input: ArrayLike, target: ArrayLike, delta: Param,
               reduction: Literal["none"], *, weight: ArrayLike | None = None,
               out: FloatArray | None = None, stream: None = None) -> FloatArray: ...
@overload
def huber_loss(input: ArrayLike, target: ArrayLike, delta: Param = 1.0, *,
               reduction: Literal["none"], weight: ArrayLike | None = None,
               out: FloatArray | None = None, stream: None = None) -> FloatArray: ...
@overload
def huber_loss(input: ArrayLike, target: ArrayLike, delta: Param = 1.0,
               reduction: Reduction = "mean", *, weight: ArrayLike | None = None,
               out: FloatArray | None = None,
               stream: None = None) -> FloatScalar | FloatArray: ...

# -- *_grad: always an array in input's shape
@overload
def smooth_l1_loss_grad(input: DeviceOrDask, target: Operand, beta: Param = 1.0,
                        reduction: Reduction = "mean", *, weight: Operand | None = None,
                        out: Any = None, stream: Stream = None, size_average: Legacy = None,
                        reduce: Legacy = None) -> Any: ...
@overload
def smooth_l1_loss_grad(input: ArrayLike, target: ArrayLike, beta: Param = 1.0,
                        reduction: Reduction = "mean", *, weight: ArrayLike | None = None,
                        out: FloatArray | None = None, stream: None = None,
                        size_average: Legacy = None, reduce: Legacy = None) -> FloatArray: ...
@overload
def huber_loss_grad(input: DeviceOrDask, target: Operand, delta: Param = 1.0,
                    reduction: Reduction = "mean", *, weight: Operand | None = None,
                    out: Any = None, stream: Stream = None) -> Any: ...
@overload
def huber_loss_grad(input: ArrayLike, target: ArrayLike, delta: Param = 1.0,
                    reduction: Reduction = "mean", *, weight: ArrayLike | None = None,
                    out: FloatArray | None = None, stream: None = None) -> FloatArray: ...

# -- *_value_and_grad: (the loss as above, the gradient)
@overload
def smooth_l1_loss_value_and_grad(
    input: DeviceOrDask, target: Operand, beta: Param = 1.0, reduction: Reduction = "mean", *,
    weight: Operand | None = None, out: Any = None, stream: Stream = None,
    size_average: Legacy = None, reduce: Legacy = None) -> tuple[Any, Any]: ...
@overload
def smooth_l1_loss_value_and_grad(
    input: ArrayLike, target: ArrayLike, beta: Param = 1.0,
    reduction: Literal["mean", "sum"] = "mean", *, weight: ArrayLike | None = None,
    out: FloatArray | None = None, stream: None = None, size_average: None = None,
    reduce: None = None) -> tuple[FloatScalar, FloatArray]: ...
@overload
def smooth_l1_loss_value_and_grad(
    input: ArrayLike, target: ArrayLike, beta: Param, reduction: Literal["none"], *,
    weight: ArrayLike | None = None, out: FloatArray | None = None, stream: None = None,
    size_average: None = None, reduce: None = None) -> tuple[FloatArray, FloatArray]: ...
@overload
def smooth_l1_loss_value_and_grad(
    input: ArrayLike, target: ArrayLike, beta: Param = 1.0, *, reduction: Literal["none"],
    weight: ArrayLike | None = None, out: FloatArray | None = None, stream: None = None,
    size_average: None = None, reduce: None = None) -> tuple[FloatArray, FloatArray]: ...
@overload
def smooth_l1_loss_value_and_grad(
    input: ArrayLike, target: ArrayLike, beta: Param = 1.0, reduction: Reduction = "mean", *,
    weight: ArrayLike | None = None, out: FloatArray | None = None, stream: None = None,
    size_average: Legacy = None,
    reduce: Legacy = None) -> tuple[FloatScalar | FloatArray, FloatArray]: ...
@overload
def huber_loss_value_and_grad(
    input: DeviceOrDask, target: Operand, delta: Param = 1.0, reduction: Reduction = "mean",
    *, weight: Operand | None = None, out: Any = None,
    stream: Stream = None) -> tuple[Any, Any]: ...
@overload
def huber_loss_value_and_grad(
    input: ArrayLike, target: ArrayLike, delta: Param = 1.0,
    reduction: Literal["mean", "sum"] = "mean", *, weight: ArrayLike | None = None,
    out: FloatArray | None = None, stream: None = None) -> tuple[FloatScalar, FloatArray]: ...
@overload
def huber_loss_value_and_grad(
    input: ArrayLike, target: ArrayLike, delta: Param, reduction: Literal["none"], *,
    weight: ArrayLike | None = None, out: FloatArray | None = None,
    stream: None = None) -> tuple[FloatArray, FloatArray]: ...
@overload
def huber_loss_value_and_grad(
    input: ArrayLike, target: ArrayLike, delta: Param = 1.0, *, reduction: Literal["none"],
    weight: ArrayLike | None = None, out: FloatArray | None = None,
    stream: None = None) -> tuple[FloatArray, FloatArray]: ...
@overload
def huber_loss_value_and_grad(
    input: ArrayLike, target: ArrayLike, delta: Param = 1.0, reduction: Reduction = "mean", *,
    weight: ArrayLike | None = None, out: FloatArray | None = None,
    stream: None = None) -> tuple[FloatScalar | FloatArray, FloatArray]: ...

"""The public functions and criteria: every one checks its loss's parameter, builds the
call of the backend its data lives on (:func:`new_call`), and runs one operation on it.

Formulas (x = input - target, z = |x|, N = the broadcast element count):

- ``smooth_l1(x; beta) = 0.5 z^2 / beta if z < beta else z - 0.5 beta`` (exact L1 at beta = 0)
- ``huber(x; delta)    = 0.5 z^2 if z < delta else delta (z - 0.5 delta)``
- reductions: 'none' (elementwise), 'sum', 'mean' (sum / N; NaN when N = 0), each
  element multiplied by ``weight`` first when one is given;
- dtypes: one computation dtype for all the arithmetic, from the float operands
  (``_validate.result_dtypes``); integer and bool operands and ``grad_output`` take it.

The backends (``_host``, ``_device``, ``_dask``) implement the contract in ``_call`` and
are imported on first use, not at ``import nbloss``: numba with the first call, CUDA only
when a device array arrives, Dask's layer only with a Dask array.
"""

import importlib

import numpy as np

from . import _call
from . import _validate as v

_backends = {}


def _backend(name):
    """``nbloss._host``, ``nbloss._device`` or ``nbloss._dask``, imported on first use."""
    module = _backends.get(name)
    if module is None:
        try:
            module = _backends[name] = importlib.import_module(f"nbloss.{name}")
        except ImportError as exc:
            if name != "_device":
                raise
            raise RuntimeError(f"a CUDA device array was passed, but numba's CUDA target cannot "
                               f"be loaded ({exc}); install 'nbloss[cuda12]' or "
                               "'nbloss[cuda13]' to match the driver") from exc
    return module


def new_call(input, target, loss, param, reduction, weight=None, stream=None,
             warn_shapes=True, size_average=None, reduce=None):
    """The call (a ``_call.Call``) of ``loss`` ('smooth_l1', 'huber' or 'l1') on the
    backend the data lives on, its parameter checked: ``_dask.DaskCall`` when any operand
    is a Dask array, ``_device.DeviceCall`` when any is a CUDA device array,
    ``_host.HostCall`` otherwise. Every public function enters here and then runs one
    operation of the call. ``warn_shapes``: torch's shape warning, which only a forward
    gives."""
    if size_average is not None or reduce is not None:
        reduction = v.legacy_reduction(size_average, reduce, reduction)
    spec = _call.loss_spec(loss, param)
    if not (type(input) is np.ndarray and type(target) is np.ndarray):
        operands = (input, target, weight)
        if any(v.is_dask_array(op) for op in operands):
            return _backend("_dask").DaskCall(input, target, spec, reduction, weight,
                                              stream=stream, warn_shapes=warn_shapes)
        if any(v.is_device_array(op) for op in operands):
            return _backend("_device").DeviceCall(input, target, spec, reduction, weight,
                                                  stream=stream, warn_shapes=warn_shapes)
    if stream is not None:
        raise ValueError("stream= is only for CUDA device arrays; these operands are host data")
    host = _backends.get("_host") or _backend("_host")
    return host.HostCall(input, target, spec, reduction, weight, warn_shapes)


# -- public functions ----------------------------------------------------------------------

def smooth_l1_loss(input, target, beta=1.0, reduction="mean", *, weight=None, out=None,
                   stream=None, size_average=None, reduce=None):
    """Smooth L1 loss, torch's ``F.smooth_l1_loss``.

    ``0.5 x^2 / beta if |x| < beta else |x| - 0.5 beta`` with ``x = input - target``;
    beta = 0 is exact L1. ``weight`` (broadcastable to the loss) multiplies each element
    before the reduction; 'mean' divides by the element count, not by sum(weight).
    Returns a NumPy scalar for 'mean'/'sum', an array of the broadcast shape for 'none'
    (written into ``out`` when given).
    """
    return new_call(input, target, "smooth_l1", beta, reduction, weight,
                    stream, True, size_average, reduce).loss(out)


def huber_loss(input, target, delta=1.0, reduction="mean", *, weight=None, out=None, stream=None):
    """Huber loss, torch's ``F.huber_loss``.

    ``0.5 x^2 if |x| < delta else delta (|x| - 0.5 delta)`` with ``x = input - target``;
    ``huber(x; delta) = delta * smooth_l1(x; beta=delta)``. Reductions, ``weight`` and
    ``out`` as in :func:`smooth_l1_loss`.
    """
    return new_call(input, target, "huber", delta, reduction, weight, stream).loss(out)


def smooth_l1_loss_grad(input, target, beta=1.0, reduction="mean", *, weight=None, out=None,
                        stream=None, size_average=None, reduce=None):
    """d loss / d input of :func:`smooth_l1_loss`, in input's shape.

    Per element ``clip(x / beta, -1, 1)`` (``sign(x)``, 0 at x = 0, when beta = 0), times
    ``weight``, times 1/N for 'mean'; summed over axes along which input was broadcast.
    """
    return new_call(input, target, "smooth_l1", beta, reduction, weight,
                    stream, True, size_average, reduce).grad(out)


def huber_loss_grad(input, target, delta=1.0, reduction="mean", *, weight=None, out=None,
                    stream=None):
    """d loss / d input of :func:`huber_loss`: per element ``clip(x, -delta, delta)``,
    times ``weight``, times 1/N for 'mean', in input's shape."""
    return new_call(input, target, "huber", delta, reduction, weight, stream).grad(out)


def smooth_l1_loss_value_and_grad(input, target, beta=1.0, reduction="mean", *, weight=None,
                                  out=None, stream=None, size_average=None, reduce=None):
    """``(smooth_l1_loss(...), smooth_l1_loss_grad(...))`` in one pass over memory; ``out``
    receives the gradient. Shaped for ``scipy.optimize.minimize(fun, x0, jac=True)``."""
    return new_call(input, target, "smooth_l1", beta, reduction, weight,
                    stream, True, size_average, reduce).value_and_grad(out)


def huber_loss_value_and_grad(input, target, delta=1.0, reduction="mean", *, weight=None, out=None,
                              stream=None):
    """``(huber_loss(...), huber_loss_grad(...))`` in one pass over memory; ``out``
    receives the gradient."""
    return new_call(input, target, "huber", delta, reduction, weight,
                    stream).value_and_grad(out)


def smooth_l1_loss_backward(grad_output, input, target, beta=1.0, reduction="mean", *,
                            weight=None, stream=None, size_average=None, reduce=None):
    """The backward of :func:`smooth_l1_loss`, torch's autograd contract.

    ``grad_output`` is the upstream gradient: a scalar for 'mean'/'sum', an array
    broadcastable to the loss for 'none'; it is cast to the computation dtype and does
    not decide it (as torch casts it to the loss's). Returns ``(grad_input,
    grad_target)``, each in its operand's shape (summed over broadcast axes) and in the
    result dtype, an integer operand's too; ``grad_target = -grad_input`` before that sum.
    """
    return new_call(input, target, "smooth_l1", beta, reduction, weight,
                    stream, False, size_average, reduce).backward(grad_output)


def huber_loss_backward(grad_output, input, target, delta=1.0, reduction="mean", *, weight=None,
                        stream=None):
    """The backward of :func:`huber_loss`: ``(grad_input, grad_target)`` as in
    :func:`smooth_l1_loss_backward`."""
    return new_call(input, target, "huber", delta, reduction, weight,
                    stream, False).backward(grad_output)


def smooth_l1_loss_hess_diag(input, target, beta=1.0, reduction="mean", *, weight=None, out=None,
                             stream=None):
    """Diagonal of the Hessian of :func:`smooth_l1_loss` w.r.t. input (torch's double
    backward): ``(|x| < beta) / beta`` per element (0 on the boundary, 0 for beta = 0),
    times ``weight``, times 1/N for 'mean'; the mask multiplies, so a NaN or infinite
    weight gives NaN outside it, as in torch. The Hessian is diagonal, so
    ``hessp(v) = hess_diag * v``."""
    return new_call(input, target, "smooth_l1", beta, reduction, weight,
                    stream).hess_diag(out)


def huber_loss_hess_diag(input, target, delta=1.0, reduction="mean", *, weight=None, out=None,
                         stream=None):
    """Diagonal of the Hessian of :func:`huber_loss` w.r.t. input: ``(|x| < delta)`` per
    element, times ``weight`` (NaN or inf: as in :func:`smooth_l1_loss_hess_diag`), times
    1/N for 'mean'."""
    return new_call(input, target, "huber", delta, reduction, weight, stream).hess_diag(out)


# -- criteria ------------------------------------------------------------------------------

class _Criterion:
    """``loss = crit(input, target)``, then ``crit.backward(grad_output=1.0)``.

    The forward runs the fused kernel, so the gradient is ready when ``backward`` is
    called: a training step reads input and target once.
    """

    _name = ""

    def __init__(self, reduction, param):
        self.reduction = v.check_reduction(reduction)
        self._param = param
        self._saved = None

    def _new_call(self, input, target, stream):  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, input, target, *, stream=None):
        call = self._new_call(input, target, stream)
        value, full_grad = call.value_and_grad_full()
        self._saved = (call, full_grad)
        return value

    forward = __call__

    def backward(self, grad_output=1.0):
        """``(grad_input, grad_target)`` of the last forward call, times ``grad_output``
        (a scalar for 'mean'/'sum', an array broadcastable to the loss for 'none'; cast
        to the computation dtype). New arrays on every call: the caller's to change."""
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before a forward call")
        call, full = self._saved
        return call.backward_from(full, grad_output)

    def __repr__(self):
        return f"{type(self).__name__}(reduction={self.reduction!r}, {self._name}={self._param!r})"


class SmoothL1Loss(_Criterion):
    """torch's ``nn.SmoothL1Loss``: ``loss = crit(input, target)``; ``crit.backward()``."""

    _name = "beta"

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        reduction = v.legacy_reduction(size_average, reduce, reduction)
        super().__init__(reduction, v.check_beta(beta))

    @property
    def beta(self):
        return self._param

    def _new_call(self, input, target, stream):
        return new_call(input, target, "smooth_l1", self._param, self.reduction, stream=stream)


class HuberLoss(_Criterion):
    """torch's ``nn.HuberLoss``: ``loss = crit(input, target)``; ``crit.backward()``."""

    _name = "delta"

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction, v.check_delta(delta))

    @property
    def delta(self):
        return self._param

    def _new_call(self, input, target, stream):
        return new_call(input, target, "huber", self._param, self.reduction, stream=stream)

"""torch's autograd on the losses: the backward (``*_backward``: grad_input and
grad_target times an upstream gradient) and the double backward (``*_hess_diag``: the
Hessian's diagonal w.r.t. input). Like every public function they build their call with
``_losses.new_call`` (``warn_shapes=False`` for a backward: torch warns about shapes in
the forward only) and run one operation on it."""

from __future__ import annotations  # the reference shows the aliases' names

from typing import Any

from ._docs import shared
from ._losses import new_call
from ._typing import Legacy, Operand, Param, Reduction, Stream, Weight


@shared
def smooth_l1_loss_backward(grad_output: Operand, input: Operand, target: Operand,
                            beta: Param = 1.0, reduction: Reduction = "mean", *,
                            weight: Weight = None, stream: Stream = None,
                            size_average: Legacy = None,
                            reduce: Legacy = None) -> tuple[Any, Any]:
    """The backward of :func:`smooth_l1_loss`, torch's autograd contract.

    ``grad_input = grad_output * d loss / d input`` (the gradient of
    :func:`smooth_l1_loss_grad`), ``grad_target = -grad_input``, each then summed to its
    operand's shape.

    Parameters
    ----------
    grad_output : array_like
        The upstream gradient: a scalar for 'mean' and 'sum', an array broadcastable to
        the loss for 'none'. It is cast to the result dtype and does not decide it, as
        torch casts it to the loss's.
    {operands}
    beta : float, default 1.0
        >= 0, not NaN; 0 is exact L1.
    {reduction}
    {weight}
    {stream}
    {legacy}

    Returns
    -------
    grad_input, grad_target : numpy.ndarray
        Each in its operand's shape (summed over broadcast axes) and in the result dtype,
        an integer operand's too; CUDA or Dask arrays for CUDA or Dask operands (Dask
        arrays for a Dask ``grad_output`` too).

    {raises}

    {rules}

    Examples
    --------
    >>> import numpy as np, nbloss
    >>> gi, gt = nbloss.smooth_l1_loss_backward(2.0, np.array([0.5, 3.0]), 0.0, reduction="sum")
    >>> print(gi, gt)
    [1. 2.] -3.0
    """
    return new_call(input, target, "smooth_l1", beta, reduction, weight,
                    stream, False, size_average, reduce,
                    grad_output=grad_output).backward(grad_output)


@shared
def huber_loss_backward(grad_output: Operand, input: Operand, target: Operand,
                        delta: Param = 1.0, reduction: Reduction = "mean", *,
                        weight: Weight = None,
                        stream: Stream = None) -> tuple[Any, Any]:
    """The backward of :func:`huber_loss`, torch's autograd contract.

    As :func:`smooth_l1_loss_backward`, with :func:`huber_loss_grad`'s gradient.

    Parameters
    ----------
    grad_output : array_like
        The upstream gradient: a scalar for 'mean' and 'sum', an array broadcastable to
        the loss for 'none'; cast to the result dtype.
    {operands}
    delta : float, default 1.0
        > 0, not NaN.
    {reduction}
    {weight}
    {stream}

    Returns
    -------
    grad_input, grad_target : numpy.ndarray
        As :func:`smooth_l1_loss_backward` returns them.

    {raises}

    {rules}

    Examples
    --------
    >>> import numpy as np, nbloss
    >>> gi, gt = nbloss.huber_loss_backward(np.ones(2), np.array([0.5, 3.0]), np.zeros(2),
    ...                                     2.0, "none")
    >>> print(gi, gt)
    [0.5 2. ] [-0.5 -2. ]
    """
    return new_call(input, target, "huber", delta, reduction, weight,
                    stream, False, grad_output=grad_output).backward(grad_output)


@shared
def smooth_l1_loss_hess_diag(input: Operand, target: Operand, beta: Param = 1.0,
                             reduction: Reduction = "mean", *, weight: Weight = None,
                             out: Any = None, stream: Stream = None) -> Any:
    """Diagonal of the Hessian of :func:`smooth_l1_loss` w.r.t. input (torch's double
    backward).

    Per element ``(|x| < beta) / beta`` (0 on the boundary, 0 for beta = 0), times
    ``weight``, times 1/N for 'mean'; the mask multiplies, so a NaN or infinite weight
    gives NaN outside it, as in torch. The Hessian is diagonal, so ``hessp(v) =
    hess_diag * v``.

    Parameters
    ----------
    {operands}
    beta : float, default 1.0
        >= 0, not NaN; 0 is exact L1.
    {reduction}
    {weight}
    out : numpy.ndarray, optional
        Receives the diagonal (input's shape, the result dtype).
    {stream}

    Returns
    -------
    numpy.ndarray
        The diagonal in input's shape and the result dtype; a CUDA or Dask array for
        CUDA or Dask operands.

    {raises}

    {rules}

    Examples
    --------
    >>> import numpy as np, nbloss
    >>> print(nbloss.smooth_l1_loss_hess_diag(np.array([0.5, 2.0, 3.0]), 0.0, 2.0, "sum"))
    [0.5 0.  0. ]
    """
    return new_call(input, target, "smooth_l1", beta, reduction, weight,
                    stream).hess_diag(out)


@shared
def huber_loss_hess_diag(input: Operand, target: Operand, delta: Param = 1.0,
                         reduction: Reduction = "mean", *, weight: Weight = None,
                         out: Any = None, stream: Stream = None) -> Any:
    """Diagonal of the Hessian of :func:`huber_loss` w.r.t. input.

    Per element ``(|x| < delta)``, times ``weight`` (NaN or inf: as in
    :func:`smooth_l1_loss_hess_diag`), times 1/N for 'mean'.

    Parameters
    ----------
    {operands}
    delta : float, default 1.0
        > 0, not NaN.
    {reduction}
    {weight}
    out : numpy.ndarray, optional
        Receives the diagonal (input's shape, the result dtype).
    {stream}

    Returns
    -------
    numpy.ndarray
        As :func:`smooth_l1_loss_hess_diag` returns it.

    {raises}

    {rules}

    Examples
    --------
    >>> import numpy as np, nbloss
    >>> print(nbloss.huber_loss_hess_diag(np.array([0.5, 2.0, 3.0]), 0.0, 2.0, "sum"))
    [1. 0. 0.]
    """
    return new_call(input, target, "huber", delta, reduction, weight, stream).hess_diag(out)

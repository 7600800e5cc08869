"""Every CUDA kernel compiles to PTX for the GPUs nbloss targets, without a GPU.

numba-cuda compiles through NVVM, and finds NVRTC before it compiles anything: the ``ptx``
extra installs the two as wheels, without the CUDA runtime (the ``cuda12``/``cuda13``
extras, for GPU machines, include them too); the driver is only needed to load and
launch. This catches typing errors in the kernels (optional None arrays, tuples of
strides, the shuffle reduction) on machines with no GPU, where the simulator, which runs
them as Python, cannot.
"""

import pytest

from conftest import REQUIRE_COMPARE, run_python

CODE = r"""
import sys, types
from numba import config, cuda
from numba import types as T
from numba.cuda import dispatcher
# typing a call to a device function asks the current device for its compute capability;
# with no GPU, answer for the target being compiled
cc = tuple(int(c) for c in sys.argv[1].split("."))
dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
from nbloss import _cuda

f32, f64, none = T.float32, T.float64, T.none
tup = lambda n: T.UniTuple(T.int64, n)
kernels = 0

def ptx(kernel, *sig):
    global kernels
    code, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
    kernels += 1
    return code

for kind, family in _cuda.FAMILIES.items():
    for s in (f32, f64):
        A = s[::1]
        for w in (none, A):
            for grad_out in (none, A):
                ptx(family.loss_each, A, A, w, s, s, s, A, grad_out)
            for grad_out in (none, A):
                code = ptx(family.loss_sum, A, A, w, s, s, s, s, grad_out, f64[::1])
                assert "shfl.sync.down" in code, "the block reduction does not use warp shuffles"
                assert "atom." not in code, "a reduction must not use atomics"
            for upstream in (none, A):
                ptx(family.grad_each, A, A, w, upstream, s, s, s, A)
            ptx(family.hess_each, A, A, w, s, s, s, A)
    # mixed dtypes compute in float64
    ptx(family.loss_each, f32[::1], f64[::1], none, f64, f64, f64, f64[::1], none)
    # one value broadcast over the loss: a view with stride 0 (typed 'A'), as input,
    # target, weight or upstream gradient (_device._repeated)
    for s in (f32, f64):
        A, R = s[::1], s[:]
        ptx(family.loss_each, A, R, R, s, s, s, A, A)
        ptx(family.loss_sum, R, A, none, s, s, s, s, A, f64[::1])
        ptx(family.loss_sum, A, R, R, s, s, s, s, none, f64[::1])
        ptx(family.grad_each, A, R, R, R, s, s, s, A)
        ptx(family.hess_each, A, R, none, s, s, s, A)
    # operands broadcast along some axes: 2-D to 4-D views with stride 0 along those
    # axes (_device._view), read by index arithmetic (_cuda.value_at)
    for s in (f32, f64):
        A = s[::1]
        for V in (s[:, :], s[:, :, :], s[:, :, :, :]):
            ptx(family.loss_each, A, V, V, s, s, s, A, A)
            ptx(family.loss_sum, V, A, V, s, s, s, s, A, f64[::1])
            ptx(family.grad_each, A, V, V, V, s, s, s, A)
            ptx(family.hess_each, V, A, V, s, s, s, A)
for s in (f32, f64):
    A = s[::1]
    ptx(_cuda.add_block_sums, f64[::1], T.int64, f64, A)
    ptx(_cuda.expand, A, tup(3), tup(3), A)
    ptx(_cuda.fill, A, s)
    ptx(_cuda.convert, (f64 if s is f32 else f32)[::1], A)
    for upstream in (none, A, s[:], s[:, :], s[:, :, :], s[:, :, :, :]):
        ptx(_cuda.multiply, A, upstream, s, A)
    ptx(_cuda.sum_to, A, tup(2), tup(2), tup(2), tup(2), T.int64, f64, A)
    ptx(_cuda.sum_to_by_blocks, A, tup(1), tup(1), tup(3), tup(3), T.int64, f64, A)
print("compiled", kernels)
"""


@pytest.mark.parametrize("cc", ["9.0", "8.0"])
def test_every_kernel_compiles_to_ptx(cc):
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    probe = run_python("from numba.cuda.cudadrv import nvvm\n"
                       "from numba.cuda.cuda_paths import get_cuda_paths\n"
                       "try:\n    nvvm.NVVM()\n    get_cuda_paths()\n    print('yes')\n"
                       "except Exception as e:\n    print('no', e)")
    if not probe.startswith("yes"):
        if REQUIRE_COMPARE:
            raise RuntimeError(f"NBLOSS_REQUIRE_COMPARE=1 but NVVM or NVRTC is missing: {probe.strip()}")
        pytest.skip(f"NVVM or NVRTC is not installed (pip install 'nbloss[ptx]'): {probe.strip()}")
    out = run_python(CODE, cc, NUMBA_ENABLE_CUDASIM=0)
    assert int(out.split()[-1]) >= 181

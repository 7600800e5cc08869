"""The kernels' inner loops are vectorised: their machine code uses packed SIMD
arithmetic (``vmulps``, ``vaddpd``, ... on xmm/ymm/zmm registers), not only scalar
``*ss``/``*sd`` instructions. A kernel that stops vectorising runs several times slower;
this catches it without timing anything. numba shows no assembly for code loaded from its
disk cache, so the kernels compile afresh in a subprocess with an empty cache folder."""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, re, warnings
import numpy as np, nbloss
from nbloss import _cpu, _math
PACKED = re.compile(r"^\s+v?(?:add|sub|mul|div|cmp\w*|blendv?|and|max|min)p[sd]\s+.*%[xyz]mm", re.M)
SCALAR = re.compile(r"^\s+v?(?:add|sub|mul|div)s[sd]\s", re.M)
counts = {}
for dtype in (np.float32, np.float64):
    a, b = np.ones(100, dtype), np.zeros(100, dtype)
    for loss, grad, vg, kind in (
            (nbloss.smooth_l1_loss, nbloss.smooth_l1_loss_grad, nbloss.smooth_l1_loss_value_and_grad, _math.SMOOTH_L1),
            (nbloss.huber_loss, nbloss.huber_loss_grad, nbloss.huber_loss_value_and_grad, _math.HUBER)):
        loss(a, b, 0.5, "none"); loss(a, b, 0.5, "sum"); vg(a, b, 0.5); grad(a, b, 0.5)
        for name in ("loss_each", "loss_sum", "grad_each"):
            kernel = getattr(_cpu.FAMILIES[kind].serial, name)
            for sig in kernel.signatures:
                if sig[0].dtype.name != np.dtype(dtype).name:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # 'inspection disabled for cached code'
                    asm = kernel.inspect_asm(sig)
                key = f"{kind} {np.dtype(dtype).name} {name} last_arg={sig[-1]}"
                counts[key] = [len(PACKED.findall(asm)), len(SCALAR.findall(asm))]
# a block sum's float32 additions are its lanes' (packed); each run's fold into the float64
# sums is packed too (_jit.fold_into), so it has no scalar float32 addition
block_sum = _cpu._block_loss_sum
for sig in block_sum.signatures:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asm = block_sum.inspect_asm(sig)
    counts[f"block sum {sig[1].dtype}"] = [len(PACKED.findall(asm)), len(re.findall(r"^\s+v?addss\s", asm, re.M))]
print(json.dumps(counts))
"""


@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    """(packed, scalar) instruction counts of each kernel, compiled afresh."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path_factory.mktemp("numba-cache")))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_every_kernel_uses_packed_simd(counts):
    assert len(counts) >= 16
    for key, (packed, _scalar) in counts.items():
        assert packed >= 4, (key, packed)


def test_a_block_sums_lanes_fold_as_vectors(counts):
    # numba's loops for the fold were unrolled into lane-by-lane scalar additions, as much
    # work as the loss over a run of 512 float32 elements
    assert counts["block sum float32"][1] == 0, counts["block sum float32"]

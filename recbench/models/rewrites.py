"""Exact rewrites of convolutions and pools that keep XLA:CPU on its fast path.

XLA:CPU runs some convolutions far off its fast path (docs/performance.md §8):

* a convolution with a dilated input (``lhs_dilation``: a transposed conv and its gradients, and the input
  gradient of a strided conv) — in the default BLT's train step the three such convolutions took over half of
  the step;
* a convolution whose map is smaller than its kernel (a 3×3 conv on CORnet's 2×2 IT map at a 64-pixel input):
  XLA swaps the operands and lands on a generic loop at about 1 GFLOP/s, against about 100 for the same
  arithmetic as one matrix product.

Each has an exact rewrite into ordinary operations, which computes the same function with the same weights (only
the order of the floating-point sums differs):

* **transposed conv, stride s** (:func:`conv_transpose_same`): output pixel ``s*i + a`` only meets the kernel
  taps ``k ≡ (lo - a) mod s``, so each of the s² output phases is a stride-1 conv of the input with a sub-kernel.
  All phases are computed by one stride-1 conv with s²·C_out output channels (the sub-kernels laid out in one
  n×n kernel, zeros where a phase has no tap) and interleaved back ("depth to space").
* **conv on a map smaller than its kernel** (:func:`conv_patches`): gather the k² shifted copies of the padded
  map into the channels (im2col) and multiply once by the kernel as a matrix. (On larger maps the same rewrite
  is slower than XLA's conv, about 0.8× at 8×8 and 16×16, so it is used only below the kernel's size.)
* **gradients of a strided conv, stride s** (:func:`strided_conv`, :func:`conv_strided`): split the input into its
  s² phases ("space to depth", s²·C_in channels); the conv is then one stride-1 conv whose kernel holds, for each
  phase, the taps that land on it, and its gradients are ordinary convs. The forward pass stays XLA's strided
  conv, which is faster than the rewrite in that direction.
* **gradient of a non-overlapping max-pool** (:func:`max_pool_blocks`): the forward pass stays XLA's
  ``reduce_window`` (faster than a reshape and a max in the forward direction), but for a p×p pool with stride p
  over a grid that p divides, the gradient is a compare and select on the p×p blocks, where ``reduce_window``'s
  own goes through XLA's ``select-and-scatter`` with an index grid (``iota``) as large as the input. At a tie the
  block form splits the gradient between the tied inputs where ``reduce_window`` gives it to one; the pools here
  follow a ReLU, so ties are zeros, whose gradient the ReLU stops either way.

:class:`Conv` and :class:`ConvTranspose` are ``nnx.Conv`` / ``nnx.ConvTranspose`` with the same parameters (so
initialisation, checkpoints and imported PyTorch weights are unchanged) that pick the rewrite where it applies.
The combined transposed-conv kernel multiplies some zeros (16 taps per input pixel for a 3×3 kernel at stride
2, where the operation needs 9), so FLOPs are counted on the reference ops: :mod:`recbench.models.accounting`
traces inside :func:`reference_ops`, and a model's FLOPs per image say what the network computes, not how this
CPU path computes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

_DN = ("NHWC", "HWIO", "NHWC")
_REWRITE = [True]


def rewrites_on() -> bool:
    """Whether layers should use the rewrites (False inside :func:`reference_ops`)."""
    return _REWRITE[-1]


@contextlib.contextmanager
def reference_ops() -> Iterator[None]:
    """Trace with the plain XLA ops (lhs-dilated transposed convs, ``reduce_window`` pools), e.g. to count FLOPs."""
    _REWRITE.append(False)
    try:
        yield
    finally:
        _REWRITE.pop()


def _same_transpose_padding(k: int, s: int) -> tuple[int, int]:
    """``lax.conv_transpose``'s padding of the dilated input for ``padding="SAME"`` (flax's ConvTranspose)."""
    pad_len = k + s - 2
    lo = k - 1 if s > k - 1 else -(-pad_len // 2)
    return lo, pad_len - lo


@cache
def _transpose_taps(k: int, s: int) -> tuple[np.ndarray, int, int]:
    """Static gather indices into the flattened kernel (index ``k*k`` = a zero tap) for the combined n×n kernel
    [n, n, s, s], and the padding (lo, hi) of the stride-1 conv."""
    lo, _ = _same_transpose_padding(k, s)
    taps, offs = [], []
    for a in range(s):
        first = (lo - a) % s
        taps.append(list(range(first, k, s)))
        offs.append((a + first - lo) // s)  # phase a at input row i reads rows i + off + j
    cmin = min(offs)
    n = max(o + len(t) for o, t in zip(offs, taps, strict=True)) - cmin
    idx = np.full((n, n, s, s), k * k, np.int32)
    for a in range(s):
        for b in range(s):
            for j, ky in enumerate(taps[a]):
                for jj, kx in enumerate(taps[b]):
                    idx[offs[a] - cmin + j, offs[b] - cmin + jj, a, b] = ky * k + kx
    return idx, -cmin, n - 1 + cmin


def conv_transpose_same(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """``lax.conv_transpose(x, kernel, (s, s), "SAME")`` with an HWIO kernel and no kernel flip (what
    ``nnx.ConvTranspose`` computes), as one stride-1 conv and a depth-to-space; ``x`` is NHWC."""
    k, _, c_in, c_out = kernel.shape
    s = stride
    idx, lo, hi = _transpose_taps(k, s)
    flat = jnp.concatenate([kernel.reshape(k * k, c_in, c_out), jnp.zeros((1, c_in, c_out), kernel.dtype)])
    n = idx.shape[0]
    sub = flat[idx]  # [n, n, s, s, c_in, c_out]
    sub = sub.transpose(0, 1, 4, 2, 3, 5).reshape(n, n, c_in, s * s * c_out)
    y = lax.conv_general_dilated(x, sub, (1, 1), ((lo, hi), (lo, hi)), dimension_numbers=_DN)
    b, h, w, _ = x.shape
    return y.reshape(b, h, w, s, s, c_out).transpose(0, 1, 3, 2, 4, 5).reshape(b, h * s, w * s, c_out)


@cache
def _strided_taps(k: int, s: int, pad_lo: int) -> tuple[np.ndarray, int]:
    """Static gather indices [m, m, s, s] (index ``k*k`` = zero tap) for the stride-1 conv over the s² phases of a
    stride-s conv, and that conv's low padding (in phase rows)."""
    # output i reads input rows s*i + ky - pad_lo; write r = s*(i + d) + p with phase p in [0, s)
    rows = [(ky - pad_lo) for ky in range(k)]
    d = [r // s for r in rows]
    dmin, dmax = min(d), max(d)
    m = dmax - dmin + 1
    idx = np.full((m, m, s, s), k * k, np.int32)
    for ky, ry in enumerate(rows):
        for kx, rx in enumerate(rows):
            idx[ry // s - dmin, rx // s - dmin, ry % s, rx % s] = ky * k + kx
    return idx, -dmin


def conv_strided(x: jax.Array, kernel: jax.Array, stride: int, padding: tuple[int, int]) -> jax.Array:
    """``lax.conv_general_dilated(x, kernel, (s, s), (padding, padding))`` (NHWC, HWIO) as a space-to-depth and one
    stride-1 conv. ``padding`` is the explicit (lo, hi) of the strided conv on each spatial axis."""
    k, _, c_in, c_out = kernel.shape
    s = stride
    b, h, w, _ = x.shape
    lo, hi = padding
    out_h, out_w = (h + lo + hi - k) // s + 1, (w + lo + hi - k) // s + 1
    idx, plo = _strided_taps(k, s, lo)
    m = idx.shape[0]
    # phases of the unpadded input, zero-extended to whole phase rows: row r = s*q + p
    hq, wq = -(-h // s), -(-w // s)
    xp = jnp.pad(x, ((0, 0), (0, hq * s - h), (0, wq * s - w), (0, 0)))
    xp = xp.reshape(b, hq, s, wq, s, c_in).transpose(0, 1, 3, 2, 4, 5).reshape(b, hq, wq, s * s * c_in)
    flat = jnp.concatenate([kernel.reshape(k * k, c_in, c_out), jnp.zeros((1, c_in, c_out), kernel.dtype)])
    sub = flat[idx].reshape(m, m, s * s * c_in, c_out)  # [m, m, (s, s, c_in), c_out], as xp's channels
    phi_h, phi_w = out_h + m - 1 - plo - hq, out_w + m - 1 - plo - wq
    return lax.conv_general_dilated(xp, sub, (1, 1), ((plo, phi_h), (plo, phi_w)), dimension_numbers=_DN)


def _phases_pay(k: int, s: int, pad_lo: int) -> bool:
    """Whether the space-to-depth kernel (m² taps per phase, s² phases) holds at most twice the k² real taps: true
    for 3×3 at stride 2 (16 / 9) and 7×7 at stride 4 (64 / 49); false where the stride exceeds the kernel, as in
    Liao & Poggio's 3×3 convs at stride 4 or 8 (64 or 256 / 9), which ran 20 to 30 % slower rewritten."""
    m = _strided_taps(k, s, pad_lo)[0].shape[0]
    return m * m * s * s <= 2 * k * k


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def strided_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: tuple[int, int]) -> jax.Array:
    """A stride-s conv whose forward pass is XLA's own and whose gradients are those of :func:`conv_strided`."""
    return lax.conv_general_dilated(x, kernel, (stride, stride), (padding, padding), dimension_numbers=_DN)


def _strided_conv_fwd(x, kernel, stride, padding):
    return strided_conv(x, kernel, stride, padding), (x, kernel)


def _strided_conv_bwd(stride, padding, res, g):
    _, vjp = jax.vjp(lambda x, k: conv_strided(x, k, stride, padding), *res)
    return vjp(g)


strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def max_pool_blocks(x: jax.Array, p: int) -> jax.Array:
    """``nnx.max_pool(x, (p, p), strides=(p, p), padding="SAME")`` on NHWC ``x``, with the block gradient where
    ``p`` divides the grid (see the module's docstring)."""
    if x.shape[1] % p or x.shape[2] % p or not rewrites_on():
        return nnx.max_pool(x, (p, p), strides=(p, p), padding="SAME")
    return _block_max_pool(x, p)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _block_max_pool(x: jax.Array, p: int) -> jax.Array:
    return nnx.max_pool(x, (p, p), strides=(p, p), padding="VALID")


def _block_max_pool_fwd(x, p):
    y = _block_max_pool(x, p)
    return y, (x, y)


def _block_max_pool_bwd(p, res, g):
    x, y = res
    b, h, w, c = x.shape
    blocks = x.reshape(b, h // p, p, w // p, p, c)
    hit = blocks == y[:, :, None, :, None, :]
    share = hit / jnp.sum(hit, axis=(2, 4), keepdims=True).astype(x.dtype)
    return ((share * g[:, :, None, :, None, :]).reshape(x.shape).astype(x.dtype),)


_block_max_pool.defvjp(_block_max_pool_fwd, _block_max_pool_bwd)


def conv_patches(x: jax.Array, kernel: jax.Array, padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    """A stride-1 ``lax.conv_general_dilated`` (NHWC, HWIO, explicit padding) as im2col and one matrix product."""
    kh, kw, c_in, c_out = kernel.shape
    (plo, phi), (qlo, qhi) = padding
    xp = jnp.pad(x, ((0, 0), (plo, phi), (qlo, qhi), (0, 0)))
    h, w = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    cols = jnp.concatenate([xp[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)], axis=-1)
    return cols @ kernel.reshape(kh * kw * c_in, c_out)


def _pairs(padding, n: int = 2) -> tuple[tuple[int, int], ...] | None:
    if isinstance(padding, str):
        return None
    if isinstance(padding, int):
        return ((padding, padding),) * n
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


class Conv(nnx.Conv):
    """``nnx.Conv`` that runs as :func:`conv_patches` on a map smaller than its kernel and with the phase gradients
    of :func:`strided_conv` when strided (2-D, NHWC, explicit padding, no dilation or groups); as itself elsewhere."""

    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size[0]
        strides = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides or (1, 1))
        pads = _pairs(self.padding)
        if (not rewrites_on() or pads is None or x.ndim != 4 or self.feature_group_count != 1
                or self.kernel_dilation not in (None, 1, (1, 1)) or self.input_dilation not in (None, 1, (1, 1))):
            return super().__call__(x)
        if strides == (1, 1) and (x.shape[1] < k or x.shape[2] < k):
            y = conv_patches(x, self.kernel[...], pads)
        elif strides[0] == strides[1] > 1 and k > 1 and pads[0] == pads[1] and _phases_pay(k, strides[0], pads[0][0]):
            y = strided_conv(x, self.kernel[...], strides[0], pads[0])
        else:
            return super().__call__(x)
        return y + self.bias[...] if self.bias is not None else y


class ConvTranspose(nnx.ConvTranspose):
    """``nnx.ConvTranspose`` with ``padding="SAME"`` and equal strides, as :func:`conv_transpose_same`."""

    def __call__(self, x: jax.Array) -> jax.Array:
        strides = tuple(self.strides or (1, 1))
        if not rewrites_on() or self.padding != "SAME" or strides[0] != strides[1] or x.ndim != 4 \
                or self.transpose_kernel:
            return super().__call__(x)
        y = conv_transpose_same(x, self.kernel[...], strides[0])
        return y + self.bias[...] if self.bias is not None else y

"""One fused Numba kernel for tanh fields: ``f``, ``f_and_vjp`` and the adjoint's augmented field.

The ODE solvers spend most of their time here: one call per stage. The mathematics is that
of :meth:`odejac.mlp.MLP._f` / ``_f_and_vjp`` (the NumPy reference, used for softplus, for
affine fields and under ``NUMBA_DISABLE_JIT=1``), the same feature-major layout
(``X = [hᵀ; t; 1]``, layer ``k`` the block ``[W_k; b_k]`` of θ, the batch as the long
contiguous axis), but arranged for the hardware (issue #11):

* ``tanh`` is :func:`odejac._vtanh.vtanh`, inlined into the loop over the batch that computes
  its input, so it runs as SIMD code (~1 ns a value here against ``np.tanh``'s ~1.7 ns, and no
  ``objmode`` round trip); it is a few ulp from ``np.tanh``, so results agree with the NumPy
  reference to round-off, not bit for bit.
* The thin layers (``D (+1) → n_1`` and ``n_{L-1} → D``, and their transposes in the VJP) are
  loops over the batch with one fused multiply-add per weight, not BLAS calls whose overhead
  exceeds their ~30 k flops; the square hidden layers stay BLAS GEMMs (near peak already).
* Every kernel calls :func:`odejac._vtanh.wide_vectors`, so LLVM vectorises with 512-bit
  registers on AVX-512 CPUs that it would otherwise tune for 256-bit ones (Intel's servers);
  same bits, ~15 % off an epoch on an Emerald Rapids core (benchmarks/README.md).
* ``1 − a²`` is taken from the stored activations in the loop that forms the cotangent; the
  adjoint's cotangent is negated once at its source (the products are linear in it, so this
  gives the bits of negating the results); every intermediate lives in one preallocated
  workspace, so an evaluation allocates nothing.

One jitted function serves all four uses (``mode``; for the Jacobian of the statistics and
penalties it runs the forward pass and :func:`jacobian` finishes) and takes flat contiguous
arrays only, so a fresh install compiles one specialisation of each instead of a dozen helpers.
``sizes = [n_0, ..., n_L]`` (``n_0 = D + time_dependent``, ``n_L = D``, ``L >= 2``);
``offsets[k]`` is where block ``k`` starts in θ; ``rows[k]`` the first workspace row of
``A_k = [a_kᵀ; 1]`` (``A_0 = X``), ``rows[L]`` that of the two ``(widest, B)`` cotangent
buffers and the ``(D, B)`` transpose buffer (:func:`layout`). Loops stand in for slice
assignments, which are slow to compile.
"""
import numpy as np
from numba import njit

from ._vtanh import _fma, vtanh, wide_vectors

MODE_F = 0          # f only
MODE_F_VJP = 1      # f, aᵀ∂f/∂h, Σ_b aᵀ∂f/∂θ
MODE_AUGMENTED = 2  # f, −aᵀ∂f/∂h, −Σ_b aᵀ∂f/∂θ (the adjoint's right-hand side)
MODE_JACOBIAN = 3   # J[b, i, j] = ∂f_i/∂h_j into g (B·D·D,)


def layout(sizes):
    """``(sizes, offsets, rows, n_rows)`` int64 arrays of the kernel for layer ``sizes``;
    the workspace is ``(n_rows, B)``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum((sizes[:-1] + 1) * sizes[1:])]).astype(np.int64)
    rows = np.concatenate([[0], np.cumsum(sizes[:-1] + 1)]).astype(np.int64)
    n_rows = int(rows[-1] + 2 * sizes[1:-1].max() + sizes[-1])
    return sizes, offsets, rows, n_rows


@njit(cache=True, error_model="numpy", inline="always")
def _weight(W, k, i, along_row):
    return W[k, i] if along_row else W[i, k]


@njit(cache=True, error_model="numpy")
def _affine_row(row, W, k, along_row, bias, X, n_in):
    """One output row of a thin layer over the batch: ``row[b] = bias + Σ_i w[i] X[i, b]``
    with the weights ``w = W[k, :]`` (``along_row``) or ``W[:, k]`` of a C-contiguous ``W``,
    the bias first, then one fused multiply-add per weight for ``i = 0 .. n_in − 1`` in that
    order (the first layer's ``z_1``, the output layer's ``f``, the cotangents ``δ_{L-1}`` and
    ``vjp_h`` with ``bias = 0``, the Jacobian's output column). ``X`` has ``>= n_in`` rows of
    the batch's length ``row.shape[0]``.

    Four inputs per pass over the batch, not one: the same operations in the same order per
    element (so the same bits), a quarter of the loads and stores of ``row``. A callee of its
    own, not inlined: the loop is compiled once, not at each of its five call sites; it takes
    the whole matrix, not a row or column view, so that it has one specialisation, not two
    (a strided column and a contiguous row each cost ~0.4 s of a cold start).
    """
    wide_vectors()
    B = row.shape[0]
    i = 0
    if n_in >= 4:          # the bias enters as the first FMA's addend
        w0, w1 = _weight(W, k, 0, along_row), _weight(W, k, 1, along_row)
        w2, w3 = _weight(W, k, 2, along_row), _weight(W, k, 3, along_row)
        x0, x1, x2, x3 = X[0], X[1], X[2], X[3]
        for b in range(B):
            row[b] = _fma(w3, x3[b], _fma(w2, x2[b], _fma(w1, x1[b], _fma(w0, x0[b], bias))))
        i = 4
    else:
        for b in range(B):
            row[b] = bias
    while i + 4 <= n_in:
        w0, w1 = _weight(W, k, i, along_row), _weight(W, k, i + 1, along_row)
        w2, w3 = _weight(W, k, i + 2, along_row), _weight(W, k, i + 3, along_row)
        x0, x1, x2, x3 = X[i], X[i + 1], X[i + 2], X[i + 3]
        for b in range(B):
            row[b] = _fma(w3, x3[b], _fma(w2, x2[b], _fma(w1, x1[b], _fma(w0, x0[b], row[b]))))
        i += 4
    while i < n_in:
        wi = _weight(W, k, i, along_row)
        x = X[i]
        for b in range(B):
            row[b] = _fma(wi, x[b], row[b])
        i += 1


@njit(cache=True, error_model="numpy")
def field(mode, h_flat, t, a_flat, theta, sizes, offsets, rows, time_dependent, work, f_flat,
          v_flat, g):
    """Evaluate the field (and its VJP) of ``mode`` at ``h = h_flat.reshape(B, D)``.

    Writes ``f`` into ``f_flat`` (B·D,) and, unless ``mode == MODE_F``, ``±aᵀ∂f/∂h`` into
    ``v_flat`` (B·D,) and ``±Σ_b aᵀ∂f/∂θ`` into ``g`` (P,) (``−`` for ``MODE_AUGMENTED``).
    ``work : (n_rows, B)`` is scratch.
    """
    wide_vectors()
    L = sizes.size - 1
    D = sizes[L]
    B = work.shape[1]
    by_row = B >= 0      # True, but not a literal: a constant flag would make Numba compile
    by_col = not by_row  # _affine_row once per literal value (~0.6 s each on a cold start)
    n0 = sizes[0]
    h = h_flat.reshape((B, D))
    widest = (work.shape[0] - rows[L] - D) // 2
    one = work[rows[L]:rows[L] + widest]
    two = work[rows[L] + widest:rows[L] + 2 * widest]
    tr = work[rows[L] + 2 * widest:rows[L] + 2 * widest + D]

    # ---- forward: X = [hᵀ; t; 1]
    X = work[0:n0 + 1]
    for i in range(D):
        for b in range(B):
            X[i, b] = h[b, i]
    for b in range(B):
        if time_dependent:
            X[D, b] = t
        X[n0, b] = 1.0
    # Thin first layer fused with tanh: a_1[j] = tanh(b_j + Σ_i W[i, j] x_i), over the batch.
    n1 = sizes[1]
    W = theta[offsets[0]:offsets[1]].reshape((n0 + 1, n1))
    A = work[rows[1]:rows[1] + n1 + 1]
    for j in range(n1):
        row = A[j]
        _affine_row(row, W, j, by_col, W[n0, j], X, n0)
        for b in range(B):
            row[b] = vtanh(row[b])
    for b in range(B):
        A[n1, b] = 1.0
    # Square hidden layers: one GEMM for weights and bias, then tanh over the block.
    for k in range(1, L - 1):
        n_in, n = sizes[k], sizes[k + 1]
        W = theta[offsets[k]:offsets[k + 1]].reshape((n_in + 1, n))
        nxt = work[rows[k + 1]:rows[k + 1] + n + 1]
        np.dot(W.T, A, nxt[:n])
        for j in range(n):
            row = nxt[j]
            for b in range(B):
                row[b] = vtanh(row[b])
        for b in range(B):
            nxt[n, b] = 1.0
        A = nxt
    if mode == MODE_JACOBIAN:
        return      # the activations stay in `work` for :func:`jacobian`
    # Thin output layer f = a_{L-1} W_L + b_L, as rows over the batch, then transposed.
    n = sizes[L - 1]
    W = theta[offsets[L - 1]:offsets[L]].reshape((n + 1, D))
    for i in range(D):
        _affine_row(tr[i], W, i, by_col, W[n, i], A, n)
    for b in range(B):
        for i in range(D):
            f_flat[b * D + i] = tr[i, b]
    if mode == MODE_F:
        return

    # ---- backward from δ_L = sign · a (rows over the batch, in `tr`)
    sign = -1.0 if mode == MODE_AUGMENTED else 1.0
    a = a_flat.reshape((B, D))
    for i in range(D):
        for b in range(B):
            tr[i, b] = sign * a[b, i]
    # [∂W_L; ∂b_L] = [a_{L-1}ᵀ; 1] δ_Lᵀ (a GEMM over the batch, into θ's layout)
    np.dot(A, tr.T, g[offsets[L - 1]:offsets[L]].reshape((n + 1, D)))
    # Thin: δ_{L-1} = (W_L[:-1] δ_L) ⊙ (1 − a_{L-1}²).
    delta = one[:n]
    for j in range(n):
        row = delta[j]
        _affine_row(row, W, j, by_row, 0.0, tr, D)
        act = A[j]
        for b in range(B):
            row[b] = row[b] * (1.0 - act[b] * act[b])
    in_one = True                             # δ lives in `one`; the next one goes to `two`
    for k in range(L - 2, -1, -1):
        n_in, n_out = sizes[k], sizes[k + 1]
        A = work[rows[k]:rows[k] + n_in + 1]
        np.dot(A, delta.T, g[offsets[k]:offsets[k + 1]].reshape((n_in + 1, n_out)))
        if k == 0:
            break
        W = theta[offsets[k]:offsets[k + 1]].reshape((n_in + 1, n_out))
        nxt = (two if in_one else one)[:n_in]
        np.dot(W[:n_in], delta, nxt)          # cotangent of a_k, then ⊙ (1 − a_k²)
        for j in range(n_in):
            row = nxt[j]
            act = A[j]
            for b in range(B):
                row[b] = row[b] * (1.0 - act[b] * act[b])
        delta = nxt
        in_one = not in_one
    # Thin: vjp_h = W_h δ_1, as rows over the batch, then transposed.
    W = theta[offsets[0]:offsets[1]].reshape((n0 + 1, n1))
    for i in range(D):
        _affine_row(tr[i], W, i, by_row, 0.0, delta, n1)
    for b in range(B):
        for i in range(D):
            v_flat[b * D + i] = tr[i, b]


@njit(cache=True, error_model="numpy")
def jacobian(theta, sizes, offsets, rows, work, J):
    """``J[b, i, j] = ∂f_i/∂h_j`` into ``J`` (B·D·D,) from the activations that
    :func:`field` (``MODE_JACOBIAN``) left in ``work``, by forward mode: for each input
    direction ``j`` the tangent ``u_1 = s_1 ⊙ W_h[j]``, ``u_{k+1} = s_{k+1} ⊙ (W_{k+1}ᵀ u_k)``
    (a GEMM over the batch), column ``W_Lᵀ u_{L-1}``; ``s_k = 1 − a_k²``. A dispatcher of
    its own, not called from :func:`field`: a callee is compiled once alone and once more
    inside its caller, and only the statistics and penalties need it (benchmarks/startup.py)."""
    wide_vectors()
    L = sizes.size - 1
    D = sizes[L]
    B = work.shape[1]
    by_col = B < 0       # False, not a literal (see field)
    widest = (work.shape[0] - rows[L] - D) // 2
    one = work[rows[L]:rows[L] + widest]
    two = work[rows[L] + widest:rows[L] + 2 * widest]
    tr = work[rows[L] + 2 * widest:rows[L] + 2 * widest + D]
    n1 = sizes[1]
    W = theta[offsets[0]:offsets[1]].reshape((sizes[0] + 1, n1))
    for j in range(D):
        u = one[:n1]
        act = work[rows[1]:rows[1] + n1]
        for i in range(n1):
            w = W[j, i]
            row = u[i]
            a = act[i]
            for b in range(B):
                row[b] = w * (1.0 - a[b] * a[b])
        in_one = True
        for k in range(1, L - 1):
            n_in, n = sizes[k], sizes[k + 1]
            Wk = theta[offsets[k]:offsets[k + 1]].reshape((n_in + 1, n))
            nxt = (two if in_one else one)[:n]
            np.dot(Wk[:n_in].T, u, nxt)
            act = work[rows[k + 1]:rows[k + 1] + n]
            for i in range(n):
                row = nxt[i]
                a = act[i]
                for b in range(B):
                    row[b] = row[b] * (1.0 - a[b] * a[b])
            u = nxt
            in_one = not in_one
        n = sizes[L - 1]
        WL = theta[offsets[L - 1]:offsets[L]].reshape((n + 1, D))
        for i in range(D):
            row = tr[i]
            _affine_row(row, WL, i, by_col, 0.0, u, n)
            for b in range(B):
                J[(b * D + i) * D + j] = row[b]

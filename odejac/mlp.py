"""Vector field ``f(h, t; θ)``: an MLP with hand-written first and second derivatives.

Layers ``k = 1..L`` have sizes ``[D (+1 if time_dependent), *hidden, D]``; each hidden layer is
``a_k = σ(z_k)``, ``z_k = a_{k-1} W_k + b_k`` with ``a_0 = x = [h, t]`` (``t`` is the LAST input
column) and the output layer is linear, ``f = a_{L-1} W_L + b_L``. Weights use the row-vector
convention ``W_k : (n_in, n_out)``, so the PyTorch ``nn.Linear`` weight is ``W_k.T``.
Notation below: ``W_h = W_1[:D]`` (state rows of the first layer), ``w_t = W_1[D]`` (time row),
``s_k = σ'(z_k)``, ``c_k = σ''(z_k)``, ``S_k = diag(s_k)``.

The reference code is plain NumPy. Layer ``k`` is the contiguous block ``[W_k; b_k] : (n_in + 1, n_out)``
of θ and the forward pass is feature-major with a row of ones under each activation, so ONE GEMM
applies weights and bias and ONE GEMM gives both of their gradients.

For tanh fields with a hidden layer, ``_f``, ``_f_and_vjp``, ``_jacobian`` and the adjoint's
augmented field run as ONE fused Numba kernel (:mod:`odejac._mlp_jit`, issue #11): a vectorised
tanh (:mod:`odejac._vtanh`, ≤ 3 ulp from ``np.tanh``) fused into the layer that produces its
input, thin layers as loops over the batch. At B = 256, D = 4, hidden (32, 32): ``f`` ~37 µs
(NumPy 46), ``f_and_vjp`` ~70 µs (NumPy 110), Jacobian ~110 µs (NumPy 340), 1.2–1.3x this
machine's arithmetic floor (``benchmarks/kernels.py``). The NumPy code, equal to round-off, serves
softplus, affine fields and ``NUMBA_DISABLE_JIT=1``, and is what the tests read as the reference.
"""
import numbers

import numpy as np
from numba import config

from . import _mlp_jit
from ._checks import as_real_array as _as_real_array, as_time as _as_time
from ._mlp_blocks import MatrixFreeBlocks
from ._mlp_jacobian_vjp import JacobianVJP
from ._mlp_params import ParameterLayout
from ._mlp_taylor import TaylorTerms

ACTIVATIONS = ("tanh", "softplus")


class MLP(ParameterLayout, MatrixFreeBlocks, TaylorTerms, JacobianVJP):
    """MLP vector field ``f(h, t; θ)`` with analytic Jacobian, VJPs, JVP and second-order terms.

    Parameters
    ----------
    dim : int
        State dimension ``D >= 1``.
    hidden : sequence of int
        Hidden widths (each ``>= 1``); ``()`` gives the affine field ``f = x W_1 + b_1``.
    activation : {"tanh", "softplus"}
        Hidden-layer nonlinearity; softplus is ``log(1 + e^z)`` computed stably.
    time_dependent : bool
        If True, ``t`` is appended as the last input column of the first layer.
    seed : int
        Seed for ``np.random.default_rng``. Initialisation follows PyTorch ``nn.Linear``: layer
        by layer, first ``W ~ U(-1/√n_in, 1/√n_in)`` of shape ``(n_in, n_out)`` (C order), then
        ``b ~ U(-1/√n_in, 1/√n_in)`` of shape ``(n_out,)``.

    Notes
    -----
    All parameters live in ONE flat float64 buffer laid out per layer as ``W_k.ravel()`` then
    ``b_k``; ``layers`` holds read-only ``(W, b)`` views into it, so assigning ``theta`` updates
    them with no unpacking. Gradients w.r.t. θ use the same layout (see ``param_views``).

    Batches: ``h`` is ``(B, D)``. Public methods also accept a single state ``h : (D,)``; the
    state-shaped arguments (``a``, ``v``, ``G``) and results then drop the batch axis too
    (``f -> (D,)``, ``jacobian -> (D, D)``, ...). The private unchecked twins (``_f``, ``_vjp``,
    ``_f_and_vjp``, ``_jacobian``, ``_jvp``, ``_jacobian_vjp``) take batched float64 arrays
    (``h : (B, D)`` etc., any strides) and a Python float ``t``, return batched results, and
    skip all validation (ODE-solver hot loop). Every call returns freshly allocated arrays.

    Internally layer ``k`` is the contiguous ``(n_in + 1, n_out)`` block ``[W_k; b_k]`` of θ and
    the forward pass is feature-major (activations ``(n_k, B)``), see ``_forward``.
    """

    def __init__(self, dim, hidden=(32, 32), activation="tanh", time_dependent=False, seed=0):
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
            raise ValueError(f"dim must be an integer >= 1; got {dim!r}")
        hidden = tuple(hidden)
        if any(isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1 for w in hidden):
            raise ValueError(f"hidden widths must be integers >= 1; got {hidden!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}; got {activation!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
        self.dim = int(dim)
        self.hidden = tuple(int(w) for w in hidden)
        self.activation = activation
        self.time_dependent = bool(time_dependent)
        self.sizes = (self.dim + int(self.time_dependent), *self.hidden, self.dim)
        self._tanh = activation == "tanh"
        self._theta = np.empty(sum((n_in + 1) * n_out for n_in, n_out in self._shapes()))
        # Layer k is the contiguous block [W_k; b_k] : (n_in + 1, n_out) of theta, so with a
        # row of ones appended to its input one GEMM applies weights AND bias, and one GEMM
        # gives both gradients (measured ~20 % faster than separate bias adds and sums).
        self._Wb = self._blocks(self._theta)
        rng = np.random.default_rng(seed)
        for Wb in self._Wb:
            bound = 1.0 / np.sqrt(Wb.shape[0] - 1)
            Wb[:-1] = rng.uniform(-bound, bound, size=Wb[:-1].shape)
            Wb[-1] = rng.uniform(-bound, bound, size=Wb.shape[1])
        self._bind_views()

    def _bind_views(self):
        """(Re)build every view into the one parameter buffer ``_theta``."""
        self._Wb = self._blocks(self._theta)
        self.layers = self.param_views(self._theta.view())
        for W, b in self.layers:
            W.flags.writeable = b.flags.writeable = False
        self._W_h = self._Wb[0][: self.dim]          # (D, n_1) state rows of layer 1
        # Fused kernels (odejac._mlp_jit) for tanh fields with a hidden layer; they read θ
        # flat and keep their intermediates in one workspace per batch size.
        self._jit_tanh = self._tanh and bool(self.hidden) and not config.DISABLE_JIT
        if self._jit_tanh:
            *self._layout, self._n_rows = _mlp_jit.layout(self.sizes)
        self._work = {}

    def _workspace(self, B):
        """The kernel's scratch ``(n_rows, B)`` for batch size ``B`` (kept: one MLP evaluates
        in one thread at a time, and a fresh ~300 KB buffer per call would cost page faults)."""
        work = self._work.get(B)
        if work is None:
            work = self._work[B] = np.empty((self._n_rows, B))
        return work

    def _kernel(self, mode, h, t, a, f, v, g):
        """One call of :func:`odejac._mlp_jit.field` (flat contiguous arguments)."""
        _mlp_jit.field(mode, h, t, a, self._theta, *self._layout, self.time_dependent,
                       self._workspace(h.size // self.dim), f, v, g)

    def __getstate__(self):
        # Views would be pickled as independent copies; keep the buffer only.
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_Wb", "layers", "_W_h", "_jit_tanh", "_layout", "_n_rows", "_work")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._bind_views()

    # ------------------------------------------------------------------ parameters
    # The flat θ buffer and its views: odejac._mlp_params.ParameterLayout.
    def __repr__(self):
        return (f"MLP(dim={self.dim}, hidden={self.hidden}, activation={self.activation!r}, "
                f"time_dependent={self.time_dependent}, n_params={self.n_params})")

    # ------------------------------------------------------------------ shared forward pass
    def _forward(self, h, t, need_slopes):
        """One forward pass in transposed (feature-major) layout.

        Returns ``X = [hᵀ; t; 1] : (n_0 + 1, B)``, the hidden activations ``A_k = [a_kᵀ; 1] :
        (n_k + 1, B)``, the slopes ``S_k = s_kᵀ : (n_k, B)`` (empty unless ``need_slopes``)
        and ``f : (B, D)``. Feature-major keeps the ones row contiguous, so ``tanh`` writes
        straight into ``A_k[:-1]``.
        """
        B, D = h.shape
        X = np.empty((self.sizes[0] + 1, B))
        X[:D] = h.T
        if self.time_dependent:
            X[D] = t
        X[-1] = 1.0
        A, S, prev = [], [], X
        for Wb in self._Wb[:-1]:
            Z = Wb.T @ prev
            nxt = np.empty((Z.shape[0] + 1, B))
            nxt[-1] = 1.0
            a = nxt[:-1]
            if self._tanh:
                np.tanh(Z, out=a)
                if need_slopes:                       # s = 1 - a², z no longer needed
                    s = np.multiply(a, a)
                    S.append(np.subtract(1.0, s, out=s))
            else:
                if need_slopes:
                    from scipy.special import expit   # softplus only: a 1 s import
                    S.append(expit(Z))                # σ'(z) = sigmoid(z)
                np.logaddexp(0.0, Z, out=a)           # stable log(1 + e^z)
            A.append(nxt)
            prev = nxt
        return X, A, S, prev.T @ self._Wb[-1]

    def _curvature(self, a, s):
        """``σ''(z)`` from ``a = σ(z)`` and ``s = σ'(z)``: tanh ``-2 a s``; softplus ``s (1 - s)``."""
        return -2.0 * a * s if self._tanh else s * (1.0 - s)

    # ------------------------------------------------------------------ unchecked twins
    # Same contracts as the public methods below, for h : (B, D) float64 (finite), t : float.
    def _f(self, h, t):
        if self._jit_tanh:
            f = np.empty(h.shape)
            hf = np.ascontiguousarray(h).reshape(-1)
            self._kernel(_mlp_jit.MODE_F, hf, t, hf, f.reshape(-1), hf, self._theta)
            return f
        return self._forward(h, t, need_slopes=False)[3]

    def _f_and_vjp(self, h, t, a):
        if self._jit_tanh:
            f, v, g = np.empty(h.shape), np.empty(h.shape), np.empty(self.n_params)
            self._kernel(_mlp_jit.MODE_F_VJP, np.ascontiguousarray(h).reshape(-1), t,
                         np.ascontiguousarray(a).reshape(-1), f.reshape(-1), v.reshape(-1), g)
            return f, v, g
        X, A, S, f = self._forward(h, t, need_slopes=True)
        g_theta = np.empty(self.n_params)
        grads = self._blocks(g_theta)
        inputs = [X, *A]
        np.matmul(inputs[-1], a, out=grads[-1])      # [∂W_L; ∂b_L] = [a_{L-1}ᵀ; 1] δ_L
        if not S:
            return f, a @ self._W_h.T, g_theta
        delta = self._Wb[-1][:-1] @ a.T               # cotangent of a_{L-1}, (n, B)
        for k in range(len(S) - 1, -1, -1):
            delta *= S[k]                             # now the cotangent of z_k
            np.matmul(inputs[k], delta.T, out=grads[k])
            if k > 0:
                delta = self._Wb[k][:-1] @ delta
        return f, delta.T @ self._W_h.T, g_theta

    def _vjp(self, h, t, a):
        return self._f_and_vjp(h, t, a)[1:]

    def _augmented_rhs(self, shape):
        """The adjoint's augmented field ``(t, z) -> [f, −aᵀ∂f/∂h, −Σ_b aᵀ∂f/∂θ]`` for
        ``z = [h, a, g]`` with ``h, a`` of ``shape = (B, D)``, as ONE jitted call per stage
        (tanh; :func:`odejac._mlp_jit.field`), or None (softplus, JIT off). It writes
        into one buffer, which the driver copies before the next call."""
        if not self._jit_tanh:
            return None
        B, D = shape
        n = B * D
        out = np.empty(2 * n + self.n_params)
        f, v, g = out[:n], out[n:2 * n], out[2 * n:]
        kernel, mode = _mlp_jit.field, _mlp_jit.MODE_AUGMENTED
        theta, sizes, offsets, rows = self._theta, *self._layout
        time_dependent, work = self.time_dependent, self._workspace(B)

        def rhs(t, z):
            kernel(mode, z[:n], t, z[n:2 * n], theta, sizes, offsets, rows, time_dependent,
                   work, f, v, g)
            return out
        return rhs

    def _jvp(self, h, t, v):
        _, _, S, _ = self._forward(h, t, need_slopes=True)
        U = self._W_h.T @ v.T                         # tangent of z_1, (n_1, B)
        for k, s in enumerate(S, start=1):
            U *= s
            U = self._Wb[k][:-1].T @ U
        return U.T.copy()

    def _jacobian(self, h, t):
        if self._jit_tanh:      # forward mode in the fused kernel, ~10x the NumPy code below
            B, D = h.shape
            J = np.empty((B, D, D))
            hf = np.ascontiguousarray(h).reshape(-1)
            self._kernel(_mlp_jit.MODE_JACOBIAN, hf, t, hf, hf, hf, hf)
            _mlp_jit.jacobian(self._theta, *self._layout, self._workspace(B), J.reshape(-1))
            return J
        _, _, S, _ = self._forward(h, t, need_slopes=True)
        P_L = self._chain(S)[0][-1]
        return np.ascontiguousarray(np.broadcast_to(P_L, P_L.shape[:2] + (h.shape[0],)).T)

    # ------------------------------------------------------------------ checked public API
    def _check_h(self, h):
        """``(h2, single)``: ``h`` as ``(B, D)`` float64 and whether it was given as ``(D,)``."""
        arr = np.asarray(h)
        D = self.dim
        if arr.shape != (D,) and not (arr.ndim == 2 and arr.shape[0] >= 1 and arr.shape[1] == D):
            raise ValueError(f"h has shape {arr.shape}; expected (B, {D}) with B >= 1, or ({D},)")
        arr = _as_real_array("h", arr)
        return (arr[None, :], True) if arr.ndim == 1 else (arr, False)

    @staticmethod
    def _check_like(name, x, shape, single):
        """``x`` validated to ``shape`` (the batched shape), accepting it unbatched if ``single``."""
        arr = np.asarray(x)
        expected = shape[1:] if single else shape
        if arr.shape != expected:
            raise ValueError(f"{name} has shape {arr.shape}; expected {expected} to match h")
        arr = _as_real_array(name, arr)
        return arr[None] if single else arr

    def f(self, h, t=0.0):
        """Vector field ``f = σ(... σ(h W_h + t w_t + b_1) ...) W_L + b_L``.

        Parameters
        ----------
        h : ndarray, shape (B, D) or (D,)
        t : float
            Time; only used if ``time_dependent``.

        Returns
        -------
        ndarray, shape (B, D) or (D,)
        """
        h2, single = self._check_h(h)
        out = self._f(h2, _as_time(t))
        return out[0] if single else out

    def jacobian(self, h, t=0.0):
        """State Jacobian ``J[b, i, j] = ∂f_i/∂h_j`` (t excluded).

        ``J_b = W_Lᵀ S_{L-1} W_{L-1}ᵀ ... S_1 W_hᵀ``; e.g. for two hidden layers
        ``J = W3ᵀ diag(s2) W2ᵀ diag(s1) W1[:D]ᵀ`` with ``s = σ'(z)`` (``1 - tanh²`` for tanh).

        Returns
        -------
        ndarray, shape (B, D, D) or (D, D)
        """
        h2, single = self._check_h(h)
        J = self._jacobian(h2, _as_time(t))
        return J[0] if single else J

    def vjp(self, h, t, a):
        """Vector-Jacobian products ``(aᵀ ∂f/∂h, Σ_b a_bᵀ ∂f_b/∂θ)`` by backpropagation.

        With ``δ_L = a`` and ``δ_k = (δ_{k+1} W_{k+1}ᵀ) ⊙ s_k``: ``∂/∂W_k = a_{k-1}ᵀ δ_k``
        (time row ``t Σ_b δ_1``), ``∂/∂b_k = Σ_b δ_k`` and ``vjp_h = δ_1 W_hᵀ = J_bᵀ a_b``.

        Parameters
        ----------
        h, a : ndarray, shape (B, D) or (D,)
        t : float

        Returns
        -------
        vjp_h : ndarray, shape (B, D) or (D,)
        vjp_theta : ndarray, shape (P,)
            Summed over the batch, in the ``theta`` layout.
        """
        h2, single = self._check_h(h)
        a2 = self._check_like("a", a, h2.shape, single)
        g_h, g_theta = self._vjp(h2, _as_time(t), a2)
        return (g_h[0] if single else g_h), g_theta

    def f_and_vjp(self, h, t, a):
        """``(f, vjp_h, vjp_theta)`` from ONE forward pass; see ``f`` and ``vjp``.

        This is the per-evaluation work of the adjoint backward solve.

        Returns
        -------
        f, vjp_h : ndarray, shape (B, D) or (D,)
        vjp_theta : ndarray, shape (P,)
        """
        h2, single = self._check_h(h)
        a2 = self._check_like("a", a, h2.shape, single)
        f, g_h, g_theta = self._f_and_vjp(h2, _as_time(t), a2)
        return (f[0], g_h[0], g_theta) if single else (f, g_h, g_theta)

    def jvp(self, h, t, v):
        """Jacobian-vector product ``J_b v_b`` by forward mode, without forming ``J``.

        ``u_1 = v W_h``, ``u_{k+1} = (u_k ⊙ s_k) W_{k+1}``, result ``u_L``.

        Returns
        -------
        ndarray, shape (B, D) or (D,)
        """
        h2, single = self._check_h(h)
        v2 = self._check_like("v", v, h2.shape, single)
        out = self._jvp(h2, _as_time(t), v2)
        return out[0] if single else out

    def jacobian_vjp(self, h, t, G):
        """Gradients of ``R = Σ_b Σ_ij G[b,i,j] J[b,i,j]`` w.r.t. θ and h (second-order terms).

        With ``G = ∂R/∂J`` from a Jacobian regulariser this gives ``dR/dθ`` and ``dR/dh``.
        Writing ``Jᵀ = P_L``, ``P_1 = W_h``, ``T_k = P_k S_k``, ``P_{k+1} = T_k W_{k+1}``, the
        reverse sweep over the chain with ``Λ_L = Gᵀ`` is ``∂R/∂W_{k+1} ∋ Σ_b T_kᵀ Λ_{k+1}``,
        ``Γ_k = Λ_{k+1} W_{k+1}ᵀ``, ``r_k = Σ_j P_k ⊙ Γ_k`` (``= ∂R/∂s_k``),
        ``Λ_k = Γ_k S_k`` and finally ``∂R/∂W_h ∋ Σ_b Λ_1``. The slopes depend on the state
        through ``s_k = σ'(z_k)``, so ``r_k ⊙ σ''(z_k)`` is injected as a cotangent on ``z_k``
        and backpropagated as in ``vjp`` to the parameters and to ``h``. ``b_L`` gets zero.

        Parameters
        ----------
        h : ndarray, shape (B, D) or (D,)
        t : float
        G : ndarray, shape (B, D, D) or (D, D)

        Returns
        -------
        g_theta : ndarray, shape (P,)
            Summed over the batch, in the ``theta`` layout.
        g_h : ndarray, shape (B, D) or (D,)
        """
        h2, single = self._check_h(h)
        G2 = self._check_like("G", G, h2.shape + (self.dim,), single)
        g_theta, g_h = self._jacobian_vjp(h2, _as_time(t), G2)
        return g_theta, (g_h[0] if single else g_h)

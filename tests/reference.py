"""Slow, obvious reference implementations used by the tests.

Each block is prefixed by the module it checks (``mlp_`` for ``odejac/mlp.py``). These favour
transparency over speed: per-sample loops, explicit matrix chains, complex-step derivatives.
"""
import numpy as np

# ---------------------------------------------------------------------------------------- mlp
# The MLP references take the model only for its configuration (sizes, activation,
# time_dependent) and unpack ``theta`` themselves, so a layout bug in the model is caught.
# They work for complex ``theta`` / ``h`` too (tanh, log(1 + e^z), transposes, never conj or
# abs), which the complex-step references rely on.

MLP_COMPLEX_STEP = 1e-30  # complex-step size: no subtractive cancellation, so it can be tiny


def mlp_unpack(model, theta):
    """List of ``(W (n_in, n_out), b (n_out,))`` copies read off ``theta`` one by one."""
    layers, i = [], 0
    for n_in, n_out in zip(model.sizes[:-1], model.sizes[1:]):
        W = np.array([[theta[i + r * n_out + c] for c in range(n_out)] for r in range(n_in)])
        i += n_in * n_out
        b = np.array([theta[i + c] for c in range(n_out)])
        i += n_out
        layers.append((W, b))
    assert i == len(theta)
    return layers


def mlp_sigma(model, z):
    """Activation ``σ(z)``: ``tanh`` or ``log(1 + e^z)`` (naive; fine for moderate ``z``)."""
    return np.tanh(z) if model.activation == "tanh" else np.log(1.0 + np.exp(z))


def mlp_dsigma(model, z):
    """``σ'(z)``: ``1 - tanh²`` or the logistic sigmoid ``1 / (1 + e^{-z})``."""
    return 1.0 - np.tanh(z) ** 2 if model.activation == "tanh" else 1.0 / (1.0 + np.exp(-z))


def _mlp_input(model, h_b, t):
    return np.concatenate([h_b, [t]]) if model.time_dependent else h_b


def mlp_f(model, h, t, theta=None):
    """``f(h, t)`` one sample at a time: ``(B, D)``."""
    layers = mlp_unpack(model, model.theta if theta is None else theta)
    out = []
    for h_b in h:
        x = _mlp_input(model, h_b, t)
        for k, (W, b) in enumerate(layers):
            z = W.T @ x + b
            x = z if k == len(layers) - 1 else mlp_sigma(model, z)
        out.append(x)
    return np.array(out)


def mlp_jacobian(model, h, t, theta=None):
    """``J_b = W_Lᵀ diag(s_{L-1}) ... diag(s_1) W_1[:D]ᵀ`` as an explicit product per sample."""
    layers = mlp_unpack(model, model.theta if theta is None else theta)
    D = model.dim
    out = []
    for h_b in h:
        x = _mlp_input(model, h_b, t)
        factors = []  # right-most factor first
        for k, (W, b) in enumerate(layers):
            Wh = W[:D] if k == 0 else W
            factors.append(Wh.T)
            z = W.T @ x + b
            if k < len(layers) - 1:
                factors.append(np.diag(mlp_dsigma(model, z)))
                x = mlp_sigma(model, z)
        J = np.eye(D)
        for F in factors:
            J = F @ J
        out.append(J)
    return np.array(out)


def mlp_vjp(model, h, t, a):
    """``(J_bᵀ a_b, Σ_b ∂(a_b·f_b)/∂θ)``; the θ part by per-sample backprop with outer products."""
    layers = mlp_unpack(model, model.theta)
    J = mlp_jacobian(model, h, t)
    vjp_h = np.array([J[b].T @ a[b] for b in range(len(h))])
    grads = [(np.zeros_like(W), np.zeros_like(b)) for W, b in layers]
    for h_b, a_b in zip(h, a):
        xs, ds = [_mlp_input(model, h_b, t)], []
        for W, b in layers[:-1]:
            z = W.T @ xs[-1] + b
            ds.append(mlp_dsigma(model, z))
            xs.append(mlp_sigma(model, z))
        delta = a_b
        for k in range(len(layers) - 1, -1, -1):
            grads[k][0][...] += np.outer(xs[k], delta)
            grads[k][1][...] += delta
            if k > 0:
                delta = (layers[k][0] @ delta) * ds[k - 1]
    vjp_theta = np.concatenate([np.concatenate([gW.ravel(), gb]) for gW, gb in grads])
    return vjp_h, vjp_theta


def mlp_complex_step_grad(fun, x):
    """Gradient of a real-analytic scalar ``fun`` at real ``x`` (any shape) by complex step."""
    x = np.asarray(x, dtype=float)
    grad = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        xc = x.astype(complex)
        xc[idx] += 1j * MLP_COMPLEX_STEP
        grad[idx] = np.imag(fun(xc)) / MLP_COMPLEX_STEP
    return grad


def mlp_jacobian_vjp(model, h, t, G):
    """``(∂R/∂θ, ∂R/∂h)`` of ``R = Σ G ⊙ J``, by complex step through ``mlp_jacobian``."""
    theta = model.theta
    g_theta = mlp_complex_step_grad(lambda th: np.sum(G * mlp_jacobian(model, h, t, th)), theta)
    g_h = mlp_complex_step_grad(lambda hh: np.sum(G * mlp_jacobian(model, hh, t, theta)), h)
    return g_theta, g_h


# -- helpers of the docs-formula tests (tests/test_docs_*.py) ---------------------------------

def docs_fd(fun, x, v, step):
    """Central difference of ``fun`` at ``x`` along ``v``."""
    return (fun(x + step * v) - fun(x - step * v)) / (2 * step)


def docs_with_theta(field, theta, fun):
    """``fun()`` evaluated with ``field.theta = theta``; the old θ is restored after."""
    saved = field.theta
    field.theta = theta
    try:
        return fun()
    finally:
        field.theta = saved

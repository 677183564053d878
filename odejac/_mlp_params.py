"""Where the MLP's parameters live: one flat θ buffer and the per-layer views into it.

A mixin of :class:`odejac.mlp.MLP`, kept apart so that ``mlp.py`` stays one readable file and
the parameter layout (which every gradient, the optimiser and the saved ``params.npz`` share) is
stated in one place. Layer ``k`` is the contiguous block ``[W_k; b_k] : (n_in + 1, n_out)`` of
θ, i.e. ``W_k.ravel()`` then ``b_k``; gradients w.r.t. θ use the same layout.
"""
import numpy as np

from ._checks import as_real_array as _as_real_array


class ParameterLayout:
    """The flat parameter vector θ, its per-layer blocks and ``(W, b)`` views (mixin).

    Needs ``sizes`` (layer widths) and ``_theta`` (the ``(P,)`` float64 buffer) on the instance.
    """

    def _shapes(self):
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    def _blocks(self, vec):
        """Views ``[W_k; b_k] : (n_in + 1, n_out)`` of a flat ``(P,)`` vector, one per layer."""
        blocks, offset = [], 0
        for n_in, n_out in self._shapes():
            blocks.append(vec[offset: offset + (n_in + 1) * n_out].reshape(n_in + 1, n_out))
            offset += (n_in + 1) * n_out
        return blocks

    def param_views(self, vec):
        """Split a flat ``(P,)`` vector (θ or a gradient) into a list of ``(W, b)`` views."""
        return [(Wb[:-1], Wb[-1]) for Wb in self._blocks(vec)]

    @property
    def n_params(self):
        """Number of parameters ``P = Σ_k (n_in + 1) n_out``."""
        return self._theta.size

    @property
    def theta(self):
        """Flat parameters ``(P,)``. Reading returns a copy; assigning validates and copies in."""
        return self._theta.copy()

    @theta.setter
    def theta(self, value):
        arr = np.asarray(value)
        if arr.shape != (self.n_params,):
            raise ValueError(f"theta has shape {arr.shape}; expected ({self.n_params},)")
        self._theta[...] = _as_real_array("theta", arr)

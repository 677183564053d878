"""The diffrax side of ``benchmarks/vs_diffrax.py``; runs ONLY in the JAX venv (jax, diffrax, optax).

    python _diffrax_peer.py SETUP.npz RESULT.json

``SETUP.npz`` (written by vs_diffrax.py) holds the data, odejac's initial weights, the batch
orders of every epoch and the settings; the peer trains with them and writes a JSON record:
per-epoch wall time (the first epoch includes XLA compilation), the process's time from start
to the end of its first epoch, and the field evaluations of every batch, counted in a second
run of the same epochs (the counting callback is kept out of the timed run).

The model is odejac's: field ``D -> hidden (tanh) -> D`` without time input, readout
``D -> C``, cross-entropy, optional ``λ · mean κ(J(h(t0)))`` (``jax.jacfwd`` + ``svd``);
``diffeqsolve(Dopri5, PIDController(rtol, atol), BacksolveAdjoint)`` on ``[0, 1]``, float64,
Adam (optax), the whole training step under one ``jax.jit``, one thread.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")
PROCESS_START = __import__("time").perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import diffrax  # noqa: E402
import optax  # noqa: E402

COUNT = [0]


def _tick():
    COUNT[0] += 1


def field(layers, h, count=False):
    """``f(h)``: tanh MLP on a batch ``(B, D)``; ``count`` ticks a host counter per call."""
    if count:
        jax.debug.callback(_tick)
    for k, (W, b) in enumerate(layers):
        h = h @ W + b
        if k < len(layers) - 1:
            h = jnp.tanh(h)
    return h


def make_step(settings, count):
    rtol, atol = float(settings["rtol"]), float(settings["atol"])
    lam, reg = float(settings["lam"]), str(settings["reg"])
    term = diffrax.ODETerm(lambda t, y, args: field(args, y, count))
    solver, adjoint = diffrax.Dopri5(), diffrax.BacksolveAdjoint()
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    optimiser = optax.adam(float(settings["lr"]))

    def loss_fn(params, h0, y):
        layers, (W_out, b_out) = params
        sol = diffrax.diffeqsolve(term, solver, t0=0.0, t1=1.0, dt0=None, y0=h0, args=layers,
                                  stepsize_controller=controller, adjoint=adjoint,
                                  saveat=diffrax.SaveAt(t1=True), max_steps=100_000)
        logits = sol.ys[-1] @ W_out + b_out
        loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))
        if reg == "condition":
            J = jax.vmap(jax.jacfwd(lambda x: field(layers, x[None])[0]))(h0)
            s = jnp.linalg.svd(J, compute_uv=False)
            loss = loss + lam * jnp.mean(s[:, 0] / s[:, -1])
        return loss

    @jax.jit
    def step(params, opt_state, h0, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, h0, y)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step, optimiser


def train(setup, count):
    """Every epoch of the setup; per-epoch seconds and, with ``count``, NFE per batch."""
    n_layers = int(setup["n_layers"])
    layers = [(jnp.asarray(setup[f"W{k}"]), jnp.asarray(setup[f"b{k}"]))
              for k in range(n_layers)]
    params = (layers, (jnp.asarray(setup["W_out"]), jnp.asarray(setup["b_out"])))
    settings = {key: setup[key].item() for key in ("rtol", "atol", "lam", "reg", "lr")}
    step, optimiser = make_step(settings, count)
    opt_state = optimiser.init(params)
    X, y = np.asarray(setup["X"]), np.asarray(setup["y"])
    h_all = np.concatenate([X, np.zeros((len(X), int(setup["augment_dim"])))], axis=1)
    batch = int(setup["batch_size"])
    times, cpu, nfe, losses, first_end = [], [], [], [], None
    for order in np.asarray(setup["orders"]):
        start, cpu_start = time.perf_counter(), time.process_time()
        epoch_nfe = []
        for first in range(0, len(order), batch):
            idx = order[first:first + batch]
            before = COUNT[0]
            params, opt_state, loss = step(params, opt_state, jnp.asarray(h_all[idx]),
                                           jnp.asarray(y[idx]))
            if count:
                jax.effects_barrier()
                epoch_nfe.append(COUNT[0] - before)
        jax.block_until_ready(params)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        first_end = first_end or time.perf_counter()
        losses.append(float(loss))
        nfe.append(epoch_nfe)
    return times, cpu, nfe, losses, first_end


def main(setup_path, result_path):
    setup = np.load(setup_path)
    times, cpu, _, losses, first_end = train(setup, count=False)
    _, _, nfe, _, _ = train(setup, count=True)
    record = {"versions": {"jax": jax.__version__, "diffrax": diffrax.__version__,
                           "optax": optax.__version__},
              "epoch_seconds": times, "epoch_cpu_seconds": cpu, "nfe_per_batch": nfe,
              "last_loss": losses,
              "process_seconds_to_first_epoch_end": first_end - PROCESS_START}
    with open(result_path, "w") as fh:
        json.dump(record, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

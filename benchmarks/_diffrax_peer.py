"""The diffrax side of ``vs_diffrax.py`` and ``scaling.py``; runs ONLY in the JAX venv (jax, diffrax, optax).

    python _diffrax_peer.py [--dtype float32] SETUP.npz RESULT.json   # one training run
    python _diffrax_peer.py [--dtype float32] --serve                  # line protocol

One run: ``SETUP.npz`` (written by vs_diffrax.py) holds the data, odejac's initial weights,
the batch orders of every epoch and the settings; the peer trains with them and writes a JSON
record: per-epoch wall and process CPU time (the first epoch includes XLA compilation), the
process's time from start to the end of its first epoch, and the field evaluations of every
batch, counted in a second run of the same epochs (the counting callback is kept out of the
timed run).

``--serve`` (scaling.py) reads one JSON command per line and answers one JSON line, like
``_torch_peer.py``: ``hello``; ``field_setup`` (dim, hidden, batch, seed: the weights and inputs
of :func:`common.random_field` / :func:`common.field_inputs`); ``field_time`` (kind ``f``,
``vjp``, ``f_loop`` or ``vjp_loop``; ``inner`` calls) -> process CPU seconds per evaluation;
``gemm`` -> best DGEMM/SGEMM rate of ``jnp.dot`` on n × n; ``tanh`` -> XLA's ns per
value of ``tanh`` on n values; ``train_setup`` (an npz path as in
one run, without orders) and ``train_epoch`` (``order``) -> CPU and wall seconds of the timed
steps and the field evaluations of each batch (counted by a separately compiled step on the
same inputs, untimed); ``quit``.

The model is odejac's: field ``D -> hidden (tanh) -> D`` without time input, readout
``D -> C``, cross-entropy, optional ``λ · mean κ(J(h(t0)))`` (``jax.jacfwd`` + ``svd``);
``diffeqsolve(Dopri5, PIDController(rtol, atol), BacksolveAdjoint)`` on ``[0, 1]``, Adam
(optax), the whole training step under one ``jax.jit``, XLA on one thread. float64 unless
``--dtype float32`` (then x64 stays off, so nothing is silently promoted).
"""
import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")
PROCESS_START = __import__("time").perf_counter()
DTYPE = "float32" if "--dtype" in sys.argv and sys.argv[sys.argv.index("--dtype") + 1] == "float32" \
    else "float64"

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import jax  # noqa: E402

jax.config.update("jax_enable_x64", DTYPE == "float64")
import jax.numpy as jnp  # noqa: E402
import diffrax  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import field_inputs, random_field  # noqa: E402  (numpy only)

COUNT = [0]


def _tick():
    COUNT[0] += 1


def _array(x):
    return jnp.asarray(np.asarray(x, dtype=DTYPE))


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


class Trainer:
    """A training run from a setup file: the timed step and a counting twin."""

    def __init__(self, setup):
        n_layers = int(setup["n_layers"])
        layers = [(_array(setup[f"W{k}"]), _array(setup[f"b{k}"])) for k in range(n_layers)]
        self.params = (layers, (_array(setup["W_out"]), _array(setup["b_out"])))
        settings = {key: setup[key].item() for key in ("rtol", "atol", "lam", "reg", "lr")}
        self.step, optimiser = make_step(settings, count=False)
        self.count_step, _ = make_step(settings, count=True)
        self.opt_state = optimiser.init(self.params)
        X, self.y = np.asarray(setup["X"]), np.asarray(setup["y"])
        self.h_all = np.concatenate([X, np.zeros((len(X), int(setup["augment_dim"])))],
                                    axis=1).astype(DTYPE)
        self.batch = int(setup["batch_size"])

    def epoch(self, order, count=True):
        """One epoch in ``order``: CPU and wall seconds of the timed steps, NFE per batch."""
        cpu = wall = 0.0
        nfe, loss = [], None
        for first in range(0, len(order), self.batch):
            idx = np.asarray(order[first:first + self.batch])
            h0, y = jnp.asarray(self.h_all[idx]), jnp.asarray(self.y[idx])
            if count:   # same inputs, outputs dropped: the evaluations the timed step makes
                before = COUNT[0]
                jax.block_until_ready(self.count_step(self.params, self.opt_state, h0, y))
                jax.effects_barrier()
                nfe.append(COUNT[0] - before)
            start, cpu_start = time.perf_counter(), time.process_time()
            self.params, self.opt_state, loss = jax.block_until_ready(
                self.step(self.params, self.opt_state, h0, y))
            cpu += time.process_time() - cpu_start
            wall += time.perf_counter() - start
        return {"cpu": cpu, "time": wall, "nfe_per_batch": nfe, "loss": float(loss)}


def train(setup, count):
    """Every epoch of the setup (one run): per-epoch seconds and, with ``count``, NFE per batch."""
    trainer = Trainer(setup)
    trainer.step = trainer.count_step if count else trainer.step
    times, cpu, nfe, losses, first_end = [], [], [], [], None
    for order in np.asarray(setup["orders"]):
        start, cpu_start = time.perf_counter(), time.process_time()
        epoch_nfe = []
        for first in range(0, len(order), trainer.batch):
            idx = order[first:first + trainer.batch]
            before = COUNT[0]
            trainer.params, trainer.opt_state, loss = trainer.step(
                trainer.params, trainer.opt_state, jnp.asarray(trainer.h_all[idx]),
                jnp.asarray(trainer.y[idx]))
            if count:
                jax.effects_barrier()
                epoch_nfe.append(COUNT[0] - before)
        jax.block_until_ready(trainer.params)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        first_end = first_end or time.perf_counter()
        losses.append(float(loss))
        nfe.append(epoch_nfe)
    return times, cpu, nfe, losses, first_end


def _versions():
    return {"jax": jax.__version__, "diffrax": diffrax.__version__, "optax": optax.__version__,
            "dtype": DTYPE}


def one_run(setup_path, result_path):
    setup = np.load(setup_path)
    times, cpu, _, losses, first_end = train(setup, count=False)
    _, _, nfe, _, _ = train(setup, count=True)
    record = {"versions": _versions(),
              "epoch_seconds": times, "epoch_cpu_seconds": cpu, "nfe_per_batch": nfe,
              "last_loss": losses,
              "process_seconds_to_first_epoch_end": first_end - PROCESS_START}
    with open(result_path, "w") as fh:
        json.dump(record, fh)


class Fields:
    """Bare evaluations of the field for ``scaling.py``: jitted calls and jitted loops."""

    def setup(self, msg):
        layers = random_field(msg["dim"], msg["hidden"], msg["seed"])
        # common.random_field is in PyTorch layout (n_out, n_in); this field multiplies h @ W
        self.layers = [(_array(W.T), _array(b)) for W, b in layers]
        h, a = field_inputs(msg["dim"], msg["batch"], msg["seed"])
        self.h, self.a = _array(h), _array(a)
        f = jax.jit(field)

        def f_and_vjp(layers, h, a):
            out, pullback = jax.vjp(field, layers, h)
            g_layers, g_h = pullback(a)
            return out, g_h, g_layers

        vjp = jax.jit(f_and_vjp)
        step = 1e-3   # the loops feed each result back, so XLA can neither hoist nor drop work

        @jax.jit
        def f_loop(layers, h, n):
            return jax.lax.fori_loop(0, n, lambda i, x: x + step * field(layers, x), h)

        @jax.jit
        def vjp_loop(layers, h, a, n):
            def body(i, carry):
                x, c, acc = carry
                out, g_h, g_layers = f_and_vjp(layers, x, c)
                acc = jax.tree_util.tree_map(lambda s, g: s + step * g, acc, g_layers)
                return x + step * out, c + step * g_h, acc
            return jax.lax.fori_loop(0, n, body, (h, a, layers))

        # "f", "vjp": one jitted call per evaluation, each waited for (dispatch included, as
        # a solver driven from Python would pay it); "*_loop": n evaluations in one XLA loop,
        # as inside diffeqsolve
        self.calls = {"f": lambda n: [jax.block_until_ready(f(self.layers, self.h))
                                      for _ in range(n)][-1],
                      "vjp": lambda n: [jax.block_until_ready(vjp(self.layers, self.h, self.a))
                                        for _ in range(n)][-1],
                      "f_loop": lambda n: f_loop(self.layers, self.h, n),
                      "vjp_loop": lambda n: vjp_loop(self.layers, self.h, self.a, n)}
        return {"ok": True}

    def time(self, msg):
        """Process CPU seconds per evaluation over ``inner`` evaluations (compiled first)."""
        call, inner = self.calls[msg["kind"]], int(msg["inner"])
        jax.block_until_ready(call(inner))
        start = time.process_time()
        jax.block_until_ready(call(inner))
        return {"cpu": (time.process_time() - start) / inner}


def gemm(n, repeats=15, inner=20):
    """Best one-thread rate of a jitted ``jnp.dot`` on n × n × n, GFLOP/s.

    XLA runs the product on a worker thread whose CPU time the process clock only catches
    up with at scheduler ticks, so blocks of ``inner`` products are timed, never one call.
    """
    rng = np.random.default_rng(0)
    P, Q = _array(rng.standard_normal((n, n))), _array(rng.standard_normal((n, n)))
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(P, Q))
    best = np.inf
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(inner):
            out = dot(P, Q)
        jax.block_until_ready(out)
        best = min(best, (time.process_time() - start) / inner)
    return {"gflops": 2.0 * n ** 3 / best / 1e9}


def tanh_cost(n_values, repeats=7, inner=50):
    """Best ns per value of XLA's ``tanh`` on ``n_values`` doubles, ``inner`` in one loop."""
    x0 = _array(np.random.default_rng(0).standard_normal(n_values) * 2.0)
    loop = jax.jit(lambda x, n: jax.lax.fori_loop(0, n, lambda i, v: jnp.tanh(v), x))
    jax.block_until_ready(loop(x0, inner))
    best = np.inf
    for _ in range(repeats):
        start = time.process_time()
        jax.block_until_ready(loop(x0, inner))
        best = min(best, (time.process_time() - start) / inner)
    return {"ns_per_value": best / n_values * 1e9}


def serve():
    fields, trainer = Fields(), None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            cmd = msg["cmd"]
            if cmd == "hello":
                reply = _versions()
            elif cmd == "field_setup":
                reply = fields.setup(msg)
            elif cmd == "field_time":
                reply = fields.time(msg)
            elif cmd == "gemm":
                reply = gemm(int(msg.get("n", 256)))
            elif cmd == "tanh":
                reply = tanh_cost(int(msg["n"]))
            elif cmd == "train_setup":
                trainer = Trainer(np.load(msg["path"]))
                reply = {"ok": True}
            elif cmd == "train_epoch":
                reply = trainer.epoch(msg["order"])
            elif cmd == "quit":
                print(json.dumps({"ok": True}), flush=True)
                return
            else:
                reply = {"error": f"unknown command {cmd!r}"}
        except Exception as exc:  # report to the driver instead of dying silently
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    positional = [a for i, a in enumerate(sys.argv[1:], 1)
                  if not a.startswith("--") and sys.argv[i - 1] != "--dtype"]
    if "--serve" in sys.argv:
        serve()
    else:
        one_run(*positional)

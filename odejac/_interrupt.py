"""Ctrl-C that never unwinds the jitted solver: a SIGINT handler for the command line.

A KeyboardInterrupt raised while the jitted driver is calling back into Python
(its ``objmode`` trampoline) surfaces as an unrelated error (``TypeError:
_call_rhs expected 3 arguments``, ``SystemError: ... returned a result with an
exception set``). The command line installs :func:`handler`; library code
wraps its solves in :func:`shielded`, inside which a SIGINT is only recorded
and raised as KeyboardInterrupt when the block ends. Without the handler
(plain library use) :func:`shielded` changes nothing.
"""
import contextlib
import signal

_state = {"depth": 0, "requested": False}


def handler(signum, frame):
    """SIGINT handler: raise KeyboardInterrupt now, or at the end of a shielded block."""
    _state["requested"] = True
    if _state["depth"] == 0:
        raise KeyboardInterrupt


def install():
    """Install :func:`handler` for SIGINT (main thread of the command line only)."""
    _state.update(depth=0, requested=False)
    signal.signal(signal.SIGINT, handler)


def requested():
    """Whether a SIGINT arrived since :func:`install`."""
    return _state["requested"]


@contextlib.contextmanager
def shielded():
    """Defer a SIGINT that arrives inside the block to its end (with :func:`handler`)."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0 and _state["requested"] and \
                signal.getsignal(signal.SIGINT) is handler:
            raise KeyboardInterrupt

"""gradlint: autograd diagnostics for PyTorch.

Importing this package never imports torch: the static analyzer (``gradlint check``)
must run in environments without it.  The runtime API (``trace``, ``render``) is
resolved lazily on first attribute access.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "trace", "render"]


def __getattr__(name):
    # Lazy so that `import gradlint` stays torch-free (PEP 562).
    if name == "trace":
        from gradlint.runtime import trace

        return trace
    if name == "render":
        from gradlint.render import render

        return render
    raise AttributeError(f"module 'gradlint' has no attribute {name!r}")


def load_ipython_extension(ipython):  # pragma: no cover - thin delegation
    from gradlint.notebook import load_ipython_extension as _load

    _load(ipython)

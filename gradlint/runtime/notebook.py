"""IPython integration: ``%load_ext gradlint`` then ``%%gradlint_trace`` traces a cell and displays the report."""

from __future__ import annotations


def load_ipython_extension(ipython):
    from IPython.core.magic import register_cell_magic  # noqa: F401  (import check)

    def gradlint_trace(line, cell):
        import shlex

        from gradlint.runtime import trace

        opts = {}
        for tok in shlex.split(line or ""):
            if "=" in tok:
                k, v = tok.split("=", 1)
                try:
                    v = int(v)
                except ValueError:
                    v = {"True": True, "False": False}.get(v, v)
                opts[k] = v
        t = trace(**opts)
        with t:
            ipython.run_cell(cell)
        ipython.user_ns["_gradlint_trace"] = t
        return t

    ipython.register_magic_function(gradlint_trace, magic_kind="cell", magic_name="gradlint_trace")

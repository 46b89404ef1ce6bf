"""Kept for compatibility: the IPython integration lives in :mod:`gradlint.notebook`."""

from __future__ import annotations


def load_ipython_extension(ipython):
    from gradlint.notebook import load_ipython_extension as _load

    _load(ipython)

"""Selector resolution in isolation (codes, prefixes, ALL, layers, specificity)."""

import pytest

from gradlint.static.selection import (
    SelectionError,
    SelectionLayer,
    check_selectors,
    path_matches,
    resolve,
    rules_for_file,
)


def codes(layers, rules):
    return [r.code for r in resolve(layers, rules)]


def test_defaults_are_default_enabled_rules(test_registry):
    assert codes([], test_registry) == ["GL901", "GL902"]


def test_layers(test_registry):
    config = SelectionLayer(select=["GL901"], ignore=[])
    assert codes([config, SelectionLayer()], test_registry) == ["GL901"]
    assert codes([config, SelectionLayer(extend_select=["GL902"])], test_registry) == ["GL901", "GL902"]
    assert codes([config, SelectionLayer(select=["GL902"])], test_registry) == ["GL902"]
    assert codes(
        [SelectionLayer(ignore=["GL9"]), SelectionLayer(extend_select=["GL902"])], test_registry
    ) == ["GL902"]


def test_specificity_and_ties(test_registry):
    assert codes([SelectionLayer(select=["GL9"], ignore=["GL901"])], test_registry) == ["GL902"]
    assert codes([SelectionLayer(select=["GL901"], ignore=["GL9"])], test_registry) == ["GL901"]
    assert codes([SelectionLayer(select=["GL901"], ignore=["GL901"])], test_registry) == []
    assert codes([SelectionLayer(select=["ALL"], ignore=["GL95"])], test_registry) == ["GL901", "GL902"]


def test_off_by_default_needs_exact_code_or_all(test_registry):
    assert codes([SelectionLayer(select=["GL95"])], test_registry) == []
    assert codes([SelectionLayer(select=["GL950"])], test_registry) == ["GL950"]
    assert codes([SelectionLayer(select=["all"])], test_registry) == ["GL901", "GL902", "GL950"]


def test_case_insensitive_and_unknown(test_registry):
    assert codes([SelectionLayer(select=["gl901"])], test_registry) == ["GL901"]
    for bad in ["GL999", "GL8", "XY", "", "GL-1", "ALLX"]:
        with pytest.raises(SelectionError, match="unknown rule selector"):
            check_selectors([bad], test_registry)
    check_selectors(["GL000", "GL", "GL0"], test_registry)  # GL000 is a known (if unignorable) code


@pytest.mark.parametrize(
    "pattern, path, expected",
    [
        ("tests", "/p/tests/a.py", True),
        ("tests", "/p/src/tests_x/a.py", False),
        ("*_pb2.py", "/p/gen/x_pb2.py", True),
        ("src/gen", "/p/src/gen/a.py", True),
        ("src/gen", "/p/other/src/gen/a.py", False),
        ("src/*", "/p/src/deep/a.py", True),
        ("**/test_*.py", "/p/test_a.py", True),
        ("**/test_*.py", "/p/x/y/test_a.py", True),
        ("./a.py", "/p/a.py", True),
        ("/p/a.py", "/p/a.py", True),
        ("p", "/p/a.py", False),  # folders above the project root do not count
        ("build", "/tmp/build/proj/a.py", True),  # outside the root: every component
    ],
)
def test_path_matches(pattern, path, expected):
    assert path_matches(pattern, path, "/p") is expected


def test_rules_for_file(test_registry):
    assert [r.code for r in rules_for_file(test_registry, ["GL90"])] == ["GL950"]
    assert rules_for_file(test_registry, []) == list(test_registry)

"""SARIF 2.1.0 output: required structure, and schema validation when jsonschema is installed."""

import json
from pathlib import Path

import pytest
from test_check import BACKWARD, write

SCHEMA = Path(__file__).with_name("sarif_2_1_0_subset.schema.json")


def sarif(run, *args):
    r = run("--output-format", "sarif", "--no-cache", *args)
    return r, json.loads(r.stdout)


def test_sarif_structure(project, run):
    write(project, "src/a.py", BACKWARD)
    write(project, "b.py", "print(\n")
    r, log = sarif(run, ".")
    assert r.exit_code == 1
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run_,) = log["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "gradlint"
    ids = [rule["id"] for rule in driver["rules"]]
    assert ids == ["GL901", "GL902", "GL000"]  # enabled rules, then GL000 because it occurred
    assert "## What it does" in driver["rules"][0]["help"]["markdown"]
    results = run_["results"]
    assert [res["ruleId"] for res in results] == ["GL000", "GL901"]
    for res in results:
        assert ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] == "error" and res["message"]["text"]
    loc = results[1]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "src/a.py", "uriBaseId": "%SRCROOT%"}
    assert loc["region"] == {"startLine": 4, "startColumn": 5, "endLine": 4, "endColumn": 20}
    assert run_["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.as_uri() + "/"


def test_sarif_clean_run_and_outside_cwd(project, run, tmp_path):
    write(project, "a.py", "x = 1\n")
    r, log = sarif(run, ".")
    assert r.exit_code == 0 and log["runs"][0]["results"] == []
    outside = tmp_path / "outside"
    write(outside, "o.py", BACKWARD)
    r, log = sarif(run, outside / "o.py")
    uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == (outside / "o.py").as_uri()


def test_sarif_validates_against_schema_subset(project, run):
    jsonschema = pytest.importorskip("jsonschema")
    write(project, "a.py", BACKWARD + "print(1)\n")
    write(project, "b.py", b"\x00".decode())
    _, log = sarif(run, "--select", "ALL", ".")
    jsonschema.validate(log, json.loads(SCHEMA.read_text()))
    bad = dict(log, version="2.0.0")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(SCHEMA.read_text()))

from gradlint import docgen


def test_rule_docs_are_up_to_date():
    assert docgen.main(["--check"]) == 0, "run: python -m gradlint.docgen"

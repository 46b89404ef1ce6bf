def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: builds a pre-commit hook environment (pip-installs gradlint; about a minute). Deselect with -m 'not slow'.",
    )

"""Ways to run gradlint from other tools: the flake8 plugin (``gradlint.integrations.flake8``).

pre-commit needs no code: the repository's ``.pre-commit-hooks.yaml`` runs the
``gradlint`` command itself.
"""

# tests/gpu/check_cuda.py is a prepared script for a GPU machine, not a pytest module.
collect_ignore = ["check_cuda.py"]

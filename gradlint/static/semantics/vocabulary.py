"""The names gradlint reads meaning into: one place for the heuristics every analysis shares.

A rule never matches these itself; it asks the analyses (``dataflow`` for
value kinds, ``sinks`` for where a value goes, ``grad_mode`` for whether
autograd records), which read them from here so that the same knowledge
cannot disagree with itself.
"""

from __future__ import annotations

import re

# -- where a value leaves autograd ---------------------------------------------
# Methods whose result is a Python value, an index, a boolean or a host copy for
# display: nothing computed from it can be backpropagated.
TO_PYTHON_METHODS = frozenset(
    {
        "item",
        "tolist",
        "numpy",
        "argmax",
        "argmin",
        "argsort",
        "eq",
        "ne",
        "gt",
        "lt",
        "ge",
        "le",
        "equal",
        "allclose",
        "isclose",
        "all",
        "any",
        "nonzero",
        "multinomial",
        "bernoulli",
        "__format__",
        "format",
        "save",
    }
)
# ``out.data.max(1)[1]``: the indices half of these results has no gradient.
WITH_INDICES_METHODS = frozenset({"max", "min", "topk", "sort", "kthvalue", "mode", "median"})
# Attributes that read metadata, not values.
METADATA_ATTRS = frozenset(
    {"shape", "dtype", "device", "ndim", "is_cuda", "layout", "requires_grad", "grad_fn"}
)
# Functions (last component of the callee) that consume a tensor for display,
# logging, comparison or storage: the value goes no further in autograd.
SINK_FUNCTIONS = frozenset(
    {
        "print",
        "pprint",
        "save_image",
        "make_grid",
        "imshow",
        "imsave",
        "imwrite",
        "plot",
        "scatter",
        "hist",
        "bar",
        "text",
        "add_image",
        "add_images",
        "add_scalar",
        "add_scalars",
        "add_histogram",
        "add_figure",
        "add_video",
        "add_audio",
        "add_embedding",
        "add_text",
        "log",
        "log_dict",
        "log_image",
        "log_metrics",
        "info",
        "debug",
        "warning",
        "error",
        "write",
        "set_description",
        "set_postfix",
        "set_data",
        "update",
        "equal",
        "allclose",
        "isclose",
        "assert_close",
        "assert_allclose",
        "assert_equal",
        "assertEqual",
        "assertTrue",
        "assertFalse",
        "assertAlmostEqual",
        "float",
        "int",
        "bool",
        "str",
        "repr",
        "len",
        "format",
        "isnan",
        "isinf",
        "isfinite",
        "multinomial",
        "argmax",
        "argmin",
        "save",
        "dump",
        "to_pil_image",
        "ToPILImage",
        "array",
        "asarray",
        "accuracy",
    }
)
# Callee prefixes whose every function leaves autograd (numpy, plotting, loggers).
SINK_NAMESPACES = (
    "np.",
    "numpy.",
    "plt.",
    "matplotlib.",
    "wandb.",
    "logging.",
    "logger.",
    "writer.",
    "vutils.",
)
# Functions through which a value keeps flowing (its fate is the result's fate).
PASS_THROUGH_FUNCTIONS = frozenset(
    {
        "cat",
        "stack",
        "hstack",
        "vstack",
        "concat",
        "concatenate",
        "clamp",
        "clip",
        "abs",
        "exp",
        "log_softmax",
        "softmax",
        "sigmoid",
        "tanh",
        "interpolate",
        "upsample",
        "normalize",
        "Variable",
        "list",
        "tuple",
        "sorted",
        "reversed",
        "min",
        "max",
        "sum",
        "round",
        "transpose",
        "permute",
        "flip",
        "chunk",
        "split",
        "squeeze",
        "unsqueeze",
        "where",
    }
)

# -- where a value comes from ----------------------------------------------------
# Names of iterables whose items are data batches (no graph, fresh every iteration).
DATA_SOURCE_NAME = re.compile(r"(loader|dataset|data_iter|batches|(^|_)iter(ator)?($|_))", re.I)

# Functions and methods that, by their name, run without training: generation,
# sampling, prediction, evaluation, beam/greedy search and Viterbi decoding (an
# argmax path: never differentiated). State updates and cuts there need no gradient.
INFERENCE_FUNCTION = re.compile(
    r"(generate|sample|predict|infer|evaluat|^eval|validation_step|test_step|beam|greedy|viterbi)", re.I
)

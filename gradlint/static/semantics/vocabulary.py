"""The names gradlint reads meaning into: one place for the heuristics every analysis shares.

A rule never matches these itself; it asks the analyses (``dataflow`` for
value kinds, ``sinks`` for where a value goes, ``grad_mode`` for whether
autograd records), which read them from here so that the same knowledge
cannot disagree with itself.

``[loops]`` above a constant names the analysis that reads it. Where one idea
has variants (model, optimizer, loss and data names), each says its strength:
they differ because they answer questions of different certainty (a variable
*is* a model vs a callee *probably* runs one), and merging them changes findings.
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
# [sinks] Callees named like a logging/saving helper (``log_``, ``add_`` prefixes) that compute instead.
SINK_PREFIX_LOOKALIKES = frozenset({"log_softmax", "log_sigmoid", "log_prob", "log_ndtr", "add_module"})
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

# -- what carries no graph (cuts) ----------------------------------------------

# Methods whose result carries no autograd graph (or is not a tensor): Python values,
# metadata, integer- or bool-valued results, fresh leaves. Reads through them carry no graph
# (the loop accumulations of GL001-GL003, the recurrent state and shared graphs of GL008/GL010).
NO_GRAPH_RESULT_METHODS = frozenset(
    """item detach detach_ tolist numpy argmax argmin argsort size dim numel nelement ndimension long int bool
    short byte char eq ne lt gt le ge isnan isinf isfinite nonzero count_nonzero data_ptr any all
    equal is_nonzero element_size stride storage_offset is_contiguous unique bincount get_device
    __len__ zeros_like ones_like empty_like new_zeros new_ones new_empty new_full new_tensor""".split()
)

# [reads: interproc] The helpers' rules cut fewer reads (and also ``.grad``): a cut method's arguments are
# still read, and only ``len``/``float``/``int`` calls cut.
HELPER_CUT_METHODS = frozenset(
    {"detach", "item", "tolist", "numpy", "size", "dim", "numel", "type", "new_zeros", "new_ones"}
)
HELPER_CUT_ATTRIBUTES = frozenset(
    {"data", "shape", "dtype", "device", "ndim", "grad", "requires_grad", "is_cuda"}
)
HELPER_CUT_BUILTINS = frozenset({"len", "float", "int"})

# [reads: loops]
NO_GRAPH_FUNCTIONS = frozenset(
    """float int len bool str repr round isinstance hasattr id type print format range enumerate
    torch.argmax torch.argmin torch.argsort torch.eq torch.ne torch.lt torch.gt torch.le torch.ge
    torch.isnan torch.isinf torch.isfinite torch.numel torch.zeros_like torch.ones_like torch.empty_like
    torch.randn_like torch.rand_like torch.full_like torch.count_nonzero torch.nonzero torch.equal
    torch.bincount torch.unique torch.tensor torch.as_tensor torch.zeros torch.ones torch.empty
    torch.randn torch.rand torch.randint torch.arange torch.full math.isnan math.isfinite np.isnan""".split()
)

# Attributes that read no graph: metadata, or the graph-free ``.data`` view.
NO_GRAPH_ATTRIBUTES = frozenset(
    "data shape dtype device ndim is_cuda requires_grad grad_fn is_leaf names layout".split()
)

# [reads: state]
NO_GRAPH_BUILTINS = frozenset(
    {
        "len",
        "isinstance",
        "type",
        "id",
        "print",
        "range",
        "str",
        "int",
        "float",
        "bool",
        "repr",
        "hasattr",
        "callable",
        "issubclass",
        "format",
    }
)

# [reads: loops]
# Methods whose arguments are shapes, devices, dtypes: only the receiver flows.
SHAPE_ARGUMENT_METHODS = frozenset(
    """to cuda cpu type view reshape expand repeat permute transpose squeeze unsqueeze flatten
    contiguous float double half bfloat16 view_as reshape_as expand_as narrow split chunk""".split()
)

# [reads: state]
# Factories make leaves whatever their arguments (``torch.randn_like(out)``, ``torch.zeros(out.shape)``).
TENSOR_FACTORY_NAME = re.compile(
    r"^(zeros|ones|empty|full|rand|randn|randint|randperm|arange|linspace|logspace|eye|tensor|"
    r"\w+_like|manual_seed|from_numpy|bernoulli|multinomial|normal)$"
)

# [state]
# A helper whose name says it cuts recurrent state.
SANITISER_NAME = re.compile(r"(repackage|detach)", re.I)

# [reads, state]
# Method calls that transform a value without introducing parameters: they
# propagate a graph but never start one.
TENSOR_METHODS = frozenset(
    """to cuda cpu float half double long int bool byte char short bfloat16 view view_as reshape reshape_as permute
    transpose t contiguous squeeze unsqueeze flatten unflatten clone expand expand_as repeat repeat_interleave type
    type_as sum mean std var max min norm pow sqrt rsqrt exp log abs neg sign softmax log_softmax sigmoid tanh relu
    argmax argmin chunk split narrow index_select gather scatter masked_fill masked_select add sub mul div matmul mm
    bmm item tolist numpy size dim detach requires_grad_ fill_ zero_ new_zeros new_ones new_full new_empty new_tensor
    get items values keys append extend pop format join lower upper strip replace startswith endswith cumsum clamp
    clamp_ round floor ceil eq ne lt le gt ge all any nonzero where roll flip pin_memory numel topk sort unbind
    masked_fill_ add_ mul_ div_ sub_ copy_ unfold stack cat unsqueeze_ squeeze_ long_ to_dense to_sparse split_with_sizes
    tensor_split movedim swapaxes swapdims select""".split()
)

# [reads: state]
LIBRARY_ALIASES = frozenset(
    {"torch", "F", "nn", "np", "numpy", "math", "th", "torch.nn.functional", "nn.functional"}
)

# [summaries]
DETACH_METHODS = frozenset({"detach", "item", "tolist", "numpy", "cpu_numpy"})

# [summaries]
NUMBER_CALLS = frozenset({"float", "int", "len", "bool"})

# [summaries] Builtins that give a tensor on tensors (`sum(losses)`, `max(a, b)`, `abs(t)`): the kind of
# their arguments.
ARG_KIND_CALLS = frozenset({"round", "abs", "sum", "max", "min"})

# [summaries] Methods of a returned value whose result carries no graph (sizes, integer casts).
SUMMARY_NO_GRAPH_METHODS = frozenset({"size", "dim", "numel", "long", "int", "bool", "byte"})


# -- tensor methods and attributes (dataflow's value kinds) --------------------

# [dataflow]
INPLACE_METHOD = re.compile(r"^[a-z][a-z0-9_]*[a-z0-9]_$")

# [dataflow]
# End in "_" but do not write tensor data.
NOT_INPLACE_METHODS = frozenset(
    {"requires_grad_", "share_memory_", "retain_grad_", "rename_", "refine_names_", "detach_"}
)

# [dataflow]
VIEW_METHODS = frozenset(
    {
        "view",
        "view_as",
        "t",
        "transpose",
        "permute",
        "narrow",
        "expand",
        "expand_as",
        "squeeze",
        "unsqueeze",
        "select",
        "unflatten",
        "diagonal",
        "swapaxes",
        "swapdims",
        "movedim",
        "moveaxis",
        "as_strided",
        "unfold",
        "T",
        "mT",
        "H",
        "mH",
        "real",
        "imag",
        "split",
        "chunk",
        "unbind",
        "tensor_split",
    }
)

# [dataflow]
VIEW_ATTRS = frozenset({"T", "mT", "H", "mH", "real", "imag"})

# [dataflow]
MOVE_METHODS = frozenset({"to", "cuda", "cpu", "double", "half", "float", "bfloat16", "type", "type_as"})

# [dataflow]
SCALAR_METHODS = frozenset(
    {
        "item",
        "tolist",
        "numpy",
        "size",
        "dim",
        "ndimension",
        "numel",
        "nelement",
        "data_ptr",
        "stride",
        "element_size",
        "is_contiguous",
        "storage",
        "untyped_storage",
        "get_device",
        "is_floating_point",
        "is_complex",
        "__len__",
        "register_hook",
        "backward",
        "retain_grad",
        "equal",
        "allclose",
        "is_set_to",
    }
)

# [dataflow]
# Comparisons, index results and predicates: a tensor method or a torch function of that name returns
# a value without a graph.
COMPARISON_METHODS = frozenset(
    {
        "argmax",
        "argmin",
        "argsort",
        "eq",
        "ne",
        "lt",
        "gt",
        "le",
        "ge",
        "isnan",
        "isinf",
        "isfinite",
    }
)

# [dataflow]
NO_GRAPH_METHODS = COMPARISON_METHODS | frozenset(
    {
        "nonzero",
        "bool",
        "long",
        "int",
        "short",
        "byte",
        "char",
        "any",
        "all",
        "logical_not",
        "logical_and",
        "logical_or",
        "logical_xor",
        "sign",
        "signbit",
        "floor_divide",
        "bincount",
        "unique",
        "new_zeros",
        "new_ones",
        "new_empty",
        "new_full",
        "new_tensor",
        "zero_like",
    }
)

# [dataflow]
NON_TENSOR_ATTRS = frozenset(
    {
        "shape",
        "dtype",
        "device",
        "ndim",
        "requires_grad",
        "is_leaf",
        "grad_fn",
        "is_cuda",
        "layout",
        "names",
        "is_sparse",
        "is_quantized",
        "is_meta",
        "itemsize",
        "nbytes",
        "output_nr",
        "_version",
    }
)

# [dataflow]
BUFFER_ATTRS = frozenset({"running_mean", "running_var", "num_batches_tracked"})

# [dataflow]
PARAMETER_ATTR = re.compile(r"^(weight|bias|(\w+_)?(weight|bias)(_\w+)?|in_proj_weight|in_proj_bias)$")

# [dataflow]
TENSOR_FACTORIES = frozenset(
    {
        "zeros",
        "ones",
        "empty",
        "full",
        "randn",
        "rand",
        "randint",
        "arange",
        "linspace",
        "logspace",
        "eye",
        "tensor",
        "zeros_like",
        "ones_like",
        "empty_like",
        "full_like",
        "rand_like",
        "randn_like",
        "randint_like",
        "normal",
        "from_numpy",
        "empty_strided",
        "randperm",
        "Tensor",
        "FloatTensor",
        "LongTensor",
        "DoubleTensor",
        "as_tensor",
        "scalar_tensor",
        "complex",
        "polar",
    }
)

# [dataflow]
TORCH_NO_GRAPH_FUNCTIONS = COMPARISON_METHODS | frozenset(
    {
        "equal",
        "allclose",
        "isclose",
        "is_tensor",
        "numel",
        "nonzero",
        "unique",
        "bincount",
        "histc",
        "searchsorted",
        "bucketize",
        "manual_seed",
        "no_grad",
        "enable_grad",
        "inference_mode",
        "set_grad_enabled",
        "is_grad_enabled",
        "save",
        "load",
        "device",
        "dtype",
        "get_default_dtype",
        "logical_not",
        "logical_and",
        "logical_or",
        "one_hot",
        "count_nonzero",
        "is_floating_point",
        "result_type",
        "can_cast",
        "promote_types",
    }
)

# [dataflow]
TORCH_DIFFERENTIABLE_NAMESPACES = (
    "torch.",
    "torch.nn.functional.",
    "torch.special.",
    "torch.linalg.",
    "torch.fft.",
)


# -- models and modules --------------------------------------------------------

# [dataflow]
# A callee or a variable that names a model/layer by convention.
MODEL_WORDS = (
    "model|net|network|encoder|decoder|generator|discriminator|critic|actor|backbone|classifier|unet|vae|"
    "netg|netd|mlp|rnn|lstm|gru|cnn|convnet|resnet|transformer|teacher|student|policy|autoencoder"
)

# The model-name heuristics, from strongest evidence to weakest. ``MODEL_NAME`` (``is_model_name``,
# matched on the lower-cased name) is the shared convention: a variable so named is taken for a module.
MODEL_NAME = re.compile(
    rf"^(?:_*)(?:[a-z0-9]+_)*(?:{MODEL_WORDS})(?:_[a-z0-9]+)?\d*$|^(?:g|d|g_ab|g_ba|d_a|d_b)$"
)

# [loops, reads] Weaker, for callees only (loops: a call of something so named probably runs a model, so its result
# carries a graph): ``MODEL_NAME`` plus ``module``, ``gen``, ``disc``, ``forward``, ``model_a_b``. Case-sensitive.
# Not merged with ``MODEL_NAME`` in the loop reads: there ``d`` (a discriminator) would make ``d.get(k, 0)``
# a module call and lose GL003's ``d[k] = d.get(k, 0) + loss``.
MODEL_CALLEE_NAME = re.compile(
    r"^(?:model|net|network|module|encoder|decoder|generator|discriminator|critic|actor|policy|value_net|"
    r"backbone|classifier|transformer|unet|vae|autoencoder|G|D|netG|netD|gen|disc|student|teacher|"
    r"\w+_(?:model|net|network|encoder|decoder)|(?:model|net)_\w+|forward)$"
)

# For ``x.train()``/``x.eval()``/``x.zero_grad()`` receivers (optim, GL017): the exact model names plus
# ``ema``, ``detector``, ``head``, ``[a-z]+Net``/``Model``; only together with ``NOT_MODEL_RECEIVER_NAME``
# (tokenizers, losses, loaders, configs... that contain a model word).
MODEL_RECEIVER_NAME = re.compile(
    r"^(model|net|network|module|backbone|encoder|decoder|generator|discriminator|classifier|policy|critic|actor|"
    r"student|teacher|ema|ema_model|unet|vae|transformer|detector|segmenter|head|gen|disc|G|D|netG|netD|"
    r"[A-Za-z0-9_]*_(model|net|network|encoder|decoder|backbone|classifier)|(model|net)_?[A-Za-z0-9_]+|"
    r"[a-z]+(Net|Model))$"
)

# [optim]
NOT_MODEL_RECEIVER_NAME = re.compile(
    r"tokeni[sz]er|processor|extractor|loss|criterion|metric|config|optim|sched|loader|dataset|pipeline|pipe$|"
    r"fn$|func$|_name|name$|path|dir$|file|cls$|class|type$|_id$|args|kwargs|params?$|state|dict|list|cache|"
    r"generate|sample|hook|wrapper_fn|callback|logger|writer|tracker|accelerator|fabric|trainer|engine$",
    re.I,
)

# [dataflow]
MODEL_CLASS = re.compile(
    r"(Net|Model|Module|Encoder|Decoder|Generator|Discriminator|Classifier|Critic|Network|Layer|Block|"
    r"Transformer|LSTM|GRU|RNN|MLP|CNN|Sequential|Linear|Conv\dd)\d*$"
)

# [dataflow]
MODULE_BASE = re.compile(r"(Module|Model|Net|Layer|Block|Sequential|ModuleList|Lightning\w*)$")

# Stricter than ``MODULE_BASE``: a base class that proves a module for GL008's per-class state.
MODEL_BASE_STRICT = re.compile(r"(Module|Model)$")

# [dataflow]
MODEL_FACTORIES = re.compile(
    r"^(timm\.create_model|torchvision\.models\.\w+|torch\.hub\.load|copy\.deepcopy)$"
)

# [dataflow]
LAYER_ATTR = re.compile(
    r"^(fc\d*|head|proj|linear\d*|conv\d*|embed\w*|lm_head|classifier|features|layers?\d*|blocks?\d*|"
    r"stem|neck|dense|pooler|attn|attention|self_attn|mlp|ffn|out_proj|q_proj|k_proj|v_proj|cell|module|"
    r"lstm\d*|gru\d*|rnn\d*|bn\d*|norm\d*|dropout|act|activation|pool|emb)$"
)

# [state]
CONSTRUCTOR_NAME = re.compile(r"^(_*[A-Z]\w|from_pretrained$|from_config$|build|create|make_|get_model|load)")

# [state]
# Methods of modules/optimizers that return leaves or objects, never a forward's output.
OBJECT_METHODS = frozenset(
    """parameters named_parameters buffers named_buffers modules named_modules children named_children state_dict
    load_state_dict train eval zero_grad step register_forward_hook register_hook apply half_ to_empty prepare
    unwrap_model requires_grad_ get_input_embeddings get_output_embeddings""".split()
)

# [state]
# Names that hold objects (models, loaders, optimizers...), never an autograd graph.
OBJECT_NAME = re.compile(
    r"(model|net|module|optim|opt$|loader|dl$|dataset|data_?set|sched|tokeni[sz]er|processor|accelerator|metric|"
    r"config|cfg|args|device|scaler|engine|trainer|criterion|loss_fn|loss_func|writer|logger|generator|sampler|"
    r"collator|callback|strategy|fabric|plugin|pipeline|env$|state_dict)",
    re.I,
)

# [state]
VALUE_WORD = re.compile(
    r"(^|_)(loss|losses|out|outs|output|outputs|logits?|preds?|prediction|feats?|features|"
    r"hidden|emb|embeds?|embeddings|latents?|states?|scores?|y|z|h|x)(_|$|\d)",
    re.I,
)

# [summaries]
# Callables that are not a module's forward: builtins and the functional namespaces.
NOT_FORWARD_CALLEES = frozenset(
    {
        "print", "len", "range", "enumerate", "zip", "list", "tuple", "dict", "set", "float", "int", "str",
        "bool", "isinstance", "getattr", "setattr", "hasattr", "super", "type", "iter", "next", "sorted",
        "reversed", "map", "filter", "min", "max", "sum", "abs", "round", "open", "format", "repr", "any",
        "all", "Variable", "Tensor", "FloatTensor", "LongTensor", "ByteTensor", "divmod", "vars", "id",
        # math and tensor functions imported by name (`from math import log`, `from torch import cat`)
        "log", "exp", "sqrt", "pow", "sin", "cos", "tanh", "sigmoid", "softmax", "log_softmax", "relu", "mean",
        "std", "var", "clamp", "clip", "norm", "cat", "stack", "zeros", "ones", "zeros_like", "ones_like",
        "randn", "rand", "tensor", "floor", "ceil", "isnan", "isinf", "deepcopy", "copy", "partial", "chain",
    }
)  # fmt: skip

# [summaries]
# Modules whose imported names are functions, not networks.
FUNCTION_MODULES = frozenset({"math", "numpy", "torch", "scipy", "random", "os", "sys", "time", "itertools",
                               "functools", "copy", "operator", "einops", "torchvision", "PIL", "cv2"})  # fmt: skip

# [summaries]
FUNCTION_VERBS = re.compile(
    r"^(get|load|make|build|create|parse|compute|calc|init|set|to|read|save|is|has|check|format|log|plot|show)_"
)

# [loops]
FORWARD_METHOD_NAME = re.compile(r"^(?:_*forward\w*|\w*_forward|__call__)$")

# [loops]
STEP_METHOD_NAME = re.compile(r"^(?:training_step|train_step|validation_step|val_step|test_step|\w+_step)$")

# [state]
RESET_METHOD_NAME = re.compile(
    r"(reset|detach|repackage|clear|init\w*(hidden|state|memory)|(hidden|state|memory)\w*init)", re.I
)

# [backward]
# Receivers whose ``.backward(x)`` takes the loss as argument instead of being the loss.
BACKWARD_WRAPPER_RECEIVER = re.compile(
    r"(^|_)(accelerator|fabric|engine|model_engine|deepspeed|strategy|trainer|precision(_plugin)?)$", re.I
)


# -- optimizers ----------------------------------------------------------------

# Optimizer names, three strengths. ``OPTIMIZER_NAME`` / ``NOT_OPTIMIZER_NAME`` (optim.py, case-sensitive
# structure of the name) pair steps with zero_grads.
# Receivers whose ``.step()`` applies gradients: opt, optD, opt_g, g_optim, optimizer_G,
# self.optimizers[0] is not a dotted name and is caught through the bound-name table.
OPTIMIZER_NAME = re.compile(r"optim|(^|_)opt($|_|\d)|^opt[A-Z0-9]|[a-z0-9]Opt($|_|[A-Z0-9])|_opt[A-Z]")

# [optim]
NOT_OPTIMIZER_NAME = re.compile(r"sched|(^|_)lr($|_)|warmup|option|opts$|optional|adapt", re.I)

# Strict (loops.py): the whole last component is an optimizer word (``opt``, ``optimizer_g``, ``scaler``):
# only then is ``x.step()`` an optimizer step for the accumulation rules.
OPTIMIZER_STEP_RECEIVER = re.compile(
    r"(?:^|_)(?:optim|optimizer|optimiser|opt|optimizers|scaler)(?:_\w+)?$", re.I
)

# Loose (summaries.py): the name mentions an optimizer (``solver``, ``scaler`` too), minus ``NOT_OPTIMIZER_WORD``;
# a helper's effects only record it.
OPTIMIZER_WORD = re.compile(r"(optim|^opt(_|$)|_opt$|^opt[A-Z]|solver|scaler)", re.I)

# [summaries]
NOT_OPTIMIZER_WORD = re.compile(r"sched|lr_|warmup|pbar|progress|env", re.I)

# [optim]
# Classes whose instances are optimizers even when the variable is called ``solver``.
OPTIMIZER_CLASSES = {
    "SGD",
    "Adam",
    "AdamW",
    "Adamax",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Rprop",
    "LBFGS",
    "NAdam",
    "RAdam",
    "SparseAdam",
    "ASGD",
    "Adafactor",
    "Lion",
    "LAMB",
    "Lamb",
    "LARS",
    "Lars",
    "AdamW8bit",
    "Adam8bit",
    "FusedAdam",
    "FusedLAMB",
    "DeepSpeedCPUAdam",
    "Muon",
    "Shampoo",
    "Sophia",
    "Prodigy",
    "ZeroRedundancyOptimizer",
}

# [optim]
OPTIMIZER_FACTORY_NAME = re.compile(r"(^|_)(create|make|build|get|init|setup|configure)_?optim", re.I)

# [optim]
# Methods on a tensor's ``.grad`` that clear it.
GRAD_CLEARING_METHODS = {"zero_", "detach_", "fill_", "mul_", "requires_grad_", "copy_", "set_"}

# [optim]
# Helpers that clear gradients by name: self.optimizer_zero_grad(), zero_grads(model), clear_grad()
CLEAR_GRAD_NAME = re.compile(r"zero_?grad|clear_?grad|cleargrad|reset_grad", re.I)


# -- losses and accumulation ---------------------------------------------------

# [loops]
# Functional losses (torch.nn.functional and friends) by their last name component.
FUNCTIONAL_LOSSES = frozenset(
    """cross_entropy nll_loss mse_loss l1_loss smooth_l1_loss huber_loss binary_cross_entropy
    binary_cross_entropy_with_logits kl_div poisson_nll_loss gaussian_nll_loss ctc_loss hinge_embedding_loss
    cosine_embedding_loss margin_ranking_loss multi_margin_loss multilabel_margin_loss
    multilabel_soft_margin_loss soft_margin_loss triplet_margin_loss triplet_margin_with_distance_loss""".split()
)

# [loops, reads] Strong: the whole name is a loss function or loss module (``criterion``, ``loss_fn``, ``compute_loss``).
LOSS_CALLEE_NAME = re.compile(
    r"^(?:(?:\w+_)?(?:loss|losses|criterion|crit)(?:_?fn|_func|_function|_module|_op)?|"
    r"(?:compute|calc|calculate|get|forward)_(?:\w+_)?loss(?:es)?|lossfn|loss_?function)$",
    re.I,
)

# [summaries] Weak: the name mentions a loss anywhere (``d_loss``, ``penalty``): a value, not a callee.
LOSS_WORD = re.compile(r"loss|criterion|penalty|objective|^err", re.I)

# [state]
# Collections returned by one call that hold several losses/outputs of one forward.
LOSSY_COLLECTION_NAME = re.compile(r"(loss|output|outs?$|logit|pred|score|head)", re.I)

# [loops]
CONCAT_FUNCTIONS = frozenset(
    "torch.cat torch.concat torch.concatenate torch.stack torch.hstack torch.vstack".split()
)

# [loops]
LIST_ACCUMULATE_METHODS = frozenset(("append", "extend", "insert"))

# [summaries]
CONTAINER_MUTATORS = frozenset({"append", "extend", "insert", "add", "update", "appendleft"})


# -- data, iteration, evaluation -----------------------------------------------

# Data names, by what they name. ``DATA_SOURCE_NAME`` (above) and ``DATA_ITERABLE_NAME``: iterables whose
# items are fresh batches (dataflow's DATA_BATCH; loops' iteration loops); ``DATA_CALLEE_NAME``: calls
# whose result is input data; ``LOADER_NAME``: a loader object (GL017 with ``EVAL_LOADER_NAME``).
# Iterables that yield fresh data (no graph shared across iterations).
# (GL003's prefilter mirrors this vocabulary: keep them in step.)
DATA_ITERABLE_NAME = re.compile(
    r"(?:loader|data_iter|dataiter|batches|dataset|_data$|_iter$|iterator$|^it$|^data$|^samples$)",
    re.I,
)

# [dataflow] Methods that move, reshape or convert a value without mixing anything into it: on a
# data batch (``batch[0].to(dev)``, ``x.view(bs, -1).float()``, ``batch.get("x")``) the result is
# still the batch (dataflow's DATA_BATCH), fresh every iteration and without graph.
BATCH_PRESERVING_METHODS = (
    MOVE_METHODS
    | VIEW_METHODS
    | frozenset(
        {
            "reshape",
            "contiguous",
            "flatten",
            "long",
            "int",
            "bool",
            "short",
            "byte",
            "pin_memory",
            "get",
            "pop",
        }
    )
)

# [dataflow] A gradient scaler (``scaler``, ``self.state.scaler``, ``grad_scaler``): its ``scale(x)`` is
# ``x`` times a number, of the same kind.
GRAD_SCALER_NAME = re.compile(r"(?:^|_)scaler$", re.I)

# [loops, dataflow] Calls that pass a data source's items through (``enumerate(loader)``, ``tqdm(loader)``).
DATA_WRAPPERS = frozenset("enumerate tqdm tqdm.tqdm zip iter islice itertools.islice trange".split())

# [loops]
EPOCH_NAME = re.compile(r"epoch", re.I)

# [state]
# Calls whose result is input data, not a graph (tokenizers, loaders, augmentation...).
DATA_CALLEE_NAME = re.compile(
    r"(tokeni[sz]|processor|transform|augment|collat|loader|dataset|sampler|prepare|preprocess|to_device|"
    r"^load|^read|get_batch|^next$|feature_extractor|^iter$|encode_plus|noise|^mask|shuffle|^sample_|randn|rand$)",
    re.I,
)

# [state]
ITERATION_HELPERS = frozenset({"enumerate", "zip", "list", "tuple", "sorted", "reversed", "iter"})

# [state]
ITERATION_METHODS = frozenset({"items", "values", "keys"})

# [optim]
LOADER_NAME = re.compile(r"loader|dataset|data($|_)|batches|iterator|iter$|_dl$|^dl_|ds$", re.I)

# [optim]
EVAL_LOADER_NAME = re.compile(
    r"(^|_)(val|valid|validation|test|eval|evaluation|dev|holdout)(_|$)|^(val|valid|test|eval|dev)[a-z]*(loader|set|data)",
    re.I,
)

# [optim]
# An eval word alone or with a data/loop suffix (`evaluate`, `validate_epoch`,
# `predict_step`, `test_model`): `validate_environment`, `validate_inputs` and
# `infer_shape` check arguments, they do not run a model over data.
EVAL_FUNCTION_NAME = re.compile(
    r"^_*(validate|validation|valid|val|evaluate|evaluation|eval|test|predict|prediction|inference|infer|"
    r"score|benchmark)(_(?:one_)?(?:epochs?|steps?|loop|models?|nets?|network|batch(?:es)?|(?:data)?loader|"
    r"dl|data|dataset|set|split|fn|func|all|proba|on_\w+))?$|_(eval|evaluate|evaluation|validate|validation|"
    r"val|test|predict|inference|infer)$",
    re.I,
)

# [optim]
# Lightning runs these hooks under no_grad itself.
LIGHTNING_EVAL_HOOKS = {"validation_step", "test_step", "predict_step", "on_validation_batch_end"}

# [state]
BUILTIN_FUNCTIONS = frozenset(
    """len range enumerate zip list tuple dict set frozenset sorted reversed min max sum abs int float str bool print
    isinstance getattr setattr hasattr iter next map filter any all round type super id open format repr vars divmod
    pow hash callable issubclass object slice""".split()
)

# [state]
NOT_ORIGIN_MODULES = (
    "torch.",
    "numpy.",
    "np.",
    "math.",
    "random.",
    "time.",
    "os.",
    "logging.",
    "itertools.",
    "functools.",
    "collections.",
    "copy.",
    "operator.",
)


# [summaries] Decorators that leave what calling the function gives unchanged (grad-mode ones are judged apart).
PLAIN_DECORATORS = frozenset(
    {"staticmethod", "classmethod", "lru_cache", "cache", "wraps", "abstractmethod", "override", "no_grad",
     "inference_mode", "enable_grad", "set_grad_enabled", "torch.no_grad", "torch.inference_mode",
     "torch.enable_grad", "torch.set_grad_enabled", "functools.lru_cache", "functools.cache",
     "functools.wraps", "abc.abstractmethod", "typing.override"}
)  # fmt: skip


# [summaries, GL017] Methods of a module that take arguments without running it.
NOT_FORWARD_METHODS = frozenset(
    {"to", "train", "eval", "load_state_dict", "state_dict", "apply", "register_buffer", "requires_grad_",
     "add_module", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
     "register_backward_hook", "named_parameters", "parameters", "zero_grad", "cuda", "cpu", "half", "float",
     "type", "modules", "children", "named_modules", "get_submodule", "share_memory", "save_pretrained"}
)  # fmt: skip

"""Checks for the normalization course: compare your answer with torch's own layers.

The test cells of the notebooks call these checks. Each check runs your function or
class on some inputs, runs torch's reference layer on the same inputs, and raises an
``AssertionError`` that says what differs (shape, dtype, largest error and where) and,
when the difference looks like a known mistake, names it.

Rules that hold for every problem:
- torch's own normalization (``nn.BatchNorm1d``, ``F.layer_norm``, ``torch.ops.aten...``)
  must not be used: the checks watch the operators your code runs.
- a float32 input gives a float32 output, the input is left unchanged and the output
  keeps the autograd graph.
- gradients are compared with torch's on float64 inputs, at the precision your answer
  computes in: float64 to 1e-6, or, when it computes in float32 (a ``torch.zeros(shape)``
  buffer, ``.float()``), at float32 precision: within a multiple of the error torch's own
  layer makes in float32 on the same input. That costs no points; the check prints a note.
"""
import contextlib
import functools
import io
import re
import textwrap
import warnings

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "function_matches", "gradients_match", "running_stats_match", "running_gradients_match",
    "module_matches", "module_gradients_match", "make_input",
]

# aten operators behind every built-in normalization layer and function.
FORBIDDEN_OP = re.compile(r"(batch|layer|group|instance)_norm")
RTOL, ATOL = 1e-4, 1e-4
GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-8
# An output this close to torch's float64 result was computed in float64; a farther one
# (within RTOL/ATOL) in float32, whose gradients are then judged by torch's own float32
# error on the same input (see _float32_allowed): FLOAT32_GRAD_FACTOR times the number of
# values one statistic covers times that error, counted as FLOAT32_GRAD_FLOOR at least.
FLOAT64_RTOL, FLOAT64_ATOL = 1e-10, 1e-10
# tests/float32_calibration.py runs the notebooks' gradient checks at 200 seeds each on
# float32 answers of every problem: correct ones reach 0.36 of the allowance at most; a
# detached mean or denominator, or every gradient 10% off, exceed it in every call (by
# 1.03 at least, in one call of 400; on the notebooks' own inputs by 6 at least).
FLOAT32_GRAD_FACTOR = 16
FLOAT32_GRAD_FLOOR = 8 * torch.finfo(torch.float32).eps
# Messages are shown in dialogs, feedback pages and `nbgrader validate`, which cuts lines
# longer than 83 characters; the first line follows "AssertionError: ".
LINE_WIDTH, FIRST_LINE_WIDTH = 80, 64


class OpRecorder(TorchDispatchMode):
    """Records the names of the aten operators run inside the ``with`` block.

    Recorders entered inside one another (the grader's around a scenario's) share the
    outermost one's dispatch mode: each operator pays for one Python hook, not one per
    recorder, and every recorder open records it.
    """

    entered = []  # the recorders entered and not yet left, outermost first

    def __init__(self):
        super().__init__()
        self.ops = set()

    def __enter__(self):
        OpRecorder.entered.append(self)
        if len(OpRecorder.entered) > 1:
            return self
        return super().__enter__()

    def __exit__(self, *exc):
        OpRecorder.entered.remove(self)
        if not OpRecorder.entered:
            return super().__exit__(*exc)
        return False

    @classmethod
    def _should_skip_dynamo(cls):
        """No: nothing here is compiled, and wrapping ``__torch_dispatch__`` for
        torch.compile would load torch._dynamo (1.5 s) in every grading process."""
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        for recorder in OpRecorder.entered:
            recorder.ops.add(name)
        return func(*args, **(kwargs or {}))


# ---------------------------------------------------------------------------
# References computed once per input
# ---------------------------------------------------------------------------

_REMEMBERED = {}  # (function, its arguments' key) -> what it returned


def _key(value):
    """A hashable key for ``value``: tensors by dtype, shape and bytes."""
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().reshape(-1)
        return ("tensor", str(data.dtype), tuple(value.shape), value.requires_grad,
                data.view(torch.uint8).numpy().tobytes())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(_key(v) for v in value)
    if isinstance(value, dict):
        return ("dict",) + tuple(sorted((k, _key(v)) for k, v in value.items()))
    return value


def _remembered(function):
    """``function`` (a reference that depends only on its arguments) run once per
    arguments: the grader checks every submission on the same inputs. What it returns is
    shared between calls, so callers only read it."""
    @functools.wraps(function)
    def remembered(*args, **kwargs):
        key = (function.__name__, _key(args), _key(kwargs))
        if key not in _REMEMBERED:
            _REMEMBERED[key] = function(*args, **kwargs)
        return _REMEMBERED[key]
    return remembered


def _one_thread(check):
    """``check`` run with one torch thread: its tensors are small, and a notebook's first
    multi-threaded operation starts a thread pool, which costs the learner's first check
    up to a second on a busy machine. The learner's own setting is restored after."""
    @functools.wraps(check)
    def single(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return check(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return single


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

# A channel's offset is at most OFFSET_SCALES times its scale: the inputs are
# well-conditioned, so every correct formula for the variance keeps float32 precision on
# them, the mean of squared deviations as well as E[x**2] - E[x]**2, whose relative error
# is about 6e-8 * E[x**2] / var (at most 6e-8 * (1 + OFFSET_SCALES**2) here, against the
# checks' 1e-4; on values of mean 300 and spread 1 it would be half a percent). What
# counts is a statistic's own sample: one over 2 or 3 values of a channel can by chance
# spread far less than the channel's scale, so a new check's seed is worth trying with
# E[x**2] - E[x]**2 (tests/catalog.py, *_one_pass_var).
OFFSET_SCALES = 2.0


def make_input(shape, seed, constant_channel=False, dtype=torch.float32):
    """A reproducible input of ``shape`` whose channels (dim 1) have different scales.

    Channel c has scale in [0.05, 20] and an offset of at most OFFSET_SCALES times its
    scale, so mistakes in eps (on small-variance channels) or in the variance estimator
    show, while the input stays well-conditioned. With ``constant_channel`` channel 0 is
    exactly 1.5 everywhere: its variance is 0, so only eps keeps the output finite.
    """
    return _made_input(tuple(shape), seed, constant_channel, dtype).clone()


@_remembered
def _made_input(shape, seed, constant_channel, dtype):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    if len(shape) > 1:
        stat_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
        scale = torch.exp(torch.empty(stat_shape, dtype=torch.float64).uniform_(-3, 3, generator=gen))
        offset = scale * torch.empty(stat_shape, dtype=torch.float64).uniform_(
            -OFFSET_SCALES, OFFSET_SCALES, generator=gen)
        x = x * scale + offset
        if constant_channel:
            x[:, 0] = 1.5
    return x.to(dtype)


# ---------------------------------------------------------------------------
# Scenarios: what we do with an answer. They run where the answer lives (in the
# grader, a separate process) and return plain data: tensors, numbers, strings.
# ---------------------------------------------------------------------------

def _describe(value):
    """Plain-data summary of what an answer returned."""
    if isinstance(value, torch.Tensor):
        return {"tensor": value.detach().clone(), "requires_grad": value.requires_grad}
    return {"type": type(value).__name__}


def _copies(values):
    """Fresh copies of the tensors in ``values``. Every scenario starts so: the operator
    record of an honest run is never empty."""
    return [v.detach().clone() if isinstance(v, torch.Tensor) else v for v in values]


def scenario_calls(fn, calls):
    """Call ``fn(*args)`` for each ``args`` in ``calls``; report each output (or error) and
    the tensor arguments after the call (the caller compares them with what it passed).

    One scenario for all the cases of a check: one round trip to the grader's sandbox.
    """
    calls = [_copies(args) for args in calls]
    results = []
    for args in calls:
        try:
            out = fn(*args)
        except Exception as exc:  # the learner's code failed on this case
            results.append({"error": f"{type(exc).__name__}: {exc}"})
            continue
        results.append({"output": _describe(out),
                        "args_after": [a.detach().clone() if isinstance(a, torch.Tensor)
                                       else None for a in args]})
    return {"results": results}


def scenario_grads(fn, args, grad_output):
    """Backpropagate ``grad_output`` through ``fn(*args)``; report the tensor args' grads."""
    args = [a.requires_grad_(True) if isinstance(a, torch.Tensor) else a
            for a in _copies(args)]
    return _backward(fn(*args), grad_output, args)


def _backpropagate(out, grad_output):
    """``out.backward(grad_output)``, through a scalar: the same gradients, without the
    import of sympy (a second) that torch's check of ``grad_output`` costs on first use."""
    (out * grad_output).sum().backward()


def _backward(out, grad_output, leaves):
    """The output (described) and the grads of ``leaves`` after backpropagating into it."""
    if not isinstance(out, torch.Tensor) or not out.requires_grad or out.shape != grad_output.shape:
        return {"output": _describe(out), "grads": None}
    _backpropagate(out, grad_output)
    return {"output": _describe(out),
            "grads": [a.grad if isinstance(a, torch.Tensor) else None for a in leaves]}


def _stat(value):
    """A running statistic as data, with whether it still carries autograd history."""
    if not isinstance(value, torch.Tensor):
        return {"type": type(value).__name__}
    return {"tensor": value.detach().clone(),
            "graph": value.requires_grad or value.grad_fn is not None}


def _changed(given, passed):
    """Whether the tensor ``passed`` to the answer no longer equals ``given``, its copy."""
    return not torch.equal(passed.detach(), given)


def scenario_running(cls, weight, bias, eps, momentum, train_batches, eval_batches):
    """P3: train steps, then ``eval()`` and eval steps; outputs and running stats after
    each, and whether the step changed its input in place."""
    weight, bias = _copies([weight, bias])
    layer = cls(weight.requires_grad_(True), bias.requires_grad_(True), eps, momentum)
    steps = []
    for phase, batches in (("train", train_batches), ("eval", eval_batches)):
        if phase == "eval":
            layer.eval()
        for x in batches:  # inputs that require grad expose statistics that keep the graph
            passed = x.clone().requires_grad_(phase == "train")
            out = layer(passed)
            steps.append({"phase": phase, "output": _describe(out),
                          "input_changed": _changed(x, passed),
                          "running_mean": _stat(layer.running_mean),
                          "running_var": _stat(layer.running_var)})
    return {"steps": steps}


def _state_to_double(layer):
    """``layer``'s floating-point state tensors (buffers and plain tensor attributes that
    are not parameters and carry no autograd history, such as moving statistics made by
    ``torch.zeros(shape)``) converted to float64: what ``Module.double()`` does to
    buffers, also for a plain attribute or a class that is not a Module, so an update such
    as ``torch.lerp(self.moving_mu, mean, w)`` meets a float64 statistic."""
    owners = list(layer.modules()) if isinstance(layer, nn.Module) else [layer]
    for owner in owners:
        if isinstance(owner, nn.Module):
            for name, buffer in owner._buffers.items():
                if buffer is not None and buffer.is_floating_point():
                    owner._buffers[name] = buffer.double()
        for name, value in list(getattr(owner, "__dict__", {}).items()):
            if (isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter)
                    and value.is_floating_point() and value.dtype != torch.float64
                    and not value.requires_grad and value.grad_fn is None):
                setattr(owner, name, value.double())
    return layer


def scenario_running_grads(cls, weight, bias, eps, momentum, x, grad_output):
    """P3 in float64: grads of the input, weight and bias after one training step."""
    weight, bias, x = (t.requires_grad_(True) for t in _copies([weight, bias, x]))
    layer = _state_to_double(cls(weight, bias, eps, momentum))
    return _backward(layer(x), grad_output, [x, weight, bias])


def scenario_module(cls, shape, eps, momentum, train_batches, eval_batches):
    """Seed 004 BatchNorm: training steps (grad on), then test steps under no_grad."""
    train_batches, eval_batches = _copies(train_batches), _copies(eval_batches)
    module = cls(shape, eps=eps, momentum=momentum)
    steps = []
    for phase, batches in (("train", train_batches), ("eval", eval_batches)):
        for x in batches:  # training inputs require grad, as inside a network
            passed = x.clone().requires_grad_(phase == "train")
            with torch.set_grad_enabled(phase == "train"):
                out = module(passed)
            steps.append({"phase": phase, "output": _describe(out),
                          "input_changed": _changed(x, passed),
                          "running_mean": _stat(module.moving_mu),
                          "running_var": _stat(module.moving_sigma)})
    params = {name: _describe(getattr(module, name)) for name in ("gamma", "beta")}
    params["registered"] = sorted(name for name, _ in module.named_parameters())
    return {"steps": steps, "params": params}


def scenario_module_grads(cls, shape, x, grad_output, gamma, beta):
    """Seed 004 BatchNorm in float64: grads of the input, gamma and beta after one step."""
    x, grad_output, gamma, beta = _copies([x, grad_output, gamma, beta])
    module = _state_to_double(cls(shape).double())  # plain tensor attributes too
    with torch.no_grad():
        module.gamma.copy_(gamma.view_as(module.gamma))
        module.beta.copy_(beta.view_as(module.beta))
    x = x.requires_grad_(True)
    evidence = _backward(module(x), grad_output, [x])
    if evidence["grads"] is not None:
        evidence["grads"] += [module.gamma.grad, module.beta.grad]
    return evidence


SCENARIOS = {f.__name__: f for f in (scenario_calls, scenario_grads, scenario_running,
                                     scenario_running_grads, scenario_module,
                                     scenario_module_grads)}


def run_scenario(scenario, answer, *args):
    """Run ``scenario`` on ``answer`` where the answer lives and return its evidence.

    In the grader, ``answer`` is a proxy for an object in a separate process, and the
    scenario runs there; in a notebook it runs here.
    """
    remote = getattr(type(answer), "__sandbox_scenario__", None)
    if remote is not None:
        return remote(answer, scenario.__name__, args)
    return run_scenario_here(scenario, answer, *args)


def run_scenario_here(scenario, answer, *args):
    """Run ``scenario`` on ``answer`` in this process, recording the operators it runs.

    Warnings and stderr of the answer are kept out of the test cell (a test cell that
    writes to stderr scores zero in nbgrader). An exception in the answer becomes
    ``{"error": ...}``. The operators run are returned raw, for the caller to judge.
    """
    recorder = OpRecorder()
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            with recorder:
                evidence = scenario(answer, *args)
        except Exception as exc:  # the learner's code failed: report, do not crash
            evidence = {"error": f"{type(exc).__name__}: {exc}"}
    evidence["ops"] = sorted(recorder.ops)
    return evidence


# ---------------------------------------------------------------------------
# References: the same scenarios run on torch's own layers.
# ---------------------------------------------------------------------------

class TorchRunningBatchNorm:
    """nn.BatchNorm1d behind the P3 interface: the reference for ``scenario_running``."""

    def __init__(self, weight, bias, eps, momentum):
        self.layer = nn.BatchNorm1d(weight.numel(), eps=eps, momentum=momentum)
        with torch.no_grad():
            self.layer.weight.copy_(weight)
            self.layer.bias.copy_(bias)

    def __call__(self, x):
        return self.layer(x)

    def eval(self):
        self.layer.eval()

    @property
    def running_mean(self):
        return self.layer.running_mean

    @property
    def running_var(self):
        return self.layer.running_var


class TorchSkeletonBatchNorm(nn.Module):
    """nn.BatchNorm1d/2d behind the seed 004 interface (momentum weights the history)."""

    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        layer = nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d
        self.layer = layer(shape[1], eps=eps, momentum=1 - momentum)
        self.stat_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
        self.gamma = self.layer.weight
        self.beta = self.layer.bias

    def forward(self, x):
        self.layer.train(torch.is_grad_enabled())
        return self.layer(x)

    @property
    def moving_mu(self):
        return self.layer.running_mean.view(self.stat_shape)

    @property
    def moving_sigma(self):
        return self.layer.running_var.view(self.stat_shape)


# Each function-style problem: how to call the answer and torch's layer, and which
# dimensions one mean/variance covers (for naming mistakes).
def _dims_batch(x):
    return (0,) + tuple(range(2, x.dim()))


PROBLEMS = {
    "p1": dict(args=lambda x, eps, **_: (x, eps), dims=_dims_batch, affine=False,
               layer=lambda x, eps, **_: nn.BatchNorm1d(x.shape[1], eps=eps, affine=False)),
    "p2": dict(args=lambda x, eps, weight, bias, **_: (x, weight, bias, eps), dims=_dims_batch,
               affine=True, layer=lambda x, eps, **_: nn.BatchNorm1d(x.shape[1], eps=eps)),
    "p4": dict(args=lambda x, eps, **_: (x, eps), dims=_dims_batch, affine=False,
               layer=lambda x, eps, **_: nn.BatchNorm2d(x.shape[1], eps=eps, affine=False)),
    "p5": dict(args=lambda x, eps, **_: (x, eps), dims=lambda x: tuple(range(1, x.dim())),
               affine=False, layer=lambda x, eps, **_: nn.LayerNorm(
                   x.shape[1:], eps=eps, elementwise_affine=False)),
    "p6": dict(args=lambda x, eps, **_: (x, eps), dims=lambda x: (2,), affine=False,
               layer=lambda x, eps, **_: nn.InstanceNorm1d(x.shape[1], eps=eps)),
    "p7": dict(args=lambda x, eps, groups, **_: (x, groups, eps), dims=None, affine=False,
               layer=lambda x, eps, groups, **_: nn.GroupNorm(groups, x.shape[1], eps=eps,
                                                              affine=False)),
}


def _reference(problem, x, **params):
    """torch's layer for ``problem`` applied to ``x``; returns (output, layer)."""
    spec = PROBLEMS[problem]
    layer = spec["layer"](x, **params).to(x.dtype)
    if spec["affine"]:
        with torch.no_grad():
            layer.weight.copy_(params["weight"])
            layer.bias.copy_(params["bias"])
    return layer(x), layer


@_remembered
def _reference_grads(problem, x, grad_output, dtype, **params):
    """torch's output for ``problem`` and its grads (input, then weight and bias for an
    affine problem) after backpropagating ``grad_output``, computed in ``dtype``."""
    params = {k: v.to(dtype) if isinstance(v, torch.Tensor) else v for k, v in params.items()}
    x = x.detach().to(dtype, copy=True).requires_grad_(True)
    out, layer = _reference(problem, x, **params)
    _backpropagate(out, grad_output.to(dtype))
    affine = [layer.weight.grad, layer.bias.grad] if PROBLEMS[problem]["affine"] else []
    return out, [x.grad] + affine


def _statistic_size(problem, x, groups=None):
    """How many values of ``x`` one mean (and variance) of ``problem`` covers."""
    if problem == "p7":
        return x.numel() // (x.shape[0] * groups)
    size = 1
    for dim in PROBLEMS[problem]["dims"](x):
        size *= x.shape[dim]
    return size


@_remembered
def _reference_output(problem, x, eps, params):
    """torch's output for ``problem`` on ``x`` (detached)."""
    return _reference(problem, x, eps=eps, **params)[0].detach()


# ---------------------------------------------------------------------------
# Diagnosis: known mistakes, recognised by recomputing them.
# ---------------------------------------------------------------------------

def _normalize(x, dims, eps, correction=0, eps_inside=True, std=False):
    x = x.double()
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, correction=correction)
    spread = var.sqrt() if std else var
    denom = (spread + eps).sqrt() if eps_inside else spread.sqrt() + eps
    return (x - mean) / denom


def _group_view(x, groups, interleaved=False):
    n, c = x.shape[:2]
    if interleaved:  # channel k in group k % groups
        return x.reshape(n, c // groups, groups, -1).transpose(1, 2)
    return x.reshape(n, groups, c // groups, -1)


UNBIASED = "the unbiased (N-1) variance; normalize with the biased one (unbiased=False)"
EPS_OUTSIDE = "eps added outside the square root; use sqrt(var + eps)"
PER_SAMPLE = ("statistics over each sample's features (dim 1); batch norm takes each "
              "feature's statistics over the batch (dim 0)")
# Wrong reduction dims per problem, with what they amount to.
WRONG_DIMS = {
    "p1": {(1,): PER_SAMPLE},
    "p2": {(1,): PER_SAMPLE},
    "p4": {(0,): "statistics over the batch only (dim 0); batch norm 2d uses dims (0, 2, 3)",
           (2, 3): "statistics per image and channel (dims 2, 3): that is instance norm",
           (1, 2, 3): "statistics per image (dims 1, 2, 3): that is layer norm"},
    "p5": {(1,): "statistics over dim 1 only; layer norm uses every dim but 0",
           (0,): "statistics over the batch (dim 0): that is batch norm"},
    "p6": {(0, 2): "statistics over the batch and length (dims 0, 2): that is batch norm",
           (1, 2): "statistics over channels and length (dims 1, 2): that is layer norm",
           (1,): "statistics over the channels (dim 1); instance norm uses dim 2"},
}


def _group_suspects(x, eps, groups):
    def norm(view, **kw):
        return _normalize(view, (2, 3), eps, **kw).reshape(x.shape)
    grouped = _group_view(x, groups)
    interleaved = _normalize(_group_view(x, groups, interleaved=True), (2, 3), eps)
    found = {
        UNBIASED: norm(grouped, correction=1),
        EPS_OUTSIDE: norm(grouped, eps_inside=False),
        "channels put in groups by channel % groups (interleaved); groups are made of "
        "adjacent channels": interleaved.transpose(1, 2).reshape(x.shape),
        "C // groups groups of `groups` channels; there are `groups` groups of C // groups "
        "channels": norm(_group_view(x, x.shape[1] // groups)),
    }
    return found


def _suspects(problem, x, eps, groups=None, weight=None, bias=None, **_):
    """Outputs of known wrong answers, each with the sentence that names the mistake."""
    if problem == "p7":
        return _group_suspects(x, eps, groups)
    dims = PROBLEMS[problem]["dims"](x)
    found = {
        UNBIASED: _normalize(x, dims, eps, correction=1),
        EPS_OUTSIDE: _normalize(x, dims, eps, eps_inside=False),
        "the standard deviation where the variance belongs; use sqrt(var + eps)":
            _normalize(x, dims, eps, std=True),
    }
    for wrong_dims, text in WRONG_DIMS.get(problem, {}).items():
        if max(wrong_dims) < x.dim():
            found[text] = _normalize(x, wrong_dims, eps)
    if PROBLEMS[problem]["affine"]:
        base = _normalize(x, dims, eps)
        found = {text: weight * out + bias for text, out in found.items()}
        found.update({
            "weight and bias swapped": bias * base + weight,
            "the bias subtracted (z = gamma * x_hat - beta); it is added": weight * base - bias,
            "no bias added": weight * base,
            "the affine transform applied before normalizing; normalize first":
                _normalize(weight * x + bias, dims, eps),
        })
    return found


def _name_mistake(actual, suspects):
    """' This looks like <mistake>.' for the first suspect ``actual`` matches, else ''."""
    for text, wrong in suspects.items():
        if wrong.shape == actual.shape and torch.allclose(
                actual.double(), wrong.double(), rtol=RTOL, atol=ATOL, equal_nan=True):
            return f" This looks like {text}."
    return ""


# ---------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------

class CheckFailed(AssertionError):
    """A check that failed. A notebook shows its message only, not normcheck's traceback."""

    def _render_traceback_(self):  # IPython's hook: the lines shown for the exception
        lines = str(self).splitlines() or [""]
        return [f"{type(self).__name__}: {lines[0]}"] + lines[1:]


# Shown as AssertionError, in a notebook as in the grader's outputs: what it is.
CheckFailed.__name__ = "AssertionError"


def _wrap(text):
    """``text`` in lines of at most LINE_WIDTH characters (FIRST_LINE_WIDTH for the first)."""
    first, _, rest = text.partition("\n")
    lines = textwrap.wrap(first, FIRST_LINE_WIDTH, break_long_words=False, break_on_hyphens=False)
    lines[1:] = textwrap.wrap(" ".join(lines[1:]), LINE_WIDTH, break_long_words=False,
                              break_on_hyphens=False)
    for part in rest.split("\n") if rest else []:
        lines += textwrap.wrap(part, LINE_WIDTH, break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines)


def _fail(where, message):
    raise CheckFailed(_wrap(f"{where}:\n{message}"))


def _num(value):
    """A number in a message: four significant digits, everywhere."""
    return f"{value:.4g}"


def _nums(got, expected):
    """Two numbers that differ, each with the same number of significant digits: four, or
    as many more as it takes for them to read differently (``got -1.14, expected -1.14``
    says nothing)."""
    for digits in range(4, 18):
        shown = f"{got:.{digits}g}", f"{expected:.{digits}g}"
        if shown[0] != shown[1]:
            return shown
    return shown


def _note(where, messages):
    """Print the first of ``messages`` that is not None: a remark that costs no points."""
    message = next((m for m in messages if m), None)
    if message:
        print(_wrap(f"Note ({where}): {message}"))


# ---------------------------------------------------------------------------
# What the grading engine (nbconfine, problem mode) uses; see nbconfine/remote.py.
# ---------------------------------------------------------------------------

# Names through which an answer reaches torch's own normalization.
FORBIDDEN_NAME = (
    r"^(BatchNorm[123]d|LazyBatchNorm[123]d|SyncBatchNorm|LayerNorm|GroupNorm|"
    r"InstanceNorm[123]d|LazyInstanceNorm[123]d|(batch|layer|group|instance|rms)_norm|"
    r"_?native_(batch|layer|group)_norm\w*|_batch_norm_impl_index|cudnn_batch_norm|"
    r"miopen_batch_norm|aten)$")


def warm_up():
    """Run once in the grader's zygote what sandboxes use, so forks find it all loaded
    (sandboxes read no files, so a lazy import there would fail)."""
    import numpy as np
    import torch.nn.functional as F

    def normalize(x, eps):
        mean = x.mean(dim=0, keepdim=True)
        var = torch.var(x, dim=0, unbiased=False) + torch.einsum("ij->j", x) * 0
        return F.relu((x - mean) * torch.rsqrt(var + eps)) + np.float64(0.0)

    x = torch.randn(4, 3)
    run_scenario_here(scenario_calls, normalize, [[x, 1e-5]])
    run_scenario_here(scenario_grads, normalize, [x.double(), 1e-5],
                      torch.ones(4, 3, dtype=torch.float64))
    run_scenario_here(scenario_module, TorchSkeletonBatchNorm, (4, 2, 3, 3), 1e-5, 0.9,
                      [torch.randn(4, 2, 3, 3)], [torch.randn(4, 2, 3, 3)])
    repr(torch.nn.Parameter(torch.ones(2)) * 2)
    x.detach().numpy().std(), torch.std_mean(x, 0)


def rehearsal():
    """[(scenario, stand-in answer, args)]: cheap runs of a problem's first scenarios,
    which each grading sandbox forked ahead runs while it waits (nbconfine.remote), so
    that a problem's first checks do not wait for the memory they touch."""
    def stand_in(x):
        return (x - x.mean(dim=0)) / torch.sqrt(x.var(dim=0, unbiased=False) + 1e-5)

    x = torch.ones(2, 3)
    return [("scenario_calls", stand_in, ([[x]],)),
            ("scenario_grads", stand_in, ([x.double()], torch.ones(2, 3, dtype=torch.float64)))]


def forbidden_ops(ops):
    """The operators in ``ops`` that belong to torch's own normalization."""
    return sorted(op for op in ops if FORBIDDEN_OP.search(op))


FORBIDDEN_ERROR = "ForbiddenNormalization"  # the name of the error its test cells show
FORBIDDEN_MESSAGE = ("your answer uses torch's own normalization ({}), so it scores zero.\n"
                     "This problem asks you to write it yourself with elementary operations\n"
                     "(mean, var, sqrt, ...).")
# Errors that have a known cause, with the sentence that names it.
KNOWN_ERRORS = {
    "is invalid for input of size":
        "A reshape to sizes that do not fit this input: take every size from input_tensor.shape, "
        "not from notebook globals or the example's sizes.",
    "a leaf Variable that requires grad is being used in an in-place operation":
        "Your code changes in place a tensor that requires grad, such as the input (x -= ..., "
        "x.sub_(...)): compute a new tensor instead (x - mean); torch's layers leave their "
        "input unchanged.",
    "numpy() on Tensor that requires grad":
        "NumPy functions (np.sqrt, np.sum, np.array, ...) cannot follow autograd: use the torch "
        "ones (torch.sqrt, torch.sum, ...) so that gradients flow.",
}


def _check_clean(where, evidence):
    """The answer used no built-in normalization, ran, and left the operator record alone.

    Every scenario copies its inputs first, so an empty record means the answer switched
    the recorder off.
    """
    if forbidden_ops(evidence.get("ops", ())):
        _fail(where, FORBIDDEN_MESSAGE.format(", ".join(forbidden_ops(evidence["ops"]))))
    if "error" in evidence:
        error = evidence["error"].replace(" Use tensor.detach().numpy() instead.", "")
        cause = next((text for known, text in KNOWN_ERRORS.items() if known in error), "")
        _fail(where, f"your code raised {error}" + (f"\n{cause}" if cause else ""))
    if not evidence.get("ops"):
        _fail(where, "no operators were recorded while your code ran: it interfered with "
                     "the checks' tools (torch's dispatch or this module); it scores zero.")


OUTPUT_SHAPE = "the output has the input's shape"


def _check_tensor(where, described, expected, suspects=dict, dtype=None, shape_note=OUTPUT_SHAPE):
    """``described`` (from ``_describe``) equals the ``expected`` tensor.

    suspects: called on a mismatch only, it returns {mistake: its output} to name it.
    shape_note: why ``expected`` has its shape, said when the shapes differ.
    """
    if "tensor" not in described:
        got = described["type"]
        hint = " Did you forget `return`?" if got == "NoneType" else ""
        _fail(where, f"expected a tensor, got {got}.{hint}")
    actual = described["tensor"]
    if not actual.is_floating_point():
        _fail(where, f"dtype {actual.dtype}: the output is a floating-point tensor, like the input.")
    if actual.shape != expected.shape:
        _fail(where, f"shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
                     f" ({shape_note}).")
    if dtype is not None and actual.dtype != dtype:
        _fail(where, f"dtype {actual.dtype}, but the input was {dtype}: keep the input's dtype "
                     "(no .double(), .float() or numpy round trip).")
    expected = expected.detach().to(actual.dtype)
    if torch.allclose(actual, expected, rtol=RTOL, atol=ATOL, equal_nan=False):
        return
    bad = ~torch.isclose(actual, expected, rtol=RTOL, atol=ATOL)
    first = tuple(int(i) for i in bad.nonzero()[0])
    error = (actual - expected).abs().nan_to_num(nan=float("inf")).max().item()
    got, want = _nums(actual[first].item(), expected[first].item())
    message = (f"{int(bad.sum())} of {actual.numel()} values differ, max abs error {_num(error)}, "
               f"first at index {first}: got {got}, expected {want}.")
    with warnings.catch_warnings():  # a suspect's N-1 variance of one value warns
        warnings.simplefilter("ignore")
        named = _name_mistake(actual, suspects())
    if not named and not torch.isfinite(actual).all():
        named = " Your output has nan or inf: is eps inside the square root?"
    _fail(where, message + named)


def _cases(shapes, eps, seed, constant_channel=False, dtype=torch.float32):
    """(input, eps) pairs: a shape gets a reproducible input, a tensor is used as is."""
    for i, shape in enumerate(shapes):
        for j, e in enumerate(eps):
            if isinstance(shape, torch.Tensor):
                yield shape.to(dtype), float(e), seed + 97 * i + j
            else:
                case_seed = seed + 97 * i + j
                yield make_input(tuple(shape), case_seed, constant_channel, dtype), float(e), case_seed


def _params(problem, x, seed, groups=None):
    gen = torch.Generator().manual_seed(seed + 1)
    params = {}
    if PROBLEMS[problem]["affine"]:
        params["weight"] = torch.randn(x.shape[1], generator=gen, dtype=torch.float64).to(x.dtype)
        params["bias"] = torch.randn(x.shape[1], generator=gen, dtype=torch.float64).to(x.dtype)
    if groups is not None:
        params["groups"] = groups
    return params


@_one_thread
def function_matches(problem, fn, shapes, eps, seed=0, groups=(None,), constant_channel=False):
    """``fn`` matches torch's layer for ``problem`` in training mode.

    problem: "p1", "p2", "p4", "p5", "p6" or "p7".
    shapes: input shapes, e.g. [(N, L)] for p1, [(N, C, H, W)] for p4, or input tensors.
    eps: eps values; groups: group counts (p7 only).
    For every case: no built-in normalization, same shape, same dtype, input unchanged,
    values within rtol=atol=1e-4 of torch's.
    """
    cases = []
    for x, e, case_seed in _cases(shapes, eps, seed, constant_channel):
        for g in groups:
            params = _params(problem, x, case_seed, g)
            where = f"{problem} on input {tuple(x.shape)}, eps={e:g}" + (
                f", groups={g}" if g is not None else "")
            cases.append((where, x, e, params, PROBLEMS[problem]["args"](x, eps=e, **params)))
    if not cases:
        raise ValueError(f"{problem}: function_matches was given no cases to check")
    passed = [[a.clone() if isinstance(a, torch.Tensor) else a for a in args]
              for *_, args in cases]
    evidence = run_scenario(scenario_calls, fn, [args for *_, args in cases])
    _check_clean(cases[0][0], evidence)
    for (where, x, e, params, _), before, result in zip(cases, passed, evidence["results"]):
        _check_clean(where, dict(result, ops=evidence["ops"]))
        if any(isinstance(a, torch.Tensor) and not torch.equal(a, after)
               for a, after in zip(before, result["args_after"])):
            _fail(where, "your function changed its input tensor in place; compute a new "
                         "tensor instead (no -=, /=, add_, ...).")
        expected = _reference_output(problem, x, e, params)
        _check_tensor(where, result["output"], expected, lambda: _suspects(
            problem, x.double(), e, **{k: v.double() if isinstance(v, torch.Tensor) else v for k, v in params.items()}),
            dtype=x.dtype)


@_one_thread
def gradients_match(problem, fn, shapes, eps=1e-5, seed=0, groups=None):
    """Gradients of ``fn`` (input and, for p2, weight and bias) on float64 inputs equal
    torch's, at the precision ``fn`` computes in (see ``_compare_grads``)."""
    names = ["input", "weight", "bias"] if PROBLEMS[problem]["affine"] else ["input"]
    notes = []
    for x, e, case_seed in _cases(shapes, [eps], seed, dtype=torch.float64):
        params = _params(problem, x, case_seed, groups)
        where = f"{problem} gradients on float64 input {tuple(x.shape)}, eps={e:g}" + (
            f", groups={groups}" if groups is not None else "")
        args = PROBLEMS[problem]["args"](x, eps=e, **params)
        grad_output = make_input(tuple(x.shape), case_seed + 1, dtype=torch.float64)
        evidence = run_scenario(scenario_grads, fn, args, grad_output)
        _check_clean(where, evidence)
        out, expected = _reference_grads(problem, x, grad_output, torch.float64, eps=e, **params)
        actual = evidence["grads"]
        if actual is not None:  # keep the tensor arguments only, in the order of `names`
            actual = [g for a, g in zip(args, actual) if isinstance(a, torch.Tensor)]
        notes.append(_compare_grads(
            where, evidence["output"], out, actual, expected, names,
            lambda: _suspects(problem, x, e, **params),
            lambda: _reference_grads(problem, x, grad_output, torch.float32, eps=e, **params)[1],
            _statistic_size(problem, x, groups)))
    _note(f"{problem} gradients", notes)


def _float32_allowed(want, want32, count):
    """The error allowed, element by element, to the gradient of an answer that computes
    in float32, where torch's float64 gradient is ``want`` and its float32 one ``want32``.

    torch's own float32 error is taken as a fraction of |want| + max|want| (each entry's
    size and the tensor's, so entries near zero are not judged alone), the largest over
    the tensor: two float32 computations spread their rounding over the entries
    differently, so entry by entry their errors do not compare. That fraction counts as
    FLOAT32_GRAD_FLOOR at least (torch's error on one input can be luckily small, the
    roundings of its input nearly cancelling), and the answer may err by
    FLOAT32_GRAD_FACTOR * ``count`` times it. ``count`` is the number of values one mean
    or variance covers: torch's layer accumulates its statistics in double and rounds
    them once, while an answer's float32 sum of ``count`` values gathers up to ``count``
    roundings (recursive summation's error bound), and a statistic's error moves every
    gradient of its group. FLOAT32_GRAD_FACTOR covers the rest: the answer's other
    operations, and how torch's error varies from input to input.

    A gradient mistake (a term lost, a detached statistic) is off by a sizeable fraction
    of the gradient itself: tests/test_tolerances.py pins both sides.
    """
    scale = want.abs() + want.abs().max()
    fraction = ((want32.double() - want).abs() / scale).nan_to_num(0.0, 0.0, 0.0).max()
    return FLOAT32_GRAD_FACTOR * count * max(fraction.item(), FLOAT32_GRAD_FLOOR) * scale


def _compare_grads(where, output, expected_output, actual, expected, names, suspects,
                   reference32, count):
    """The output of a float64 input, then its gradients, against torch's.

    The output is compared first, so a wrong formula is named once, as a wrong value.
    Its precision decides the gradients' tolerance: float64 (GRAD_RTOL, GRAD_ATOL) when
    it equals torch's float64 output to FLOAT64_RTOL, else float32 (``_float32_allowed``
    from torch's float32 gradients, returned by the callable ``reference32``, and
    ``count``, the values one statistic covers), with a note: computing in float32 costs
    no points.
    """
    _check_tensor(where, output, expected_output, suspects)
    got_output = output["tensor"]
    in_float64 = got_output.dtype == torch.float64 and torch.allclose(
        got_output, expected_output.detach(), rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    if actual is None:
        _fail(where, "the output does not depend on the input through autograd: no "
                     ".detach(), .data, .item(), torch.tensor(...) or numpy inside your answer.")
    # torch's own float32 gradients: one more backward, for float32 answers only
    expected32 = [None] * len(names) if in_float64 else reference32()
    for name, got, want, want32 in zip(names, actual, expected, expected32):
        if want is None:
            continue
        if got is None:
            _fail(where, f"no gradient reached the {name}: keep it in the autograd graph "
                         "(no .detach() or .data on it).")
        if got.shape != want.shape:
            _fail(where, f"the gradient of the {name} has shape {tuple(got.shape)}, expected "
                         f"{tuple(want.shape)}.")
        error = (got.double() - want).abs()
        if in_float64:
            close = torch.allclose(got.double(), want, rtol=GRAD_RTOL, atol=GRAD_ATOL)
            allowed_text = ""
        else:
            allowed = _float32_allowed(want, want32.reshape(want.shape), count)
            close = bool((error <= allowed).all())
            allowed_text = f", up to {_num(allowed.max().item())} allowed at float32 precision"
        if not close:
            _fail(where, f"the output matches torch's but the gradient of the {name} does not "
                         f"(max abs error {_num(error.max().item())}{allowed_text}, largest "
                         f"gradient {_num(want.abs().max().item())}): part of the computation "
                         "is hidden from autograd (.detach(), .data, an in-place change of a "
                         "tensor autograd needs, or a value computed outside torch).")
    if not in_float64:
        how = ("returns float32" if got_output.dtype != torch.float64 else
               "returns float64 but computes in float32")
        return (f"for a float64 input your answer {how}, so its values and gradients were "
                "compared at float32 precision. This costs no points. To compute at the input's "
                "precision, create tensors with torch.zeros_like(input_tensor) or "
                "input_tensor.new_zeros(...), not torch.zeros(shape), and drop .float().")
    return None


# ---------------------------------------------------------------------------
# Running statistics (P3) and the seed 004 module
# ---------------------------------------------------------------------------

INPUT_CHANGED = ("your layer changed its input tensor in place; compute a new tensor "
                 "instead (x - mean, not x -= mean or x.sub_(mean)): torch's layers leave "
                 "their input unchanged.")


def _check_input_kept(where, evidence):
    """No step of a P3 or seed 004 run changed its input in place."""
    for k, step in enumerate(evidence["steps"]):
        if step.get("input_changed"):
            _fail(f"{where}, {step['phase']} step {k + 1}", INPUT_CHANGED)


# What one value of a statistic or parameter belongs to, for a message about its shape.
STAT_OWNER = {"running_mean": "feature, as torch's running_mean",
              "running_var": "feature, as torch's running_var",
              "moving_mu": "feature or channel, shaped like gamma",
              "moving_sigma": "feature or channel, shaped like gamma",
              "gamma": "feature or channel", "beta": "feature or channel"}


def _compare_steps(where, actual, expected, stat_names, train=(), step_suspects=None):
    """Compare step by step the outputs and running statistics of two scenario runs.

    step_suspects(x): the suspects of a training step's output on the batch ``x``, one
    of ``train``."""
    for k, (got, want) in enumerate(zip(actual["steps"], expected["steps"])):
        step = f"{where}, {want['phase']} step {k + 1}"
        for stat, label in stat_names.items():
            if got[stat].get("graph"):
                _fail(step, f"{label} keeps autograd history; update it under torch.no_grad() "
                            "(or from detached statistics).")
        suspects = dict
        if step_suspects is not None and k < len(train):
            suspects = functools.partial(step_suspects, train[k])
        _check_tensor(step + " output", got["output"], want["output"]["tensor"], suspects,
                      dtype=torch.float32)  # every batch of these checks is float32
        for stat, label in stat_names.items():
            _check_tensor(f"{step} {label}", got[stat], want[stat]["tensor"],
                          shape_note=f"{label} holds one value per {STAT_OWNER[label]}")


def _diagnose_running(where, evidence, train, history_weight, stat_names, flipped_text):
    """Name the classic running-statistics mistakes before comparing numbers.

    history_weight: the weight of the old value in the correct update.
    """
    steps = evidence["steps"]
    train_steps = steps[:len(train)]
    for stat, label in stat_names.items():
        got = [s[stat].get("tensor") for s in train_steps]
        channels = train[0].shape[1] if train else 0
        if any(g is None or g.numel() != channels for g in got):
            continue  # not a statistic per channel: the comparison names its shape
        got = [g.double().reshape(-1) for g in got]
        start = torch.full_like(got[0], 0.0 if stat == "running_mean" else 1.0)

        def follows(weight_old, correction):
            value = start
            for g, x in zip(got, train):
                x = x.double()
                batch = (x.mean(_dims_batch(x)) if stat == "running_mean"
                         else x.var(_dims_batch(x), correction=correction))
                value = weight_old * value + (1 - weight_old) * batch.reshape(-1)
                if not torch.allclose(g, value, rtol=RTOL, atol=ATOL):
                    return False
            return True

        if follows(history_weight, 1):
            continue
        if history_weight != 0.5 and follows(1 - history_weight, 1):
            _fail(where, f"{label} {flipped_text}")
        if stat == "running_var" and follows(history_weight, 0):
            _fail(where, f"{label} tracks the biased variance; the running variance uses the "
                         "unbiased (N-1) one, as torch does.")
        if all(torch.equal(g, start) for g in got):
            _fail(where, f"{label} never changes during training: update it on every "
                         "training step.")
    frozen = train_steps[-1:] + steps[len(train):]
    if len(frozen) > 1 and all("tensor" in s["running_mean"] for s in frozen):
        if any(not torch.equal(s["running_mean"]["tensor"], frozen[0]["running_mean"]["tensor"])
               for s in frozen):
            _fail(where, "the running statistics changed in eval mode: there they are only "
                         "read, never updated.")


def _diagnose_eval_outputs(where, evidence, train, reference_outputs):
    """Eval outputs computed with each batch's own statistics: a classic mistake."""
    for got, want in zip(evidence["steps"][len(train):], reference_outputs):
        if "tensor" in got["output"] and got["output"]["tensor"].shape == want.shape and \
                torch.allclose(got["output"]["tensor"], want.to(got["output"]["tensor"].dtype),
                               rtol=RTOL, atol=ATOL):
            _fail(where, "in eval mode the output uses the batch's own mean and variance; "
                         "eval mode normalizes with the running statistics.")


@_one_thread
def running_stats_match(cls, size, batch, eps, momentum, train_steps, eval_steps, seed=0):
    """P3: ``cls(weight, bias, eps, momentum)`` matches nn.BatchNorm1d step by step.

    Runs ``train_steps`` training batches of shape (batch, size), then ``eval()`` and
    ``eval_steps`` batches; compares outputs and running_mean/running_var after each step.
    """
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(size, generator=gen)
    bias = torch.randn(size, generator=gen)
    train = [make_input((batch, size), seed + 1 + k) for k in range(train_steps)]
    evals = [make_input((batch, size), seed + 1000 + k) for k in range(eval_steps)]
    where = f"p3 with momentum={momentum:g}, eps={eps:g}, batches of {(batch, size)}"
    evidence = run_scenario(scenario_running, cls, weight, bias, eps, momentum, train, evals)
    _check_clean(where, evidence)
    _check_input_kept(where, evidence)
    expected, batch_stats = _running_reference(weight, bias, eps, momentum, train, evals)
    stat_names = {"running_mean": "running_mean", "running_var": "running_var"}
    _diagnose_running(where, evidence, train, 1 - momentum, stat_names,
                      "moved by 1 - momentum instead of momentum: the new batch's statistic "
                      "is weighted by momentum (torch's convention).")
    _diagnose_eval_outputs(where, evidence, train, batch_stats)
    _compare_steps(where, evidence, expected, stat_names, train, lambda x: _suspects(
        "p2", x.double(), eps, weight=weight.double(), bias=bias.double()))


@_one_thread
def running_gradients_match(cls, size, batch, eps, momentum, seed=0):
    """P3 in float64: gradients of input, weight and bias after one training step equal
    nn.BatchNorm1d's."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(size, generator=gen, dtype=torch.float64)
    bias = torch.randn(size, generator=gen, dtype=torch.float64)
    x = make_input((batch, size), seed + 1, dtype=torch.float64)
    grad_output = make_input((batch, size), seed + 2, dtype=torch.float64)
    where = f"p3 gradients, batches of {(batch, size)}"
    evidence = run_scenario(scenario_running_grads, cls, weight, bias, eps, momentum, x,
                            grad_output)
    _check_clean(where, evidence)
    reference = _running_grads_reference(weight, bias, eps, x, grad_output)
    _note(where, [_compare_grads(
        where, evidence["output"], reference["output"], evidence["grads"], reference["grads"],
        ["input", "weight", "bias"], lambda: _suspects("p2", x, eps, weight=weight, bias=bias),
        lambda: _running_grads_reference(weight, bias, eps, x, grad_output,
                                         torch.float32)["grads"],
        batch)])


@_remembered
def _running_reference(weight, bias, eps, momentum, train, evals):
    """nn.BatchNorm1d's run of ``scenario_running``, and its training-mode outputs of the
    eval batches (what a learner who forgets eval mode returns)."""
    return (scenario_running(TorchRunningBatchNorm, weight, bias, eps, momentum, train, evals),
            [_reference_output("p2", x, eps, {"weight": weight, "bias": bias}) for x in evals])


@_remembered
def _running_grads_reference(weight, bias, eps, x, grad_output, dtype=torch.float64):
    """torch's output and grads of input, weight and bias for one training step, computed
    in ``dtype``."""
    weight, bias, x = (t.detach().to(dtype, copy=True).requires_grad_(True)
                       for t in (weight, bias, x))
    out = torch.nn.functional.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    _backpropagate(out, grad_output.to(dtype))
    return {"output": out.detach(), "grads": [x.grad, weight.grad, bias.grad]}


@_one_thread
def module_matches(cls, shape, eps, momentum, train_steps, eval_steps, seed=0):
    """Seed 004 ``BatchNorm``: outputs in training and test mode and moving statistics
    match nn.BatchNorm1d/2d (torch momentum = 1 - momentum) step by step.

    shape: (N, L) or (N, C, H, W); every batch has this shape.
    """
    train = [make_input(shape, seed + k) for k in range(train_steps)]
    evals = [make_input(shape, seed + 1000 + k) for k in range(eval_steps)]
    where = f"BatchNorm({tuple(shape)}, eps={eps:g}, momentum={momentum:g})"
    evidence = run_scenario(scenario_module, cls, tuple(shape), eps, momentum, train, evals)
    _check_clean(where, evidence)
    _check_input_kept(where, evidence)
    expected, eval_outputs = _module_reference(tuple(shape), eps, momentum, train, evals)
    stat_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
    for name in ("gamma", "beta"):
        _check_tensor(f"{where}: {name} (shape {stat_shape})", evidence["params"][name],
                      expected["params"][name]["tensor"].reshape(stat_shape),
                      shape_note=f"{name} holds one value per {STAT_OWNER[name]}")
        if name not in evidence["params"]["registered"]:
            _fail(where, f"{name} is not a registered nn.Parameter of the module, so an "
                         "optimizer would never train it.")
    stat_names = {"running_mean": "moving_mu", "running_var": "moving_sigma"}
    _diagnose_running(where, evidence, train, momentum, stat_names,
                      "weights the history by 1 - momentum; here momentum weights the history: "
                      "moving = momentum * moving + (1 - momentum) * batch statistic.")
    _diagnose_eval_outputs(where, evidence, train, eval_outputs)
    _compare_steps(where, evidence, expected, stat_names, train, lambda x: _suspects(
        "p2", x.double(), eps, weight=torch.ones(stat_shape, dtype=torch.float64),
        bias=torch.zeros(stat_shape, dtype=torch.float64)))


@_remembered
def _module_reference(shape, eps, momentum, train, evals):
    """torch's run of ``scenario_module``, and a fresh layer's training-mode outputs of the
    eval batches (what a module that ignores test mode returns)."""
    reference = TorchSkeletonBatchNorm(shape, eps=eps, momentum=momentum)
    return (scenario_module(TorchSkeletonBatchNorm, shape, eps, momentum, train, evals),
            [reference(x).detach() for x in evals])


@_remembered
def _module_grads_reference(shape, x, grad_output, gamma, beta):
    """torch's run of ``scenario_module_grads``."""
    return scenario_module_grads(TorchSkeletonBatchNorm, shape, x, grad_output, gamma, beta)


@_one_thread
def module_gradients_match(cls, shape, seed=0):
    """Seed 004 ``BatchNorm`` in float64: grads of input, gamma and beta equal torch's."""
    x = make_input(shape, seed, dtype=torch.float64)
    grad_output = make_input(shape, seed + 1, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed + 2)
    gamma = torch.randn(shape[1], generator=gen, dtype=torch.float64)
    beta = torch.randn(shape[1], generator=gen, dtype=torch.float64)
    where = f"BatchNorm({tuple(shape)}) gradients"
    evidence = run_scenario(scenario_module_grads, cls, tuple(shape), x, grad_output, gamma, beta)
    _check_clean(where, evidence)
    expected = _module_grads_reference(tuple(shape), x, grad_output, gamma, beta)
    stat_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
    _note(where, [_compare_grads(
        where, evidence["output"], expected["output"]["tensor"], evidence["grads"],
        [g.reshape(a.shape) if a is not None and g is not None else g
         for g, a in zip(expected["grads"], evidence["grads"] or [None] * 3)],
        ["input", "gamma", "beta"],
        lambda: _suspects("p2", x, 1e-5, weight=gamma.view(stat_shape),
                          bias=beta.view(stat_shape)),
        lambda: _module_grads_float32(tuple(shape), x, grad_output, gamma, beta),
        x.numel() // shape[1])])


@_remembered
def _module_grads_float32(shape, x, grad_output, gamma, beta):
    """torch's grads of input, gamma and beta for the seed 004 module, computed in float32
    (``scenario_module_grads``, which answers run, makes its module float64)."""
    module = TorchSkeletonBatchNorm(shape)
    with torch.no_grad():
        module.gamma.copy_(gamma)
        module.beta.copy_(beta)
    x = x.detach().float().requires_grad_(True)
    _backpropagate(module(x), grad_output.float())
    return [x.grad, module.gamma.grad, module.beta.grad]

"""Known-wrong answers ("mutants") and correct alternatives for every problem.

Each answer is the full source of a problem's answer cell: it may import
torch, torch.nn as nn, numpy as np and math, may define notebook-style globals
(as the seed cells do), and defines the problem's function or class with the
exact name and signature of the seed:

    p1  custom_batch_norm1d(input_tensor, eps)                 (N, L), no affine
    p2  custom_batch_norm1d(input_tensor, weight, bias, eps)   (N, L), affine
    p3  CustomBatchNorm1d(weight, bias, eps, momentum)         train/eval, running stats
    p4  custom_batch_norm2d(input_tensor, eps)                 (N, C, H, W), no affine
    p5  custom_layer_norm(input_tensor, eps)                   any rank >= 2
    p6  custom_instance_norm1d(input_tensor, eps)              (N, C, L)
    p7  custom_group_norm(input_tensor, groups, eps)           (N, C, L)
    bn  BatchNorm(shape, eps=1e-5, momentum=0.9)               nn.Module of seed 004

A good test suite must fail every entry of MUTANTS and pass every entry of
CORRECT (matching torch within rtol 1e-4 / atol 1e-4 in float32; gradients on float64
inputs to rtol 1e-6 / atol 1e-8, or at float32 precision for an answer that computes in
float32; a float32 input gives float32; input not mutated; autograd kept).

Mutant families:
    estimator  wrong variance estimator, std for var, eps misplaced or missing
    reduction  statistics over the wrong dimensions / groups
    running    running (moving) statistics handled wrongly
    affine     weight/bias (gamma/beta) misused, mis-shaped or not learnable
    contract   right formula, broken contract: mutates the input, changes the
               dtype or shape, cuts the autograd graph, or only works for the
               visible example

"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    name: str     # readable id, unique, e.g. "p1_unbiased_var"
    problem: str  # "p1".."p7" or "bn"
    family: str   # "estimator", "reduction", "running", "affine", "contract"; "correct"
    why: str      # one line: the mistake (or, for correct ones, the variant)
    code: str     # the whole answer cell


MUTANTS = [
    # ------------------------------------------------------------------ p1
    Answer(
        name="p1_unbiased_var",
        problem="p1",
        family="estimator",
        why="normalizes with the unbiased (N - 1) variance, torch.var's default",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, eps):
    mean = torch.mean(input_tensor, dim=0)
    var = torch.var(input_tensor, dim=0)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p1_sqrt_of_std",
        problem="p1",
        family="estimator",
        why="uses the standard deviation where the variance belongs: divides by sqrt(std + eps)",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=0)
    std = input_tensor.std(dim=0, unbiased=False)
    return (input_tensor - mean) / torch.sqrt(std + eps)
""",
    ),
    Answer(
        name="p1_eps_outside_sqrt",
        problem="p1",
        family="estimator",
        why="adds eps to the standard deviation instead of to the variance",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=0)
    var = input_tensor.var(dim=0, unbiased=False)
    return (input_tensor - mean) / (torch.sqrt(var) + eps)
""",
    ),
    Answer(
        name="p1_no_eps",
        problem="p1",
        family="estimator",
        why="ignores eps altogether",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=0)
    var = input_tensor.var(dim=0, unbiased=False)
    return (input_tensor - mean) / torch.sqrt(var)
""",
    ),
    Answer(
        name="p1_stats_per_row",
        problem="p1",
        family="reduction",
        why="takes mean and variance of each row (dim 1) instead of each feature over the batch",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=1, keepdim=True)
    var = input_tensor.var(dim=1, unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p1_inplace_centering",
        problem="p1",
        family="contract",
        why="centers the input in place (input_tensor -= mean), overwriting the caller's tensor",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=0)
    var = input_tensor.var(dim=0, unbiased=False)
    input_tensor -= mean
    return input_tensor / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p1_numpy_float64",
        problem="p1",
        family="contract",
        why="round trip through a numpy list: returns float64 and drops the autograd graph",
        code="""\
import numpy as np
import torch


def custom_batch_norm1d(input_tensor, eps):
    x = np.array(input_tensor.tolist())
    normed = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)
    return torch.tensor(normed)
""",
    ),
    Answer(
        name="p1_two_rows_only",
        problem="p1",
        family="contract",
        why="closed form for a two-row batch (the visible example); wrong for other batch sizes",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, eps):
    first, second = input_tensor[0], input_tensor[1]
    mean = (first + second) / 2
    var = (first - second) ** 2 / 4
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p1_detached_stats",
        problem="p1",
        family="contract",
        why="statistics from a detached copy: right values, gradient treats them as constants",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, eps):
    x = input_tensor.detach()
    mean = x.mean(dim=0)
    var = x.var(dim=0, unbiased=False)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    # ------------------------------------------------------------------ p2
    Answer(
        name="p2_unbiased_var",
        problem="p2",
        family="estimator",
        why="normalizes with the unbiased (N - 1) variance",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    mean = input_tensor.mean(dim=0)
    var = input_tensor.var(dim=0)
    normed = (input_tensor - mean) / torch.sqrt(var + eps)
    return weight * normed + bias
""",
    ),
    Answer(
        name="p2_no_sqrt",
        problem="p2",
        family="estimator",
        why="divides by var + eps (no square root), i.e. by std**2",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    mean = torch.mean(input_tensor, dim=0)
    var = torch.var(input_tensor, dim=0, unbiased=False)
    normed = (input_tensor - mean) / (var + eps)
    return weight * normed + bias
""",
    ),
    Answer(
        name="p2_weight_bias_swapped",
        problem="p2",
        family="affine",
        why="scales by bias and shifts by weight",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    mean = input_tensor.mean(dim=0)
    var = input_tensor.var(dim=0, unbiased=False)
    normed = (input_tensor - mean) / torch.sqrt(var + eps)
    return bias * normed + weight
""",
    ),
    Answer(
        name="p2_minus_bias",
        problem="p2",
        family="affine",
        why="subtracts the bias instead of adding it",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    mean = input_tensor.mean(dim=0)
    var = input_tensor.var(dim=0, unbiased=False)
    normed = (input_tensor - mean) / torch.sqrt(var + eps)
    return weight * normed - bias
""",
    ),
    Answer(
        name="p2_affine_before_norm",
        problem="p2",
        family="affine",
        why="applies weight and bias first and normalizes the result",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    scaled = weight * input_tensor + bias
    mean = scaled.mean(dim=0)
    var = scaled.var(dim=0, unbiased=False)
    return (scaled - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p2_missing_bias",
        problem="p2",
        family="affine",
        why="scales by weight but never adds the bias",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    mean = input_tensor.mean(dim=0)
    var = input_tensor.var(dim=0, unbiased=False)
    return weight * (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p2_eps_literal",
        problem="p2",
        family="contract",
        why="hard-codes the visible example's eps = 1e-3 instead of using the argument",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    mean = input_tensor.mean(dim=0)
    var = input_tensor.var(dim=0, unbiased=False)
    normed = (input_tensor - mean) / torch.sqrt(var + 1e-3)
    return weight * normed + bias
""",
    ),
    Answer(
        name="p2_data_input",
        problem="p2",
        family="contract",
        why="works on input_tensor.data: right values, no gradient reaches the input",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    x = input_tensor.data
    mean = x.mean(dim=0)
    var = x.var(dim=0, unbiased=False)
    normed = (x - mean) / torch.sqrt(var + eps)
    return weight * normed + bias
""",
    ),
    Answer(
        name="p2_eps_outside_sqrt",
        problem="p2",
        family="estimator",
        why="adds eps to the standard deviation instead of to the variance",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    mean = input_tensor.mean(dim=0)
    std = torch.std(input_tensor, dim=0, unbiased=False)
    return weight * (input_tensor - mean) / (std + eps) + bias
""",
    ),
    # ------------------------------------------------------------------ p3
    Answer(
        name="p3_flipped_momentum",
        problem="p3",
        family="running",
        why="momentum weights the history: running = momentum * running + (1 - momentum) * batch",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0, unbiased=False)
            m = self.momentum
            with torch.no_grad():
                self.running_mean = m * self.running_mean + (1 - m) * mean
                self.running_var = m * self.running_var + (1 - m) * input_tensor.var(dim=0)
        else:
            mean = self.running_mean
            var = self.running_var
        normed = (input_tensor - mean) / torch.sqrt(var + self.eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_biased_running_var",
        problem="p3",
        family="estimator",
        why="feeds the biased batch variance into running_var",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0, unbiased=False)
            m = self.momentum
            with torch.no_grad():
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * var
        else:
            mean = self.running_mean
            var = self.running_var
        normed = (input_tensor - mean) / torch.sqrt(var + self.eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_unbiased_normalize",
        problem="p3",
        family="estimator",
        why="normalizes training batches with the unbiased variance (running_var is right)",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0)
            m = self.momentum
            with torch.no_grad():
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * var
        else:
            mean = self.running_mean
            var = self.running_var
        normed = (input_tensor - mean) / torch.sqrt(var + self.eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_running_std",
        problem="p3",
        family="estimator",
        why="accumulates the unbiased standard deviation into running_var",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0, unbiased=False)
            m = self.momentum
            with torch.no_grad():
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * input_tensor.std(dim=0)
        else:
            mean = self.running_mean
            var = self.running_var
        normed = (input_tensor - mean) / torch.sqrt(var + self.eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_eval_no_eps",
        problem="p3",
        family="estimator",
        why="forgets eps when normalizing with the running statistics in eval mode",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0, unbiased=False)
            m = self.momentum
            with torch.no_grad():
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * input_tensor.var(dim=0)
            normed = (input_tensor - mean) / torch.sqrt(var + self.eps)
        else:
            normed = (input_tensor - self.running_mean) / torch.sqrt(self.running_var)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_running_not_updated",
        problem="p3",
        family="running",
        why="never updates running_mean / running_var, so eval uses the initial zeros and ones",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0, unbiased=False)
        else:
            mean = self.running_mean
            var = self.running_var
        normed = (input_tensor - mean) / torch.sqrt(var + self.eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_updated_in_eval",
        problem="p3",
        family="running",
        why="updates the running statistics on every call, eval batches included",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        mean = input_tensor.mean(dim=0)
        var = input_tensor.var(dim=0, unbiased=False)
        m = self.momentum
        with torch.no_grad():
            self.running_mean = (1 - m) * self.running_mean + m * mean
            self.running_var = (1 - m) * self.running_var + m * input_tensor.var(dim=0)
        if not self.training:
            mean = self.running_mean
            var = self.running_var
        normed = (input_tensor - mean) / torch.sqrt(var + self.eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_running_in_train",
        problem="p3",
        family="running",
        why="normalizes training batches with the (just updated) running statistics",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            m = self.momentum
            with torch.no_grad():
                self.running_mean = (1 - m) * self.running_mean + m * input_tensor.mean(dim=0)
                self.running_var = (1 - m) * self.running_var + m * input_tensor.var(dim=0)
        normed = (input_tensor - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_eval_batch_stats",
        problem="p3",
        family="running",
        why="tracks running statistics but still normalizes eval batches with their own statistics",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        mean = input_tensor.mean(dim=0)
        var = input_tensor.var(dim=0, unbiased=False)
        if self.training:
            m = self.momentum
            with torch.no_grad():
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * input_tensor.var(dim=0)
        normed = (input_tensor - mean) / torch.sqrt(var + self.eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_running_keeps_graph",
        problem="p3",
        family="running",
        why="updates the running statistics outside no_grad, so they carry the autograd graph",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0, unbiased=False)
            m = self.momentum
            self.running_mean = (1 - m) * self.running_mean + m * mean
            self.running_var = (1 - m) * self.running_var + m * input_tensor.var(dim=0)
        else:
            mean = self.running_mean
            var = self.running_var
        normed = (input_tensor - mean) / torch.sqrt(var + self.eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_eval_no_affine",
        problem="p3",
        family="affine",
        why="applies weight and bias only in training mode; eval returns the bare normalized input",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0, unbiased=False)
            m = self.momentum
            with torch.no_grad():
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * input_tensor.var(dim=0)
            normed = (input_tensor - mean) / torch.sqrt(var + self.eps)
            return self.weight * normed + self.bias
        return (input_tensor - self.running_mean) / torch.sqrt(self.running_var + self.eps)

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_global_eps",
        problem="p3",
        family="contract",
        why="normalizes with the notebook's global eps = 0.1 instead of self.eps",
        code="""\
import torch

input_size = 3
batch_size = 5
eps = 1e-1


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0, unbiased=False)
            m = self.momentum
            with torch.no_grad():
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * input_tensor.var(dim=0)
        else:
            mean = self.running_mean
            var = self.running_var
        normed = (input_tensor - mean) / torch.sqrt(var + eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_inplace_centering",
        problem="p3",
        family="contract",
        why="centers the training batch in place (input_tensor -= mean)",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0, unbiased=False)
            m = self.momentum
            with torch.no_grad():
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * input_tensor.var(dim=0)
            input_tensor -= mean
            normed = input_tensor / torch.sqrt(var + self.eps)
        else:
            normed = (input_tensor - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_float64_running",
        problem="p3",
        family="contract",
        why="running statistics created with numpy are float64, so eval outputs are float64",
        code="""\
import numpy as np
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.from_numpy(np.zeros(len(weight)))
        self.running_var = torch.from_numpy(np.ones(len(weight)))
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0, unbiased=False)
            m = self.momentum
            with torch.no_grad():
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * input_tensor.var(dim=0)
        else:
            mean = self.running_mean
            var = self.running_var
        normed = (input_tensor - mean) / torch.sqrt(var + self.eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_weight_bias_swapped",
        problem="p3",
        family="affine",
        why="scales by bias and shifts by weight",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0, unbiased=False)
            m = self.momentum
            with torch.no_grad():
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * input_tensor.var(dim=0)
        else:
            mean = self.running_mean
            var = self.running_var
        normed = (input_tensor - mean) / torch.sqrt(var + self.eps)
        return self.bias * normed + self.weight

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_detached_input",
        problem="p3",
        family="contract",
        why="works on input_tensor.detach() to keep running stats graph-free: no input gradient",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        x = input_tensor.detach()
        if self.training:
            mean = x.mean(dim=0)
            var = x.var(dim=0, unbiased=False)
            m = self.momentum
            self.running_mean = (1 - m) * self.running_mean + m * mean
            self.running_var = (1 - m) * self.running_var + m * x.var(dim=0)
        else:
            mean = self.running_mean
            var = self.running_var
        normed = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight * normed + self.bias

    def eval(self):
        self.training = False
""",
    ),
    # ------------------------------------------------------------------ p4
    Answer(
        name="p4_unbiased_var",
        problem="p4",
        family="estimator",
        why="normalizes with the unbiased variance",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    mean = input_tensor.mean(dim=(0, 2, 3), keepdim=True)
    var = input_tensor.var(dim=(0, 2, 3), keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p4_eps_outside_sqrt",
        problem="p4",
        family="estimator",
        why="adds eps to the standard deviation instead of to the variance",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    mean = input_tensor.mean(dim=(0, 2, 3), keepdim=True)
    std = torch.std(input_tensor, dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (input_tensor - mean) / (std + eps)
""",
    ),
    Answer(
        name="p4_per_instance",
        problem="p4",
        family="reduction",
        why="reduces over (H, W) only, i.e. per image and channel (instance norm)",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    mean = input_tensor.mean(dim=(2, 3), keepdim=True)
    var = input_tensor.var(dim=(2, 3), unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p4_channels_last",
        problem="p4",
        family="reduction",
        why="treats the last axis as the channel axis (reduces over dims 0, 1, 2)",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    mean = input_tensor.mean(dim=(0, 1, 2), keepdim=True)
    var = input_tensor.var(dim=(0, 1, 2), unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p4_batch_dim_only",
        problem="p4",
        family="reduction",
        why="reuses the 1-D recipe: statistics over the batch only, separately for every pixel",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    mean = input_tensor.mean(dim=0)
    var = input_tensor.var(dim=0, unbiased=False)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p4_no_keepdim",
        problem="p4",
        family="contract",
        why="drops keepdim, so the (C,) statistics broadcast against the width axis",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    mean = input_tensor.mean(dim=(0, 2, 3))
    var = input_tensor.var(dim=(0, 2, 3), unbiased=False)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p4_global_channels",
        problem="p4",
        family="contract",
        why="reshapes the statistics with the notebook's global input_channels = 3",
        code="""\
import torch

input_channels = 3


def custom_batch_norm2d(input_tensor, eps):
    mean = input_tensor.mean(dim=(0, 2, 3)).view(1, input_channels, 1, 1)
    var = input_tensor.var(dim=(0, 2, 3), unbiased=False).view(1, input_channels, 1, 1)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p4_float64",
        problem="p4",
        family="contract",
        why="casts to double 'for precision' and returns a float64 tensor",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    x = input_tensor.double()
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p4_no_eps",
        problem="p4",
        family="estimator",
        why="ignores eps altogether",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    mean = input_tensor.mean(dim=(0, 2, 3), keepdim=True)
    var = input_tensor.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var)
""",
    ),
    Answer(
        name="p4_inplace_sub_div",
        problem="p4",
        family="contract",
        why="normalizes with in-place sub_/div_ on the input and returns it",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    mean = input_tensor.mean(dim=(0, 2, 3), keepdim=True)
    var = input_tensor.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return input_tensor.sub_(mean).div_(torch.sqrt(var + eps))
""",
    ),
    Answer(
        name="p4_data_stats",
        problem="p4",
        family="contract",
        why="statistics from input_tensor.data: right values, gradient treats them as constants",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    mean = input_tensor.data.mean(dim=(0, 2, 3), keepdim=True)
    var = input_tensor.data.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    # ------------------------------------------------------------------ p5
    Answer(
        name="p5_unbiased_var",
        problem="p5",
        family="estimator",
        why="normalizes with the unbiased variance",
        code="""\
import torch


def custom_layer_norm(input_tensor, eps):
    dims = tuple(range(1, input_tensor.dim()))
    mean = input_tensor.mean(dim=dims, keepdim=True)
    var = input_tensor.var(dim=dims, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p5_no_eps",
        problem="p5",
        family="estimator",
        why="ignores eps (invisible with the visible example's eps = 1e-10)",
        code="""\
import torch


def custom_layer_norm(input_tensor, eps):
    dims = tuple(range(1, input_tensor.dim()))
    mean = input_tensor.mean(dim=dims, keepdim=True)
    var = input_tensor.var(dim=dims, unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var)
""",
    ),
    Answer(
        name="p5_dims_1_2",
        problem="p5",
        family="reduction",
        why="hard-codes dims (1, 2): right for rank 3 only",
        code="""\
import torch


def custom_layer_norm(input_tensor, eps):
    mean = input_tensor.mean(dim=(1, 2), keepdim=True)
    var = input_tensor.var(dim=(1, 2), unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p5_last_dim_only",
        problem="p5",
        family="reduction",
        why="normalizes over the last dimension only, like nn.LayerNorm(shape[-1])",
        code="""\
import torch


def custom_layer_norm(input_tensor, eps):
    mean = input_tensor.mean(dim=-1, keepdim=True)
    var = input_tensor.var(dim=-1, unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p5_includes_batch_dim",
        problem="p5",
        family="reduction",
        why="reduces over every dimension, the batch dimension included",
        code="""\
import torch


def custom_layer_norm(input_tensor, eps):
    mean = input_tensor.mean()
    var = input_tensor.var(unbiased=False)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p5_flattened_output",
        problem="p5",
        family="contract",
        why="flattens each sample to compute the statistics and returns the flat (N, -1) tensor",
        code="""\
import torch


def custom_layer_norm(input_tensor, eps):
    flat = input_tensor.view(input_tensor.shape[0], -1)
    mean = flat.mean(dim=1, keepdim=True)
    var = flat.var(dim=1, unbiased=False, keepdim=True)
    return (flat - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p5_numpy_detached",
        problem="p5",
        family="contract",
        why="computes in numpy on a detached array: right values, no gradient",
        code="""\
import numpy as np
import torch


def custom_layer_norm(input_tensor, eps):
    x = input_tensor.detach().numpy()
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return torch.from_numpy((x - mean) / np.sqrt(var + eps))
""",
    ),
    Answer(
        name="p5_eps_outside_sqrt",
        problem="p5",
        family="estimator",
        why="adds eps to the standard deviation instead of to the variance",
        code="""\
import torch


def custom_layer_norm(input_tensor, eps):
    dims = tuple(range(1, input_tensor.dim()))
    mean = input_tensor.mean(dim=dims, keepdim=True)
    std = torch.std(input_tensor, dim=dims, unbiased=False, keepdim=True)
    return (input_tensor - mean) / (std + eps)
""",
    ),
    Answer(
        name="p5_inplace_centering",
        problem="p5",
        family="contract",
        why="centers the input in place (input_tensor -= mean)",
        code="""\
import torch


def custom_layer_norm(input_tensor, eps):
    dims = tuple(range(1, input_tensor.dim()))
    var = input_tensor.var(dim=dims, unbiased=False, keepdim=True)
    input_tensor -= input_tensor.mean(dim=dims, keepdim=True)
    return input_tensor / torch.sqrt(var + eps)
""",
    ),
    # ------------------------------------------------------------------ p6
    Answer(
        name="p6_unbiased_var",
        problem="p6",
        family="estimator",
        why="normalizes with the unbiased variance",
        code="""\
import torch


def custom_instance_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=2, keepdim=True)
    var = input_tensor.var(dim=2, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p6_sqrt_of_std",
        problem="p6",
        family="estimator",
        why="divides by sqrt(std + eps) instead of sqrt(var + eps)",
        code="""\
import torch


def custom_instance_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=2, keepdim=True)
    std = input_tensor.std(dim=2, unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(std + eps)
""",
    ),
    Answer(
        name="p6_eps_outside_sqrt",
        problem="p6",
        family="estimator",
        why="adds eps to the standard deviation instead of to the variance",
        code="""\
import torch


def custom_instance_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=2, keepdim=True)
    var = input_tensor.var(dim=2, unbiased=False, keepdim=True)
    return (input_tensor - mean) / (torch.sqrt(var) + eps)
""",
    ),
    Answer(
        name="p6_over_channels",
        problem="p6",
        family="reduction",
        why="takes the statistics over the channel dimension (dim 1)",
        code="""\
import torch


def custom_instance_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=1, keepdim=True)
    var = input_tensor.var(dim=1, unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p6_over_batch",
        problem="p6",
        family="reduction",
        why="takes the statistics over batch and length (dims 0, 2), i.e. batch norm",
        code="""\
import torch


def custom_instance_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=(0, 2), keepdim=True)
    var = input_tensor.var(dim=(0, 2), unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p6_over_channels_and_length",
        problem="p6",
        family="reduction",
        why="takes the statistics over channels and length (dims 1, 2), i.e. layer norm",
        code="""\
import torch


def custom_instance_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=(1, 2), keepdim=True)
    var = input_tensor.var(dim=(1, 2), unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p6_global_length",
        problem="p6",
        family="contract",
        why="flattens to rows of the notebook's global input_length = 30",
        code="""\
import torch

input_length = 30


def custom_instance_norm1d(input_tensor, eps):
    rows = input_tensor.reshape(-1, input_length)
    mean = rows.mean(dim=1, keepdim=True)
    var = rows.var(dim=1, unbiased=False, keepdim=True)
    return ((rows - mean) / torch.sqrt(var + eps)).reshape(input_tensor.shape)
""",
    ),
    Answer(
        name="p6_no_eps",
        problem="p6",
        family="estimator",
        why="ignores eps altogether",
        code="""\
import torch


def custom_instance_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=2, keepdim=True)
    var = input_tensor.var(dim=2, unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(var)
""",
    ),
    Answer(
        name="p6_numpy_float64",
        problem="p6",
        family="contract",
        why="computes in float64 numpy: returns float64 and drops the autograd graph",
        code="""\
import numpy as np
import torch


def custom_instance_norm1d(input_tensor, eps):
    x = input_tensor.detach().numpy().astype(np.float64)
    mean = x.mean(axis=2, keepdims=True)
    var = x.var(axis=2, keepdims=True)
    return torch.from_numpy((x - mean) / np.sqrt(var + eps))
""",
    ),
    # ------------------------------------------------------------------ p7
    Answer(
        name="p7_unbiased_var",
        problem="p7",
        family="estimator",
        why="normalizes with the unbiased variance",
        code="""\
import torch


def custom_group_norm(input_tensor, groups, eps):
    N, C, L = input_tensor.shape
    grouped = input_tensor.view(N, groups, C // groups, L)
    mean = grouped.mean(dim=(2, 3), keepdim=True)
    var = grouped.var(dim=(2, 3), keepdim=True)
    return ((grouped - mean) / torch.sqrt(var + eps)).view(N, C, L)
""",
    ),
    Answer(
        name="p7_eps_outside_sqrt",
        problem="p7",
        family="estimator",
        why="adds eps to the standard deviation instead of to the variance",
        code="""\
import torch


def custom_group_norm(input_tensor, groups, eps):
    N, C, L = input_tensor.shape
    grouped = input_tensor.view(N, groups, C // groups, L)
    mean = grouped.mean(dim=(2, 3), keepdim=True)
    std = torch.std(grouped, dim=(2, 3), unbiased=False, keepdim=True)
    return ((grouped - mean) / (std + eps)).view(N, C, L)
""",
    ),
    Answer(
        name="p7_interleaved_groups",
        problem="p7",
        family="reduction",
        why="puts channel c in group c % groups instead of grouping adjacent channels",
        code="""\
import torch


def custom_group_norm(input_tensor, groups, eps):
    N, C, L = input_tensor.shape
    grouped = input_tensor.view(N, C // groups, groups, L)
    mean = grouped.mean(dim=(1, 3), keepdim=True)
    var = grouped.var(dim=(1, 3), unbiased=False, keepdim=True)
    return ((grouped - mean) / torch.sqrt(var + eps)).view(N, C, L)
""",
    ),
    Answer(
        name="p7_groups_of_size_g",
        problem="p7",
        family="reduction",
        why="makes C // groups groups of `groups` channels instead of `groups` groups",
        code="""\
import torch


def custom_group_norm(input_tensor, groups, eps):
    N, C, L = input_tensor.shape
    grouped = input_tensor.view(N, C // groups, groups, L)
    mean = grouped.mean(dim=(2, 3), keepdim=True)
    var = grouped.var(dim=(2, 3), unbiased=False, keepdim=True)
    return ((grouped - mean) / torch.sqrt(var + eps)).view(N, C, L)
""",
    ),
    Answer(
        name="p7_mixes_batch",
        problem="p7",
        family="reduction",
        why="reshape(groups, -1) forgets the batch dimension, mixing samples inside a group",
        code="""\
import torch


def custom_group_norm(input_tensor, groups, eps):
    grouped = input_tensor.reshape(groups, -1)
    mean = grouped.mean(dim=1, keepdim=True)
    var = grouped.var(dim=1, unbiased=False, keepdim=True)
    return ((grouped - mean) / torch.sqrt(var + eps)).reshape(input_tensor.shape)
""",
    ),
    Answer(
        name="p7_global_channels",
        problem="p7",
        family="contract",
        why="splits channels with the notebook's global channel_count = 6",
        code="""\
import torch

channel_count = 6


def custom_group_norm(input_tensor, groups, eps):
    N, _, L = input_tensor.shape
    grouped = input_tensor.reshape(N, groups, channel_count // groups, L)
    mean = grouped.mean(dim=(2, 3), keepdim=True)
    var = grouped.var(dim=(2, 3), unbiased=False, keepdim=True)
    return ((grouped - mean) / torch.sqrt(var + eps)).reshape(input_tensor.shape)
""",
    ),
    Answer(
        name="p7_inplace_view",
        problem="p7",
        family="contract",
        why="normalizes in place through a view of the input, overwriting the caller's tensor",
        code="""\
import torch


def custom_group_norm(input_tensor, groups, eps):
    N, C, L = input_tensor.shape
    grouped = input_tensor.view(N, groups, -1)
    mean = grouped.mean(dim=2, keepdim=True)
    var = grouped.var(dim=2, unbiased=False, keepdim=True)
    grouped -= mean
    grouped /= torch.sqrt(var + eps)
    return grouped.view(N, C, L)
""",
    ),
    Answer(
        name="p7_no_eps",
        problem="p7",
        family="estimator",
        why="ignores eps altogether",
        code="""\
import torch


def custom_group_norm(input_tensor, groups, eps):
    N, C, L = input_tensor.shape
    grouped = input_tensor.view(N, groups, C // groups, L)
    mean = grouped.mean(dim=(2, 3), keepdim=True)
    var = grouped.var(dim=(2, 3), unbiased=False, keepdim=True)
    return ((grouped - mean) / torch.sqrt(var)).view(N, C, L)
""",
    ),
    Answer(
        name="p7_float64",
        problem="p7",
        family="contract",
        why="casts the groups to double and returns a float64 tensor",
        code="""\
import torch


def custom_group_norm(input_tensor, groups, eps):
    N, C, L = input_tensor.shape
    grouped = input_tensor.view(N, groups, -1).double()
    mean = grouped.mean(dim=2, keepdim=True)
    var = grouped.var(dim=2, unbiased=False, keepdim=True)
    return ((grouped - mean) / torch.sqrt(var + eps)).view(N, C, L)
""",
    ),
    # ------------------------------------------------------------------ bn
    Answer(
        name="bn_unbiased_var",
        problem="bn",
        family="estimator",
        why="normalizes training batches with the unbiased variance",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * var
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_biased_moving_var",
        problem="bn",
        family="estimator",
        why="feeds the biased batch variance into moving_sigma",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * var
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_no_sqrt",
        problem="bn",
        family="estimator",
        why="follows the notebook's step-5 formula literally: (x - mu) / (var + eps), no sqrt",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / (self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / (var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_test_no_eps",
        problem="bn",
        family="estimator",
        why="forgets eps in the test-time normalization",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_conv_batch_dim_only",
        problem="bn",
        family="reduction",
        why="uses the FC recipe for conv input too: statistics over dim 0 only, one per pixel",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) not in (2, 4):
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=0, keepdim=True)
            var = x.var(dim=0, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=0, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_conv_channels_last",
        problem="bn",
        family="reduction",
        why="reduces conv input over dims (0, 1, 2), treating the last axis as channels",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 1, 2)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_torch_momentum",
        problem="bn",
        family="running",
        why="uses torch's convention: moving = (1 - momentum) * moving + momentum * batch",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = (1 - m) * self.moving_mu + m * mean
                self.moving_sigma = (1 - m) * self.moving_sigma + m * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_moving_sigma_zeros",
        problem="bn",
        family="running",
        why="keeps the placeholder: moving_sigma starts at zeros instead of ones",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.zeros(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_moving_keeps_graph",
        problem="bn",
        family="running",
        why="updates the moving averages outside no_grad, so they carry the autograd graph",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            self.moving_mu = m * self.moving_mu + (1 - m) * mean
            self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_test_uses_batch_stats",
        problem="bn",
        family="running",
        why="normalizes test batches with their own statistics instead of the moving averages",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if len(x.shape) == 2:
            dims = (0,)
        elif len(x.shape) == 4:
            dims = (0, 2, 3)
        else:
            raise ValueError("Incorrect input shape!")
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)

        if not torch.is_grad_enabled():
            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_train_uses_moving_stats",
        problem="bn",
        family="running",
        why="updates the moving averages first and normalizes training batches with them",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_train = x_hat

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_minus_beta",
        problem="bn",
        family="affine",
        why="follows the notebook's step-6 formula literally: z = gamma * x_hat - beta",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat - self.beta
""",
    ),
    Answer(
        name="bn_beta_ones",
        problem="bn",
        family="affine",
        why="keeps the placeholder: beta starts at ones instead of zeros",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.ones(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_flat_params",
        problem="bn",
        family="affine",
        why="gamma and beta shaped (L,) / (C,) and reshaped in forward, not (1, L) / (1, C, 1, 1)",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        self.gamma = nn.Parameter(torch.ones(shape[1]))
        self.beta = nn.Parameter(torch.zeros(shape[1]))
        stat_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.moving_mu = torch.zeros(stat_shape)
        self.moving_sigma = torch.ones(stat_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        if len(x.shape) == 4:
            return self.gamma.view(1, -1, 1, 1) * x_hat + self.beta.view(1, -1, 1, 1)
        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_plain_tensor_params",
        problem="bn",
        family="affine",
        why="gamma and beta are plain tensors (requires_grad False), so they are not learnable",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = torch.ones(param_shape)
        self.beta = torch.zeros(param_shape)
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_conv_no_keepdim",
        problem="bn",
        family="contract",
        why="conv statistics without keepdim: (C,) broadcasts against the width axis",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                mean = x.mean(dim=0)
                var = x.var(dim=0, unbiased=False)
                unbiased_var = x.var(dim=0)
            elif len(x.shape) == 4:
                mean = x.mean(dim=(0, 2, 3))
                var = x.var(dim=(0, 2, 3), unbiased=False)
                unbiased_var = x.var(dim=(0, 2, 3))
            else:
                raise ValueError("Incorrect input shape!")
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * unbiased_var
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_inplace_centering",
        problem="bn",
        family="contract",
        why="centers the batch in place (x -= mean), overwriting the caller's tensor",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

            x -= mean
            x_hat = x / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_eps_literal",
        problem="bn",
        family="contract",
        why="hard-codes eps = 1e-5 (the default the visible tests use) instead of self.eps",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + 1e-5)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + 1e-5)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_eps_outside_sqrt",
        problem="bn",
        family="estimator",
        why="adds eps to the standard deviation instead of to the variance",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / (torch.sqrt(self.moving_sigma) + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / (torch.sqrt(var) + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_moving_not_updated",
        problem="bn",
        family="running",
        why="never updates the moving averages (PART 7 left out)",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_updated_in_test",
        problem="bn",
        family="running",
        why="updates the moving averages after the if/else, so test batches update them too",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        dims = (0,) if len(x.shape) == 2 else (0, 2, 3)
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

        m = self.momentum
        with torch.no_grad():
            self.moving_mu = m * self.moving_mu + (1 - m) * x.mean(dim=dims, keepdim=True)
            self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
        self._tmp_moving_mu = self.moving_mu
        self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_gamma_beta_swapped",
        problem="bn",
        family="affine",
        why="scales by beta and shifts by gamma",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            with torch.no_grad():
                self.moving_mu = m * self.moving_mu + (1 - m) * mean
                self.moving_sigma = m * self.moving_sigma + (1 - m) * x.var(dim=dims, keepdim=True)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.beta * x_hat + self.gamma
""",
    ),
    Answer(
        name="bn_detached_stats",
        problem="bn",
        family="contract",
        why="mean and var from x.detach() to avoid tracking: gradient treats them as constants",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                dims = (0,)
            elif len(x.shape) == 4:
                dims = (0, 2, 3)
            else:
                raise ValueError("Incorrect input shape!")
            x_const = x.detach()
            mean = x_const.mean(dim=dims, keepdim=True)
            var = x_const.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            m = self.momentum
            self.moving_mu = m * self.moving_mu + (1 - m) * mean
            unbiased_var = x_const.var(dim=dims, keepdim=True)
            self.moving_sigma = m * self.moving_sigma + (1 - m) * unbiased_var
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    # ------------------------------------------- patterns from real learners' answers
    Answer(
        name="p2_np_sqrt",
        problem="p2",
        family="contract",
        why="np.sqrt on a tensor: right values without grad, an error once the input requires grad",
        code="""\\
import numpy as np
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    mean = input_tensor.mean(dim=0)
    var = ((input_tensor - mean) ** 2).mean(dim=0)
    return weight * (input_tensor - mean) / np.sqrt(var + eps) + bias
""",
    ),
    Answer(
        name="p2_global_batch_size",
        problem="p2",
        family="contract",
        why="divides by the notebook's global batch_size = 5 (the example's) instead of N",
        code="""\\
import torch

input_size = 7
batch_size = 5


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    mean = input_tensor.sum(dim=0) / batch_size
    var = ((input_tensor - mean) ** 2).sum(dim=0) / batch_size
    return weight * (input_tensor - mean) / torch.sqrt(var + eps) + bias
""",
    ),
    Answer(
        name="p1_forbidden_untaken_branch",
        problem="p1",
        family="contract",
        why="calls F.batch_norm through a helper, in a branch the tests never take: still zero",
        code="""\\
import torch
import torch.nn.functional as F


def reference(input_tensor, eps):
    return F.batch_norm(input_tensor, None, None, training=True, eps=eps)


def custom_batch_norm1d(input_tensor, eps):
    if input_tensor.dim() != 2:
        return reference(input_tensor, eps)
    mean = input_tensor.mean(dim=0)
    var = input_tensor.var(dim=0, unbiased=False)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p6_detached_output",
        problem="p6",
        family="contract",
        why="returns .detach() of the right values: no gradient reaches the input",
        code="""\\
import torch


def custom_instance_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=2, keepdim=True)
    var = input_tensor.var(dim=2, unbiased=False, keepdim=True)
    return ((input_tensor - mean) / torch.sqrt(var + eps)).detach()
""",
    ),
    Answer(
        name="p6_float_loop_item_mean",
        problem="p6",
        family="contract",
        why="the float32 loop of p6_float_zeros_loop with the mean taken by .item(): right "
            "values, and a float32 gradient without the mean's term",
        code="""\
import torch


def custom_instance_norm1d(input_tensor, eps):
    x = input_tensor.float()
    N, C, L = x.shape
    normed = torch.zeros((N, C, L))
    for n in range(N):
        for c in range(C):
            row = x[n, c]
            mean = torch.mean(row).item()
            var = torch.mean((row - mean) ** 2)
            normed[n, c] = (row - mean) / torch.sqrt(var + eps)
    return normed
""",
    ),
    # ------------------------------------------------ in-place updates, parameters
    Answer(
        name="bn_moving_overwritten_in_place",
        problem="bn",
        family="running",
        why="overwrites the moving averages in place with the batch statistics (copy_): no history kept",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            dims = (0,) if x.dim() == 2 else (0, 2, 3)
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var
            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                self.moving_mu.copy_(mean)
                self.moving_sigma.copy_(var * n / (n - 1))
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma
        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_test_input_in_place",
        problem="bn",
        family="contract",
        why="test mode centers the input in place (x -= moving_mu), changing the caller's tensor",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = x.sub_(self.moving_mu).div_(torch.sqrt(self.moving_sigma + self.eps))
            self._tmp_x_hat_test = x_hat
        else:
            dims = (0,) if x.dim() == 2 else (0, 2, 3)
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var
            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                self.moving_mu = self.momentum * self.moving_mu + (1 - self.momentum) * mean
                self.moving_sigma = (self.momentum * self.moving_sigma
                                     + (1 - self.momentum) * var * n / (n - 1))
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma
        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_moving_parameter",
        problem="bn",
        family="running",
        why="moving averages made nn.Parameter(requires_grad=False), updated through .data",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = nn.Parameter(torch.zeros(param_shape), requires_grad=False)
        self.moving_sigma = nn.Parameter(torch.ones(param_shape), requires_grad=False)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            dims = (0,) if x.dim() == 2 else (0, 2, 3)
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var
            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat
            n = x.numel() // x.shape[1]
            self.moving_mu.data = self.momentum * self.moving_mu.data + (1 - self.momentum) * mean.detach()
            self.moving_sigma.data = (self.momentum * self.moving_sigma.data
                                      + (1 - self.momentum) * var.detach() * n / (n - 1))
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma
        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="p3_keepdim_running_stats",
        problem="p3",
        family="running",
        why="running statistics of shape (1, C) (keepdim=True), where torch's have shape (C,)",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros(1, len(weight))
        self.running_var = torch.ones(1, len(weight))
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0, keepdim=True)
            var = input_tensor.var(dim=0, unbiased=False, keepdim=True)
            n = input_tensor.shape[0]
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean
                self.running_var = ((1 - self.momentum) * self.running_var
                                    + self.momentum * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        return self.weight * (input_tensor - mean) / torch.sqrt(var + self.eps) + self.bias

    def eval(self):
        self.training = False
""",
    ),
]

# Mutants the visible checks cannot flag in a learner's own notebook, and why. (Answers
# that merely fit the visible inputs would be listed here too: the visible checks run
# several inputs of their own, and none in this catalog gets past them.)
VISIBLE_BLIND = {
    "p1_forbidden_untaken_branch": "torch's layer sits in a branch no input takes: the grader "
                                   "zeroes it from the code it reaches (the notebook says so); "
                                   "a check only sees what runs",
}


CORRECT = [
    # ------------------------------------------------------------------ p1
    Answer(
        name="p1_column_loop",
        problem="p1",
        family="correct",
        why="explicit loop over the features, centered second moment, torch.stack",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, eps):
    columns = []
    for j in range(input_tensor.shape[1]):
        column = input_tensor[:, j]
        centered = column - column.mean()
        variance = (centered ** 2).mean()
        columns.append(centered / torch.sqrt(variance + eps))
    return torch.stack(columns, dim=1)
""",
    ),
    Answer(
        name="p1_keepdim_rsqrt",
        problem="p1",
        family="correct",
        why="keepdim statistics, variance of the centered input, multiply by rsqrt",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=0, keepdim=True)
    centered = input_tensor - mean
    var = centered.pow(2).mean(dim=0, keepdim=True)
    return centered * torch.rsqrt(var + eps)
""",
    ),
    # ------------------------------------------------------------------ p2
    Answer(
        name="p2_var_mean_addcmul",
        problem="p2",
        family="correct",
        why="torch.var_mean(correction=0) and torch.addcmul for the affine step",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    var, mean = torch.var_mean(input_tensor, dim=0, correction=0)
    normed = (input_tensor - mean) / torch.sqrt(var + eps)
    return torch.addcmul(bias, weight, normed)
""",
    ),
    Answer(
        name="p2_folded_scale_shift",
        problem="p2",
        family="correct",
        why="folds the statistics into one per-feature scale and shift",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    mean = input_tensor.mean(dim=0)
    var = input_tensor.var(dim=0, unbiased=False)
    scale = weight / torch.sqrt(var + eps)
    shift = bias - mean * scale
    return input_tensor * scale + shift
""",
    ),
    # ------------------------------------------------------------------ p3
    Answer(
        name="p3_lerp_detach",
        problem="p3",
        family="correct",
        why="var_mean, running stats via torch.lerp on detached statistics, rsqrt helper",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if not self.training:
            return self._normalize(input_tensor, self.running_mean, self.running_var)
        var, mean = torch.var_mean(input_tensor, dim=0, correction=0)
        n = input_tensor.shape[0]
        unbiased_var = var.detach() * n / (n - 1)
        self.running_mean = torch.lerp(self.running_mean, mean.detach(), self.momentum)
        self.running_var = torch.lerp(self.running_var, unbiased_var, self.momentum)
        return self._normalize(input_tensor, mean, var)

    def _normalize(self, input_tensor, mean, var):
        return self.weight * (input_tensor - mean) * torch.rsqrt(var + self.eps) + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p3_keepdim_rescaled",
        problem="p3",
        family="correct",
        why="keepdim statistics, unbiased running variance as biased * n / (n - 1) under no_grad",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0, keepdim=True)
            centered = input_tensor - mean
            var = (centered ** 2).mean(dim=0, keepdim=True)
            n = input_tensor.shape[0]
            m = self.momentum
            with torch.no_grad():
                self.running_mean = self.running_mean * (1 - m) + mean.squeeze(0) * m
                self.running_var = self.running_var * (1 - m) + var.squeeze(0) * (n / (n - 1)) * m
            normed = centered / torch.sqrt(var + self.eps)
        else:
            normed = (input_tensor - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        return normed * self.weight + self.bias

    def eval(self):
        self.training = False
""",
    ),
    # ------------------------------------------------------------------ p4
    Answer(
        name="p4_einsum",
        problem="p4",
        family="correct",
        why="per-channel sums with einsum, statistics reshaped to (1, C, 1, 1)",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    n, c, h, w = input_tensor.shape
    count = n * h * w
    mean = torch.einsum("nchw->c", input_tensor) / count
    centered = input_tensor - mean.view(1, c, 1, 1)
    var = torch.einsum("nchw,nchw->c", centered, centered) / count
    return centered / torch.sqrt(var.view(1, c, 1, 1) + eps)
""",
    ),
    Answer(
        name="p4_channel_rows",
        problem="p4",
        family="correct",
        why="transposes to one row per channel and uses var_mean on the rows",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    channels = input_tensor.transpose(0, 1).reshape(input_tensor.shape[1], -1)
    var, mean = torch.var_mean(channels, dim=1, correction=0)
    mean = mean.view(1, -1, 1, 1)
    var = var.view(1, -1, 1, 1)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    # ------------------------------------------------------------------ p5
    Answer(
        name="p5_flatten_rows",
        problem="p5",
        family="correct",
        why="flattens every sample to a row, normalizes the rows, reshapes back",
        code="""\
import torch


def custom_layer_norm(input_tensor, eps):
    rows = input_tensor.reshape(input_tensor.shape[0], -1)
    mean = rows.mean(dim=1, keepdim=True)
    var = rows.var(dim=1, unbiased=False, keepdim=True)
    return ((rows - mean) / torch.sqrt(var + eps)).reshape(input_tensor.shape)
""",
    ),
    Answer(
        name="p5_var_mean_rsqrt",
        problem="p5",
        family="correct",
        why="torch.var_mean over dims 1.. with keepdim, multiply by rsqrt",
        code="""\
import torch


def custom_layer_norm(input_tensor, eps):
    dims = list(range(1, input_tensor.dim()))
    var, mean = torch.var_mean(input_tensor, dim=dims, keepdim=True, correction=0)
    return (input_tensor - mean) * torch.rsqrt(var + eps)
""",
    ),
    # ------------------------------------------------------------------ p6
    Answer(
        name="p6_flatten_instances",
        problem="p6",
        family="correct",
        why="one row per (sample, channel), centered second moment, view back",
        code="""\
import torch


def custom_instance_norm1d(input_tensor, eps):
    n, c, length = input_tensor.shape
    rows = input_tensor.reshape(n * c, length)
    centered = rows - rows.mean(dim=1, keepdim=True)
    var = (centered ** 2).mean(dim=1, keepdim=True)
    return (centered / torch.sqrt(var + eps)).view(n, c, length)
""",
    ),
    Answer(
        name="p6_std_squared",
        problem="p6",
        family="correct",
        why="biased standard deviation squared as the variance, negative dim index",
        code="""\
import torch


def custom_instance_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=-1, keepdim=True)
    std = input_tensor.std(dim=-1, unbiased=False, keepdim=True)
    return (input_tensor - mean) / torch.sqrt(std ** 2 + eps)
""",
    ),
    # ------------------------------------------------------------------ p7
    Answer(
        name="p7_reshape_groups",
        problem="p7",
        family="correct",
        why="reshape to (N, groups, -1), var_mean over the last dim, reshape_as back",
        code="""\
import torch


def custom_group_norm(input_tensor, groups, eps):
    grouped = input_tensor.reshape(input_tensor.shape[0], groups, -1)
    var, mean = torch.var_mean(grouped, dim=2, keepdim=True, correction=0)
    return ((grouped - mean) / torch.sqrt(var + eps)).reshape_as(input_tensor)
""",
    ),
    Answer(
        name="p7_loop_groups",
        problem="p7",
        family="correct",
        why="explicit loop over channel slices, torch.cat along the channels",
        code="""\
import torch


def custom_group_norm(input_tensor, groups, eps):
    size = input_tensor.shape[1] // groups
    parts = []
    for g in range(groups):
        part = input_tensor[:, g * size:(g + 1) * size]
        mean = part.mean(dim=(1, 2), keepdim=True)
        var = part.var(dim=(1, 2), unbiased=False, keepdim=True)
        parts.append((part - mean) / torch.sqrt(var + eps))
    return torch.cat(parts, dim=1)
""",
    ),
    # ------------------------------------------------------------------ bn
    Answer(
        name="bn_seed_style",
        problem="bn",
        family="correct",
        why="the skeleton filled in branch by branch: (L,) mean for FC input, keepdim for conv",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")

        self.eps = eps
        self.momentum = momentum

        if len(shape) == 2:
            param_shape = (1, shape[1])
        else:
            param_shape = (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))

        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                mean = x.mean(dim=0)
                var = x.var(dim=0, unbiased=False)
                unbiased_var = x.var(dim=0)
            elif len(x.shape) == 4:
                mean = x.mean(dim=(0, 2, 3), keepdim=True)
                var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
                unbiased_var = x.var(dim=(0, 2, 3), keepdim=True)
            else:
                raise ValueError("Incorrect input shape!")
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            with torch.no_grad():
                self.moving_mu = self.momentum * self.moving_mu + (1 - self.momentum) * mean
                self.moving_sigma = (self.momentum * self.moving_sigma
                                     + (1 - self.momentum) * unbiased_var)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        z = self.gamma * x_hat + self.beta
        return z
""",
    ),
    Answer(
        name="bn_buffers_var_mean",
        problem="bn",
        family="correct",
        why="moving stats as registered buffers, var_mean, detached updates, rsqrt",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = [1, shape[1]] + [1] * (len(shape) - 2)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.register_buffer("moving_mu", torch.zeros(param_shape))
        self.register_buffer("moving_sigma", torch.ones(param_shape))

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) * torch.rsqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            if x.dim() not in (2, 4):
                raise ValueError("Incorrect input shape!")
            dims = [0] + list(range(2, x.dim()))
            var, mean = torch.var_mean(x, dim=dims, keepdim=True, correction=0)
            self._tmp_mean = mean
            self._tmp_var = var

            x_hat = (x - mean) * torch.rsqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat

            n = x.numel() // mean.numel()
            keep = self.momentum
            self.moving_mu = keep * self.moving_mu + (1 - keep) * mean.detach()
            self.moving_sigma = keep * self.moving_sigma + (1 - keep) * var.detach() * n / (n - 1)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        return self.gamma * x_hat + self.beta
""",
    ),
    # ------------------------------------------- patterns from real learners' answers
    Answer(
        name="p1_float32_buffer_loop",
        problem="p1",
        family="correct",
        why="fills a torch.zeros(shape) buffer (always float32) column by column: float32 precision",
        code="""\\
import torch


def custom_batch_norm1d(input_tensor, eps):
    normed_tensor = torch.zeros(input_tensor.shape)
    for i in range(input_tensor.shape[1]):
        column = input_tensor[:, i]
        mean = torch.sum(column) / len(column)
        var = torch.sum((column - mean) ** 2) / len(column)
        normed_tensor[:, i] = (column - mean) / torch.sqrt(var + eps)
    return normed_tensor
""",
    ),
    Answer(
        name="p1_loop_at_input_dtype",
        problem="p1",
        family="correct",
        why="the same loop into torch.zeros_like(input_tensor): computed at the input's dtype",
        code="""\\
import torch


def custom_batch_norm1d(input_tensor, eps):
    normed_tensor = torch.zeros_like(input_tensor)
    for i in range(input_tensor.shape[1]):
        column = input_tensor[:, i]
        mean = torch.sum(column) / len(column)
        var = torch.sum((column - mean) ** 2) / len(column)
        normed_tensor[:, i] = (column - mean) / torch.sqrt(var + eps)
    return normed_tensor
""",
    ),
    Answer(
        name="p2_float_then_affine",
        problem="p2",
        family="correct",
        why=".float() on the input; the float64 weight promotes the output back: float32 precision",
        code="""\\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    x = input_tensor.float()
    mean = x.mean(dim=0)
    var = ((x - mean) ** 2).mean(dim=0)
    return weight * (x - mean) / torch.sqrt(var + eps) + bias
""",
    ),
    Answer(
        name="p3_method_named_batch_norm",
        problem="p3",
        family="correct",
        why="its own method and attribute named batch_norm / layer_norm: names alone are no use",
        code="""\\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight, self.bias, self.eps, self.momentum = weight, bias, eps, momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True
        self.layer_norm = None  # a learner's leftover attribute

    def batch_norm(self, input_tensor, mean, var):
        return self.weight * (input_tensor - mean) / torch.sqrt(var + self.eps) + self.bias

    def __call__(self, input_tensor):
        if not self.training:
            return self.batch_norm(input_tensor, self.running_mean, self.running_var)
        mean = input_tensor.mean(dim=0)
        var = input_tensor.var(dim=0, unbiased=False)
        with torch.no_grad():
            m = self.momentum
            self.running_mean = (1 - m) * self.running_mean + m * mean
            self.running_var = (1 - m) * self.running_var + m * input_tensor.var(dim=0)
        return self.batch_norm(input_tensor, mean, var)

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p5_prints_inside",
        problem="p5",
        family="correct",
        why="prints the shape and the statistics on every call",
        code="""\\
import torch


def custom_layer_norm(input_tensor, eps):
    print("input", input_tensor.shape)
    dims = tuple(range(1, input_tensor.dim()))
    mean = input_tensor.mean(dim=dims, keepdim=True)
    var = input_tensor.var(dim=dims, unbiased=False, keepdim=True)
    print("mean", mean.flatten()[:3], "var", var.flatten()[:3])
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p6_ones_buffer_loop",
        problem="p6",
        family="correct",
        why="fills a torch.ones(N, C, L) buffer (float32) instance by instance: float32 precision",
        code="""\\
import torch


def custom_instance_norm1d(input_tensor, eps):
    N, C, L = input_tensor.shape
    out = torch.ones(N, C, L)
    for n in range(N):
        for c in range(C):
            row = input_tensor[n, c]
            out[n, c] = (row - row.mean()) / torch.sqrt(row.var(unbiased=False) + eps)
    return out
""",
    ),
    Answer(
        name="p6_float_zeros_loop",
        problem="p6",
        family="correct",
        why=".float() and a torch.zeros(shape) buffer filled sample by sample, channel by "
            "channel (a real learner's answer): float32 precision on ill-conditioned channels",
        code="""\
import torch


def custom_instance_norm1d(input_tensor, eps):
    x = input_tensor.float()
    N, C, L = x.shape
    normed = torch.zeros((N, C, L))
    for n in range(N):
        for c in range(C):
            row = x[n, c]
            mean = torch.mean(row)
            var = torch.mean((row - mean) ** 2)
            normed[n, c] = (row - mean) / torch.sqrt(var + eps)
    return normed
""",
    ),
    Answer(
        name="p6_names_of_torchs_functions",
        problem="p6",
        family="correct",
        why="its own local variable, parameter, nested function, loop and comprehension "
            "variables and object attribute named as torch's functions",
        code="""\
import torch


class Normalizer:
    def __init__(self, instance_norm):
        self.instance_norm = instance_norm


def custom_instance_norm1d(input_tensor, eps):
    def instance_norm(sample):
        mean = sample.mean(dim=-1, keepdim=True)
        layer_norm = (sample - mean) / torch.sqrt(((sample - mean) ** 2).mean(dim=-1, keepdim=True) + eps)
        return layer_norm

    normalizer = Normalizer(instance_norm)
    samples = []
    for batch_norm in input_tensor.unbind(0):
        samples.append(normalizer.instance_norm(batch_norm))
    return torch.stack([group_norm for group_norm in samples])
""",
    ),
    Answer(
        name="p5_float_sample_loop",
        problem="p5",
        family="correct",
        why=".float() and a torch.zeros(shape) buffer filled sample by sample: float32 precision",
        code="""\
import torch


def custom_layer_norm(input_tensor, eps):
    x = input_tensor.float()
    normed = torch.zeros(x.shape)
    for n in range(x.shape[0]):
        sample = x[n]
        mean = sample.mean()
        var = ((sample - mean) ** 2).mean()
        normed[n] = (sample - mean) / torch.sqrt(var + eps)
    return normed
""",
    ),
    Answer(
        name="p7_float_group_loop",
        problem="p7",
        family="correct",
        why=".float() and a torch.zeros(shape) buffer filled group by group of each sample: "
            "float32 precision",
        code="""\
import torch


def custom_group_norm(input_tensor, groups, eps):
    x = input_tensor.float()
    N, C, L = x.shape
    size = C // groups
    normed = torch.zeros(x.shape)
    for n in range(N):
        for g in range(groups):
            part = x[n, g * size:(g + 1) * size]
            mean = part.mean()
            var = ((part - mean) ** 2).mean()
            normed[n, g * size:(g + 1) * size] = (part - mean) / torch.sqrt(var + eps)
    return normed
""",
    ),
    # ------------------------------------- the original course's cells, pasted whole
    Answer(
        name="p1_seed_cell",
        problem="p1",
        family="correct",
        why="the original course's answer cell pasted whole, its scaffolding included",
        code="""\\
import numpy as np
import torch
import torch.nn as nn

def custom_batch_norm1d(input_tensor, eps):
    mean = torch.mean(input_tensor, dim=0)
    var = torch.var(input_tensor, dim=0, unbiased=False)
    normed_tensor = (input_tensor - mean) / torch.sqrt(var + eps)
    return normed_tensor

input_tensor = torch.Tensor([[0.0, 0, 1, 0, 2], [0, 1, 1, 0, 10]])
batch_norm = nn.BatchNorm1d(input_tensor.shape[1], affine=False)
""",
    ),
    Answer(
        name="p2_seed_cell",
        problem="p2",
        family="correct",
        why="the original course's answer cell pasted whole, its scaffolding included",
        code="""\\
import torch
import torch.nn as nn

input_size = 7
batch_size = 5
input_tensor = torch.randn(batch_size, input_size, dtype=torch.float)

eps = 1e-3

def custom_batch_norm1d(input_tensor, weight, bias, eps):
    mean = torch.mean(input_tensor, dim=0)
    var = torch.var(input_tensor, dim=0, unbiased=False)
    normed_tensor = (input_tensor - mean) / torch.sqrt(var + eps)
    return weight * normed_tensor + bias
""",
    ),
    Answer(
        name="p3_seed_cell",
        problem="p3",
        family="correct",
        why="the original course's answer cell pasted whole, its scaffolding included",
        code="""\\
import torch
import torch.nn as nn


input_size = 3
batch_size = 5
eps = 1e-1


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = torch.mean(input_tensor, dim=0)
            var = torch.var(input_tensor, dim=0, unbiased=False)

            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean
                self.running_var = (1 - self.momentum) * self.running_var + self.momentum * torch.var(input_tensor, dim=0, unbiased=True)

            normed_tensor = (input_tensor - mean) / torch.sqrt(var + self.eps)
        else:
            normed_tensor = (input_tensor - self.running_mean) / torch.sqrt(self.running_var + self.eps)

        return self.weight * normed_tensor + self.bias

    def eval(self):
        self.training = False

batch_norm = nn.BatchNorm1d(input_size, eps=eps)
batch_norm.bias.data = torch.randn(input_size, dtype=torch.float)
batch_norm.weight.data = torch.randn(input_size, dtype=torch.float)
batch_norm.momentum = 0.5

custom_batch_norm1d = CustomBatchNorm1d(batch_norm.weight.data,
                                        batch_norm.bias.data, eps, batch_norm.momentum)
""",
    ),
    Answer(
        name="p4_seed_cell",
        problem="p4",
        family="correct",
        why="the original course's answer cell pasted whole, its scaffolding included",
        code="""\\
import torch
import torch.nn as nn

eps = 1e-3

input_channels = 3
batch_size = 3
height = 10
width = 10

batch_norm_2d = nn.BatchNorm2d(input_channels, affine=False, eps=eps)

input_tensor = torch.randn(batch_size, input_channels, height, width, dtype=torch.float)


def custom_batch_norm2d(input_tensor, eps):
    mean = torch.mean(input_tensor, dim=(0, 2, 3), keepdim=True)
    var = torch.var(input_tensor, dim=(0, 2, 3), unbiased=False, keepdim=True)

    normed_tensor = (input_tensor - mean) / torch.sqrt(var + eps)
    return normed_tensor
""",
    ),
    Answer(
        name="p5_seed_cell",
        problem="p5",
        family="correct",
        why="the original course's answer cell pasted whole, its scaffolding included",
        code="""\\
import torch
import torch.nn as nn


eps = 1e-10


def custom_layer_norm(input_tensor, eps):
    normalize_dims = tuple(range(1, input_tensor.dim()))
    mean = torch.mean(input_tensor, dim=normalize_dims, keepdim=True)
    var = torch.var(input_tensor, dim=normalize_dims, unbiased=False, keepdim=True)

    normed_tensor = (input_tensor - mean) / torch.sqrt(var + eps)
    return normed_tensor
""",
    ),
    Answer(
        name="p5_seed_cells_with_check",
        problem="p5",
        family="correct",
        why="the original course's answer cell and its validation cell pasted together: its "
            "loop binds dim_count, as the example's does, and runs nn.LayerNorm beside the answer",
        code="""\\
import torch
import torch.nn as nn


eps = 1e-10


def custom_layer_norm(input_tensor, eps):
    normalize_dims = tuple(range(1, input_tensor.dim()))
    mean = torch.mean(input_tensor, dim=normalize_dims, keepdim=True)
    var = torch.var(input_tensor, dim=normalize_dims, unbiased=False, keepdim=True)

    normed_tensor = (input_tensor - mean) / torch.sqrt(var + eps)
    return normed_tensor

all_correct = True
for dim_count in range(3, 9):
  input_tensor = torch.randn(*list(range(3, dim_count + 2)), dtype=torch.float)
  layer_norm = nn.LayerNorm(input_tensor.size()[1:], elementwise_affine=False, eps=eps)

  norm_output = layer_norm(input_tensor)
  custom_output = custom_layer_norm(input_tensor, eps)

  all_correct &= torch.allclose(norm_output, custom_output, 1e-2)
  all_correct &= norm_output.shape == custom_output.shape
print(all_correct)
""",
    ),
    Answer(
        name="p6_seed_cell",
        problem="p6",
        family="correct",
        why="the original course's answer cell pasted whole, its scaffolding included",
        code="""\\
import torch
import torch.nn as nn

eps = 1e-3

batch_size = 5
input_channels = 2
input_length = 30

instance_norm = nn.InstanceNorm1d(input_channels, affine=False, eps=eps)

input_tensor = torch.randn(batch_size, input_channels, input_length, dtype=torch.float)


def custom_instance_norm1d(input_tensor, eps):
    mean = torch.mean(input_tensor, dim=2, keepdim=True)
    var = torch.var(input_tensor, dim=2, unbiased=False, keepdim=True)

    normed_tensor = (input_tensor - mean) / torch.sqrt(var + eps)
    return normed_tensor
""",
    ),
    Answer(
        name="p7_seed_cell",
        problem="p7",
        family="correct",
        why="the original course's answer cell pasted whole, its scaffolding included",
        code="""\\
import torch
import torch.nn as nn

channel_count = 6
eps = 1e-3
batch_size = 20
input_size = 2

input_tensor = torch.randn(batch_size, channel_count, input_size)


def custom_group_norm(input_tensor, groups, eps):
    N, C, L = input_tensor.shape
    reshaped_input = input_tensor.view(N, groups, C // groups, L)

    mean = torch.mean(reshaped_input, dim=(2, 3), keepdim=True)
    var = torch.var(reshaped_input, dim=(2, 3), unbiased=False, keepdim=True)

    normed_tensor = (reshaped_input - mean) / torch.sqrt(var + eps)
    normed_tensor = normed_tensor.view(N, C, L)

    return normed_tensor
""",
    ),
    # ------------------------------------- in-place updates, float32 running stats
    Answer(
        name="bn_in_place_buffer_updates",
        problem="bn",
        family="correct",
        why="moving averages as buffers updated in place under no_grad (mul_ then add_), as torch does",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.register_buffer("moving_mu", torch.zeros(param_shape))
        self.register_buffer("moving_sigma", torch.ones(param_shape))

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            dims = (0,) if x.dim() == 2 else (0, 2, 3)
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var
            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                self.moving_mu.mul_(self.momentum).add_((1 - self.momentum) * mean)
                self.moving_sigma.mul_(self.momentum).add_((1 - self.momentum) * var * n / (n - 1))
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma
        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_copy_lerp_in_place",
        problem="bn",
        family="correct",
        why="moving averages as plain attributes updated in place: copy_ of the new mean, lerp_ of the variance",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            dims = (0,) if x.dim() == 2 else (0, 2, 3)
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var
            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                self.moving_mu.copy_(self.momentum * self.moving_mu + (1 - self.momentum) * mean)
                self.moving_sigma.lerp_(var * n / (n - 1), 1 - self.momentum)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma
        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="bn_lerp_plain_attributes",
        problem="bn",
        family="correct",
        why="torch.lerp on detached statistics into plain-attribute moving averages (torch.zeros(shape))",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            dims = (0,) if x.dim() == 2 else (0, 2, 3)
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=False, keepdim=True)
            self._tmp_mean = mean
            self._tmp_var = var
            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat
            n = x.numel() // x.shape[1]
            self.moving_mu = torch.lerp(self.moving_mu, mean.detach(), 1 - self.momentum)
            self.moving_sigma = torch.lerp(self.moving_sigma, (var * n / (n - 1)).detach(),
                                           1 - self.momentum)
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma
        return self.gamma * x_hat + self.beta
""",
    ),
    Answer(
        name="p3_zeros_lerp_in_place",
        problem="p3",
        family="correct",
        why="running statistics made by torch.zeros(weight.shape) (float32), updated in place with lerp_",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros(weight.shape)
        self.running_var = torch.ones(weight.shape)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = input_tensor.var(dim=0, unbiased=False)
            n = input_tensor.shape[0]
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(input_tensor.var(dim=0), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return self.weight * (input_tensor - mean) / torch.sqrt(var + self.eps) + self.bias

    def eval(self):
        self.training = False
""",
    ),
    # ------------------------------- one-pass variance (the checks' inputs are well-conditioned)
    Answer(
        name="p1_one_pass_var",
        problem="p1",
        family="correct",
        why="variance as E[x**2] - E[x]**2 in float32: exact enough on well-conditioned inputs",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=0)
    var = (input_tensor ** 2).mean(dim=0) - mean ** 2
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p2_one_pass_var",
        problem="p2",
        family="correct",
        why="variance as E[x*x] - E[x]**2 (sums over N) in float32",
        code="""\
import torch


def custom_batch_norm1d(input_tensor, weight, bias, eps):
    n = input_tensor.shape[0]
    mean = input_tensor.sum(dim=0) / n
    var = (input_tensor * input_tensor).sum(dim=0) / n - mean * mean
    return weight * (input_tensor - mean) / torch.sqrt(var + eps) + bias
""",
    ),
    Answer(
        name="p3_one_pass_var",
        problem="p3",
        family="correct",
        why="variance as E[x**2] - E[x]**2 in float32, Bessel's correction applied to it for the running variance",
        code="""\
import torch


class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.weight = weight
        self.bias = bias
        self.eps = eps
        self.momentum = momentum
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)
        self.training = True

    def __call__(self, input_tensor):
        if self.training:
            mean = input_tensor.mean(dim=0)
            var = (input_tensor ** 2).mean(dim=0) - mean ** 2
            n = input_tensor.shape[0]
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean
                self.running_var = ((1 - self.momentum) * self.running_var
                                    + self.momentum * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        return self.weight * (input_tensor - mean) / torch.sqrt(var + self.eps) + self.bias

    def eval(self):
        self.training = False
""",
    ),
    Answer(
        name="p4_one_pass_var",
        problem="p4",
        family="correct",
        why="variance as E[x**2] - E[x]**2 in float32 over dims (0, 2, 3)",
        code="""\
import torch


def custom_batch_norm2d(input_tensor, eps):
    mean = input_tensor.mean(dim=(0, 2, 3), keepdim=True)
    var = (input_tensor ** 2).mean(dim=(0, 2, 3), keepdim=True) - mean ** 2
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p5_one_pass_var",
        problem="p5",
        family="correct",
        why="variance as E[x**2] - E[x]**2 in float32 over every dim but 0",
        code="""\
import torch


def custom_layer_norm(input_tensor, eps):
    dims = tuple(range(1, input_tensor.dim()))
    mean = input_tensor.mean(dim=dims, keepdim=True)
    var = torch.square(input_tensor).mean(dim=dims, keepdim=True) - torch.square(mean)
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p6_one_pass_var",
        problem="p6",
        family="correct",
        why="variance as E[x**2] - E[x]**2 in float32 over the length",
        code="""\
import torch


def custom_instance_norm1d(input_tensor, eps):
    mean = input_tensor.mean(dim=2, keepdim=True)
    var = (input_tensor ** 2).mean(dim=2, keepdim=True) - mean ** 2
    return (input_tensor - mean) / torch.sqrt(var + eps)
""",
    ),
    Answer(
        name="p7_one_pass_var",
        problem="p7",
        family="correct",
        why="variance as E[x**2] - E[x]**2 in float32 within each group",
        code="""\
import torch


def custom_group_norm(input_tensor, groups, eps):
    n, c, length = input_tensor.shape
    grouped = input_tensor.reshape(n, groups, -1)
    mean = grouped.mean(dim=-1, keepdim=True)
    var = (grouped ** 2).mean(dim=-1, keepdim=True) - mean ** 2
    return ((grouped - mean) / torch.sqrt(var + eps)).reshape(n, c, length)
""",
    ),
    Answer(
        name="bn_one_pass_var",
        problem="bn",
        family="correct",
        why="variance as E[x**2] - E[x]**2 in float32, times n / (n - 1) for the moving variance",
        code="""\
import torch
import torch.nn as nn


class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        param_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.moving_mu = torch.zeros(param_shape)
        self.moving_sigma = torch.ones(param_shape)

    def forward(self, x):
        if not torch.is_grad_enabled():
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            self._tmp_x_hat_test = x_hat
        else:
            dims = (0,) if x.dim() == 2 else (0, 2, 3)
            mean = x.mean(dim=dims, keepdim=True)
            var = (x ** 2).mean(dim=dims, keepdim=True) - mean ** 2
            self._tmp_mean = mean
            self._tmp_var = var
            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            self._tmp_x_hat_train = x_hat
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                self.moving_mu = self.momentum * self.moving_mu + (1 - self.momentum) * mean
                self.moving_sigma = (self.momentum * self.moving_sigma
                                     + (1 - self.momentum) * var * n / (n - 1))
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma
        return self.gamma * x_hat + self.beta
""",
    ),
]

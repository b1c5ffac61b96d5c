"""The checks' tolerances, pinned by near-miss answers (normcheck called directly, fast).

Values (outputs, running statistics) are compared within rtol = atol = 1e-4 and float64
gradients within rtol 1e-6, atol 1e-8 (normcheck's RTOL/ATOL, GRAD_RTOL/GRAD_ATOL): the
reference answer off by 3x the tolerance must fail, off by far less than it must pass.
"""
import pytest
import torch

from coursedir import demo
from course import normcheck as check

VALUE_MISS, VALUE_NEAR = 3e-4, 1e-6  # absolute offsets of every value
GRAD_MISS, GRAD_NEAR = 3e-6, 1e-8  # relative errors of every gradient


def reference(grade_id, name):
    """The function or class ``name`` of the reference answer ``grade_id``."""
    namespace = {"torch": torch, "nn": torch.nn}
    exec(compile(demo.reference_answers("normalization")[grade_id], grade_id, "exec"),
         namespace)
    return namespace[name]


REF = {"p1": reference("p1_answer", "custom_batch_norm1d"),
       "p2": reference("p2_answer", "custom_batch_norm1d"),
       "p3": reference("p3_answer", "CustomBatchNorm1d")}


def shifted(fn, offset):
    """``fn`` with ``offset`` added to every output value (its gradients unchanged)."""
    return lambda *args: fn(*args) + offset


def scaled_grads(fn, error):
    """``fn`` with the same values and every gradient scaled by 1 + ``error``."""
    def near(*args):
        out = fn(*args)
        return out + error * (out - out.detach())
    return near


def p1(answer):
    check.function_matches("p1", answer, [(16, 5), (7, 3)], [1e-5, 1e-3], seed=3)


def p2_grads(answer):
    check.gradients_match("p2", answer, [(8, 4)], seed=5)


def p3(cls):
    check.running_stats_match(cls, 4, 16, 1e-5, 0.1, 3, 2, seed=7)


def p3_grads(cls):
    check.running_gradients_match(cls, 4, 16, 1e-5, 0.1, seed=9)


class RunningStatsOff(REF["p3"]):
    """The reference P3 class whose running statistics are off by ``offset`` (subclassed
    with the offset set)."""
    offset = 0.0

    def __call__(self, x):
        out = super().__call__(x)
        if self.training:
            self.running_mean = self.running_mean + self.offset
            self.running_var = self.running_var + self.offset
        return out


def running_stats_off(offset):
    return type("Off", (RunningStatsOff,), {"offset": offset})


class GradsOff(REF["p3"]):
    """The reference P3 class whose gradients are scaled by 1 + ``error``."""
    error = 0.0

    def __call__(self, x):
        out = super().__call__(x)
        return out + self.error * (out - out.detach())


def grads_off(error):
    return type("GradsOff", (GradsOff,), {"error": error})


def test_the_references_pass():
    """The baseline: what the near misses below are near."""
    p1(REF["p1"])
    p2_grads(REF["p2"])
    p3(REF["p3"])
    p3_grads(REF["p3"])


@pytest.mark.parametrize("offset, passes", [(VALUE_NEAR, True), (-VALUE_NEAR, True),
                                            (VALUE_MISS, False), (-VALUE_MISS, False)])
def test_output_values_within_1e_4(offset, passes):
    answer = shifted(REF["p1"], offset)
    if passes:
        p1(answer)
    else:
        with pytest.raises(AssertionError, match="values differ"):
            p1(answer)


@pytest.mark.parametrize("error, passes", [(GRAD_NEAR, True), (GRAD_MISS, False)])
def test_gradients_within_1e_6_relative(error, passes):
    answer = scaled_grads(REF["p2"], error)
    if passes:
        p2_grads(answer)
    else:
        with pytest.raises(AssertionError, match="gradient of the input (differs|does not)"):
            p2_grads(answer)


@pytest.mark.parametrize("offset, passes", [(VALUE_NEAR, True), (VALUE_MISS, False)])
def test_running_statistics_within_1e_4(offset, passes):
    cls = running_stats_off(offset)
    if passes:
        p3(cls)
    else:
        with pytest.raises(AssertionError, match="running_mean|running_var"):
            p3(cls)


@pytest.mark.parametrize("error, passes", [(GRAD_NEAR, True), (GRAD_MISS, False)])
def test_running_layer_gradients_within_1e_6_relative(error, passes):
    if passes:
        p3_grads(grads_off(error))
    else:
        with pytest.raises(AssertionError, match="gradient of the input (differs|does not)"):
            p3_grads(grads_off(error))

"""Calibrate the float32 gradient allowance (normcheck._float32_allowed); print its figures.

    python tests/float32_calibration.py [SEEDS]      (default 200; about 40 s per 100)

Runs every gradient check of the two notebooks (visible and hidden cells, read from
source/) at SEEDS seeds each (the cell's seed + 1000 k), on answers that compute in float32
for a float64 input: correct ones of every problem (the catalog's float32 answers, and
float32 versions of the reference answers: `.float()`, loops, torch.zeros buffers), and the
same with a realistic gradient mistake. For each check call it records the ratio of the
answer's gradient error to the error allowed (largest over its cases and tensors). A
correct answer must stay well below 1 on every call; a mistake must exceed 1 on every call
(a check fails when one case fails). Prints, per answer, the largest and the smallest ratio.
"""
import contextlib
import io
import re
import sys

import nbformat
import numpy as np
import torch

from catalog import CORRECT, MUTANTS
from coursedir import ASSIGNMENTS, REPO
from course import demo
from course import normcheck as check

GRADIENT_CHECKS = ("gradients_match", "running_gradients_match", "module_gradients_match")
# Realistic mistakes, as edits of an answer's lines: (pattern, replacement)
MISTAKES = {
    "detached_denominator": (r"torch\.sqrt\(var \+ (self\.)?eps\)", r"\g<0>.detach()"),
    "detached_mean": (r"(?m)^(\s*mean = .*)$", r"\1.detach()"),
}


def gradient_calls():
    """{problem: [(check function name, args, kwargs)]}: every gradient check the notebooks'
    cells make (they are run with a recording stand-in for normcheck)."""
    calls = {}
    for assignment, notebook in ASSIGNMENTS.items():
        nb = nbformat.read(f"{REPO}/source/{assignment}/{notebook}", as_version=4)
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            if cell.cell_type != "code" or not re.search("|".join(GRADIENT_CHECKS), cell.source):
                continue
            problem = grade_id.split("_")[0]

            class Recorder:
                def __getattr__(self, name, problem=problem):
                    def record(*args, **kwargs):
                        if name in GRADIENT_CHECKS:
                            calls.setdefault(problem, []).append((name, args, kwargs))
                    return record
            with contextlib.redirect_stdout(io.StringIO()):  # the cells' closing prints
                exec(cell.source, {"check": Recorder(), "torch": torch, "np": np,
                                   "CustomBatchNorm1d": None, "BatchNorm": None,
                                   **{f: None for f in FUNCTIONS.values()}})
    return calls


FUNCTIONS = {"p1": "custom_batch_norm1d", "p2": "custom_batch_norm1d", "p4": "custom_batch_norm2d",
             "p5": "custom_layer_norm", "p6": "custom_instance_norm1d", "p7": "custom_group_norm"}
CLASSES = {"p3": "CustomBatchNorm1d", "bn": "BatchNorm"}


def define(problem, code):
    namespace = {"torch": torch, "nn": torch.nn, "np": np}
    exec(code, namespace)
    return namespace[FUNCTIONS.get(problem) or CLASSES[problem]]


def reference(problem):
    assignment = "batchnorm" if problem == "bn" else "normalization"
    answers = demo.reference_answers(assignment)
    return next(code for grade_id, code in answers.items() if grade_id.startswith(problem))


def in_float32(problem, code):
    """The reference answer ``code`` computing in float32: its input through .float()."""
    if problem in CLASSES:  # the forward's input
        name = "input_tensor" if problem == "p3" else "x"
        head = "def __call__(self, input_tensor):" if problem == "p3" else "def forward(self, x):"
        assert code.count(head) == 1, problem
        indent = " " * 8
        return code.replace(head, f"{head}\n{indent}{name} = {name}.float()")
    signature = re.search(r"def \w+\((input_tensor[^)]*)\):", code)
    return code.replace(signature.group(0), signature.group(0)
                        + "\n    input_tensor = input_tensor.float()")


def answers():
    """{name: (problem, code, correct?)}."""
    found = {}
    for answer in CORRECT + MUTANTS:
        if answer.name in FLOAT32_CATALOG:
            found[answer.name] = (answer.problem, answer.code, answer.family == "correct")
    for problem in ("p1", "p2", "p3", "p4", "p5", "p6", "p7", "bn"):
        code = in_float32(problem, reference(problem))
        found[f"{problem}_reference_float32"] = (problem, code, True)
        for mistake, (pattern, replacement) in MISTAKES.items():
            wrong, edits = re.subn(pattern, replacement, code)
            assert edits, (problem, mistake)
            found[f"{problem}_reference_float32_{mistake}"] = (problem, wrong, False)
        found[f"{problem}_reference_float32_10pct_off"] = (problem, code, False)
    return found


FLOAT32_CATALOG = {"p1_float32_buffer_loop", "p2_float_then_affine", "p6_ones_buffer_loop",
                   "p6_float_zeros_loop", "p5_float_sample_loop", "p7_float_group_loop",
                   "p6_float_loop_item_mean"}


def off_by(answer, fraction, problem):
    """``answer`` with every gradient scaled by 1 + ``fraction``, its values unchanged."""
    def near(out):
        return out + fraction * (out - out.detach())
    if problem not in CLASSES:
        return lambda *args: near(answer(*args))
    return type(answer.__name__, (answer,), {
        "__call__" if problem == "p3" else "forward":
            (lambda self, x: near(answer.__call__(self, x))) if problem == "p3"
            else (lambda self, x: near(answer.forward(self, x)))})


RATIOS = []


def recording(compare):
    """``normcheck._compare_grads`` that also records the ratio error / allowed."""
    def compare_and_record(where, output, expected_output, actual, expected, names, suspects,
                           reference32, count):
        got = output.get("tensor")
        in_float64 = got is not None and got.dtype == torch.float64 and torch.allclose(
            got, expected_output.detach(), rtol=check.FLOAT64_RTOL, atol=check.FLOAT64_ATOL)
        if actual is not None and got is not None and not in_float64:
            for g, want, want32 in zip(actual, expected, reference32()):
                if g is not None and want is not None and g.shape == want.shape:
                    allowed = check._float32_allowed(want, want32.reshape(want.shape), count)
                    RATIOS.append(((g.double() - want).abs() / allowed).max().item())
        return compare(where, output, expected_output, actual, expected, names, suspects,
                       reference32, count)
    return compare_and_record


def main(seeds):
    torch.set_num_threads(1)
    check._compare_grads = recording(check._compare_grads)
    calls = gradient_calls()
    print(f"{'answer':<44} {'calls':>5} {'failed':>6} {'largest':>9} {'smallest':>9}"
          "   (ratio: gradient error / allowed)")
    for name, (problem, code, correct) in answers().items():
        answer = define(problem, code)
        if name.endswith("10pct_off"):
            answer = off_by(answer, 0.1, problem)
        ratios, failed = [], 0
        for function, args, kwargs in calls[problem]:
            for k in range(seeds):
                RATIOS.clear()
                shifted = dict(kwargs, seed=kwargs.get("seed", 0) + 1000 * k)
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        if function == "gradients_match":  # (problem, fn, shapes)
                            check.gradients_match(args[0], answer, *args[2:], **shifted)
                        else:  # (cls, ...)
                            getattr(check, function)(answer, *args[1:], **shifted)
                except AssertionError:
                    failed += 1
                ratios.append(max(RATIOS, default=float("nan")))
        verdict = "" if (failed == 0) == correct else "  <- WRONG VERDICT"
        print(f"{name:<44} {len(ratios):>5} {failed:>6} {max(ratios):>9.3g} "
              f"{min(ratios):>9.3g}{verdict}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)

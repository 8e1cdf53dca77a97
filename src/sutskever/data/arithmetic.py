"""A verifiable task family: arithmetic expressions solved in written steps.

A problem is an expression of `ops` + 1 single-digit operands joined by +, - and *, e.g.
`3+5*2-4=`. Its solution rewrites the expression one operation at a time, multiplications first
and then left to right, as a pupil would, and ends with the value:

    3+5*2-4=3+10-4=13-4=9

A problem also has many other correct solutions: any multiplication may come next while there
are any, and then any two neighbouring terms of the sum may be added (`7-5+2=7-3=4`).
`solution(rng)` draws one of these at random, which gives a model several paths to one answer,
the setting of self-consistency.

`ops` is the difficulty knob (the number of written steps). The verifier checks only the final
answer (the number after the last `=`), exactly, as GSM8K-style graders do; a malformed answer is
wrong. Problems are a pure function of a seed, so a finite training set, fresh test sets and the
problems of synthetic data never depend on anything but their seeds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

import numpy as np

VOCAB = "\n0123456789+-*="  # token id = index; "\n" ends a solution
END = 0
REVISE = "=="               # between an attempt and its revision (never inside a solution)
PAD = len(VOCAB)            # padding id beyond the vocabulary (never a target)
N_VOCAB = len(VOCAB) + 1
_ID = {c: i for i, c in enumerate(VOCAB)}


@dataclass(frozen=True)
class Problem:
    prompt: str    # "3+5*2-4="
    answer: int    # 9
    ops: int       # difficulty: the number of operations

    def solution(self, rng: np.random.Generator | None = None) -> str:
        """The written steps after the prompt's "=", ending with the answer: in the fixed
        order, or, given `rng`, in an order drawn at random."""
        return solution_of(self.prompt[:-1], rng)

    def closest_solution(self, attempt: str) -> str:
        """The correct solution that follows `attempt`'s path: at each step, of the rewrites
        allowed, the one written most like the attempt's step (difflib's ratio; the fixed order
        once the attempt has no steps left). A right attempt comes back unchanged; a wrong one
        with the wrong steps put right (Snell et al. pair a wrong attempt with the correct
        answer closest to it in edit distance)."""
        tokens = _tokens(self.prompt[:-1])
        written = attempt.split("=")
        out = []
        while len(tokens) > 1:
            options = [_rewrite(tokens, i) for i in _allowed(tokens)]
            if len(out) < len(written):
                target = written[len(out)]
                options.sort(key=lambda t: -SequenceMatcher(None, "".join(t), target).ratio())
            tokens = options[0]
            out.append("".join(tokens))
        return "=".join(out)


def solution_of(expression: str, rng: np.random.Generator | None = None) -> str:
    return "=".join(steps(expression, rng)[1:])


def steps(expression: str, rng: np.random.Generator | None = None) -> list[str]:
    """The expression, then each rewrite, the last entry being the value. Without `rng`: every
    multiplication first (left to right), then the additions and subtractions left to right.
    With `rng`: each rewrite is drawn uniformly from those allowed, any multiplication while
    there are any, then any two neighbouring terms of the sum."""
    tokens = _tokens(expression)
    out = [expression]
    while len(tokens) > 1:
        ops = _allowed(tokens)
        i = ops[0] if rng is None else ops[int(rng.integers(len(ops)))]
        tokens = _rewrite(tokens, i)
        out.append("".join(tokens))
    return out


def _allowed(tokens: list[str]) -> list[int]:
    """The operations that may come next: any multiplication while there are any, then any
    addition or subtraction."""
    return [i for i, t in enumerate(tokens) if t == "*"] or list(range(1, len(tokens), 2))


def _rewrite(tokens: list[str], i: int) -> list[str]:
    """Carry out the operation at token i: a product, or the sum of two neighbouring signed
    terms (`7-5+2`: -5+2 is -3, giving `7-3`)."""
    a, op, b = int(tokens[i - 1]), tokens[i], int(tokens[i + 1])
    if op == "*":
        return tokens[: i - 1] + [str(a * b)] + tokens[i + 2:]
    value = a + b if op == "+" else a - b
    if i == 1:
        return [str(value)] + tokens[3:]
    value = (a if tokens[i - 2] == "+" else -a) + (b if op == "+" else -b)
    return tokens[: i - 2] + ["+" if value >= 0 else "-", str(abs(value))] + tokens[i + 2:]


def _tokens(expression: str) -> list[str]:
    """"3+5*2-4" -> ["3", "+", "5", "*", "2", "-", "4"]; a leading "-" belongs to the number."""
    return re.findall(r"(?<!\d)-?\d+|[+\-*]", expression)


def evaluate_expression(expression: str) -> int:
    return int(steps(expression)[-1])


def make_problems(n: int, ops: int | tuple[int, ...], seed: int,
                  operators: str = "+-*") -> list[Problem]:
    """`n` random problems; `ops` one difficulty or several, cycled in turn; `operators` the
    operations drawn from."""
    if not operators or set(operators) - set("+-*"):
        raise ValueError(f"operators must be drawn from '+-*', got {operators!r}")
    levels = (ops,) if isinstance(ops, int) else tuple(ops)
    rng = np.random.default_rng([seed, 7919])
    problems = []
    for i in range(n):
        k = levels[i % len(levels)]
        digits = rng.integers(1, 10, k + 1)
        symbols = rng.choice(list(operators), k)
        expression = str(digits[0]) + "".join(f"{s}{d}" for s, d in zip(symbols, digits[1:],
                                                                         strict=True))
        problems.append(Problem(expression + "=", evaluate_expression(expression), k))
    return problems


def answer_of(solution: str) -> int | None:
    """The final answer a generated solution states (None: none, or malformed)."""
    text = solution.split("\n", 1)[0]
    last = text.rsplit("=", 1)[-1]
    return int(last) if re.fullmatch(r"-?\d+", last) else None


def verify(problem: Problem, solution: str) -> bool:
    """The exact verifier: the solution's final answer equals the problem's value."""
    return answer_of(solution) == problem.answer


def encode(text: str) -> list[int]:
    return [_ID[c] for c in text]


def decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] if i < len(VOCAB) else "" for i in ids)

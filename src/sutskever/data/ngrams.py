"""5-grams of a word corpus, and the output orders of "Order Matters" (section 4.3).

Vinyals, Bengio, Kudlur, "Order Matters: Sequence to Sequence for Sets", ICLR 2016,
arXiv:1511.06391: a model of the joint distribution of the n words of an n-gram may emit them
in any order; the paper compares the natural order (1, 2, 3, 4, 5) with a bad one (5, 1, 3, 4, 2)
and with letting the model choose among all 5! = 120 orders.

How the n-grams are cut: the corpus is one stream of token ids with ``<eos>`` ending each
sentence (``sutskever.data.text``); an n-gram is every window of n consecutive words inside one
sentence, the ``<eos>`` itself excluded, so no window crosses a sentence boundary and a sentence
of L words gives max(L - n + 1, 0) windows. ``<unk>`` is a word like any other (as in PTB). For
the sentence "a b c d e f" and n = 5 the windows are "a b c d e" and "b c d e f".

Orders are written as the paper writes them, 1-based tuples of positions in the order they are
emitted: (5, 1, 3, 4, 2) emits the 5th word first, then the 1st, ... Internally they are 0-based
rows of a (n!, n) table, ``all_orders(n)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor

from sutskever.errors import UserError

__all__ = ["all_orders", "order_index", "order_label", "parse_order", "sentence_ngrams"]


def sentence_ngrams(tokens: Tensor, eos_id: int, n: int = 5) -> Tensor:
    """Every window of n consecutive words within a sentence: (N, n) int64, in corpus order.

    ``tokens`` is a 1-D stream in which ``eos_id`` ends each sentence (a last sentence without
    one counts too); windows never contain ``eos_id``.
    """
    if tokens.dim() != 1:
        raise ValueError(f"sentence_ngrams takes a 1-D token stream, not {tuple(tokens.shape)}")
    if n < 1:
        raise UserError(f"an n-gram needs n >= 1, got {n}")
    if tokens.numel() < n:
        return torch.empty(0, n, dtype=torch.long)
    windows = tokens.long().unfold(0, n, 1)  # (len - n + 1, n): window i starts at token i
    keep = (windows != eos_id).all(dim=1)  # inside one sentence: no <eos> among the n words
    return windows[keep].contiguous()


def all_orders(n: int = 5) -> Tensor:
    """All n! output orders as 0-based rows (n!, n), lexicographic: row 0 is the natural order,
    the last row the reversed one."""
    return torch.tensor(list(itertools.permutations(range(n))), dtype=torch.long)


def parse_order(order: Sequence[int], n: int = 5) -> tuple[int, ...]:
    """A 1-based order as the paper writes it, checked, as a 0-based tuple."""
    if sorted(order) != list(range(1, n + 1)):
        raise UserError(f"an output order of a {n}-gram lists each position 1..{n} once, "
                        f"got {tuple(order)}")
    return tuple(p - 1 for p in order)


def order_index(order0: Sequence[int]) -> int:
    """The row of a 0-based order in ``all_orders(len(order0))`` (its lexicographic rank)."""
    rest = list(range(len(order0)))
    index = 0
    for i, p in enumerate(order0):
        k = rest.index(p)
        index += k * _factorial(len(order0) - 1 - i)
        rest.pop(k)
    return index


def order_label(order0: Sequence[int]) -> int:
    """An order as the 1-based digits the paper writes, e.g. (4, 0, 2, 3, 1) -> 51342."""
    return int("".join(str(p + 1) for p in order0))


def _factorial(k: int) -> int:
    out = 1
    for i in range(2, k + 1):
        out *= i
    return out

"""GPT: a decoder-only Transformer language model, as in GPT-2.

Radford et al., "Improving Language Understanding by Generative Pre-Training" (2018) and
"Language Models are Unsupervised Multitask Learners" (2019):

    h_0 = W_e[tokens] + W_p[positions]
    h_l = h_{l-1} + attn(LN(h_{l-1}));  h_l = h_l + mlp(LN(h_l))       (pre-LayerNorm blocks)
    logits = LN(h_L) W_e^T                                             (tied embeddings)

attention is causal multi-head self-attention through `scaled_dot_product_attention` (the flash
or memory-efficient kernel where the device has one), mlp is d -> 4d -> d with GELU (GPT-2's
tanh form). Initialisation as GPT-2: every weight ~ N(0, 0.02), biases 0, and the two projections
that write into the residual stream (attention output and MLP output) ~ N(0, 0.02/sqrt(2 L)).

Accounting for the scaling work (Kaplan et al. 2020, section 2.1): `non_embedding_params` is
Kaplan's N = 12 L d^2 (exact count: `count_params`), and `flops_per_token` the training FLOPs
per token, 6 N + 6 L T d: forward 2 N for the weight matmuls, plus 2 L T d for attention scores
and their weighted sum over a causal context (2 products x 2 FLOPs x d x T/2 keys on average),
and backward twice the forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 50304  # GPT-2's 50257 tokens padded to a multiple of 64 for fast matmuls
    context: int = 1024      # T: the longest sequence (learned position embeddings)
    n_layer: int = 12        # L
    n_head: int = 12
    d_model: int = 768       # d
    dropout: float = 0.0     # on attention weights, and after each residual branch and embedding
    bias: bool = True        # biases in the linear layers and LayerNorms (GPT-2 has them)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "n_layer", "n_head", "d_model"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be at least 1, got {getattr(self, name)}")
        if self.d_model % self.n_head:
            raise ValueError(f"model.d_model={self.d_model} must be a multiple of "
                             f"model.n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)  # writes the residual

    def forward(self, x: Tensor, cache: list[Tensor] | None = None) -> Tensor:
        B, T, d = x.shape
        # (B, T, 3d) -> 3 x (B, H, T, d/H)
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        if cache is not None:  # decoding: keys and values of the earlier positions are kept
            if cache:
                if T != 1:
                    raise ValueError("a filled key/value cache takes one new token at a time")
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[:] = [k, v]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, d))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=cfg.bias)  # writes the residual

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, cache: list[Tensor] | None = None) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), cache))
        return x + self.drop(self.mlp(self.ln2(x)))


class GPT(nn.Module):
    """tokens (B, T) int64 -> logits (B, T, vocab_size)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.context, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.wte.weight  # tied input and output embeddings
        self._init_weights()

    def _init_weights(self) -> None:
        residual_std = 0.02 / math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 1:  # LayerNorm gains
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, 0.0, residual_std if name.endswith("proj.weight") else 0.02)

    def forward(self, tokens: Tensor, caches: list[list[Tensor]] | None = None) -> Tensor:
        """`caches` (one list per block, empty at first) keep each layer's keys and values for
        decoding: the first call reads the prompt, each later call one new token."""
        start = caches[0][0].shape[2] if caches and caches[0] else 0
        T = start + tokens.shape[1]
        if T > self.cfg.context:
            raise ValueError(f"sequence of {T} tokens is longer than the context "
                             f"{self.cfg.context}")
        x = self.drop(self.wte(tokens) + self.wpe.weight[start:T])
        for i, block in enumerate(self.blocks):
            x = block(x, caches[i] if caches is not None else None)
        return self.head(self.ln_f(x))

    @torch.no_grad()
    def generate(self, tokens: Tensor, n_new: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 stop: int | None = None) -> Tensor:
        """Append `n_new` sampled tokens to each row of `tokens` (B, T0); temperature 0 is greedy.
        With `stop`, end early once every row has produced that token.

        Keys and values are cached while the sequence fits the context; beyond it each step
        re-reads the last `context` tokens.
        """
        caches: list[list[Tensor]] | None = [[] for _ in self.blocks]
        done = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
        for _ in range(n_new):
            if caches is not None and tokens.shape[1] <= self.cfg.context:
                new = tokens if not caches[0] else tokens[:, -1:]
                logits = self(new, caches)[:, -1].float()  # (B, V)
            else:
                caches = None
                logits = self(tokens[:, -self.cfg.context:])[:, -1].float()
            if temperature == 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None and top_k < logits.shape[-1]:
                    kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, -math.inf)
                nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            tokens = torch.cat([tokens, nxt], dim=1)
            if stop is not None:
                done |= nxt[:, 0] == stop
                if bool(done.all()):
                    break
        return tokens


def non_embedding_params(cfg: GPTConfig) -> int:
    """Kaplan et al.'s N = 12 L d^2: attention 4 d^2 and MLP 8 d^2 per layer, no biases/gains."""
    return 12 * cfg.n_layer * cfg.d_model ** 2


def count_params(model: nn.Module, embeddings: bool = False) -> int:
    """Exact parameter count, each shared tensor once; without the token and position
    embedding tables unless `embeddings` (the tied output layer is the token table)."""
    seen = {id(p): p for name, p in model.named_parameters()
            if embeddings or not name.startswith(("wte.", "wpe."))}
    return sum(p.numel() for p in seen.values())


def flops_per_token(cfg: GPTConfig, with_head: bool = True) -> float:
    """Training FLOPs per token: 6 N + 6 L T d (see the module docstring), with the output
    layer's matmul (6 d V) included when `with_head` (it is real work; Kaplan's C = 6 N leaves
    it out, as it does every embedding term)."""
    head = 6 * cfg.d_model * cfg.vocab_size if with_head else 0
    return 6 * non_embedding_params(cfg) + 6 * cfg.n_layer * cfg.context * cfg.d_model + head

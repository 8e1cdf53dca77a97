"""LSTM language model with dropout on the non-recurrent connections only.

Reproduces the model of "Recurrent Neural Network Regularization" (Zaremba, Sutskever, Vinyals,
2014, arXiv:1409.2329), Section 3 "Regularizing RNNs with LSTM cells". With h_t^0 the embedding
of word t and D the dropout operator, layer l = 1..L computes (Section 3.2):

    (i, f, o, g) = (sigm, sigm, sigm, tanh)( T_{2n,4n} [D(h_t^{l-1}); h_{t-1}^l] )
    c_t^l = f * c_{t-1}^l + i * g
    h_t^l = o * tanh(c_t^l)

and the word distribution is softmax(W D(h_t^L) + b). D touches only the vertical (non-recurrent)
arrows: L+1 dropout points (after the embedding, between layers, before the decoder), while the
horizontal path h_{t-1}^l -> h_t^l and the cells c are never masked, so information can be
carried over many time steps without being corrupted once per step.

Variants (one config field each):
- `dropout=0.0`: the non-regularized model (the paper's `small`).
- `dropout_mode="recurrent"`: the approach the paper argues against. The same L+1 points AND
  D(h_{t-1}^l) on the recurrent connection with a fresh mask at every time step. A per-step cell
  loop over the same parameters as the fused path (an ablation, so speed is secondary).
- `tie_weights=True`: decoder weight = embedding weight (Press & Wolf 2016; beyond the paper, off
  in the paper presets).

All weights, biases, the embedding and the decoder start ~ U(-init_scale, init_scale) as in the
paper. The model is time-major like the paper's BPTT: tokens (T, B), logits (T, B, V). The
(h, c) state, each (L, B, H), is returned so the caller carries it across BPTT windows; cut the
graph between windows with `detach_state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DropoutMode = Literal["non-recurrent", "recurrent"]
DROPOUT_MODES: tuple[str, ...] = ("non-recurrent", "recurrent")

# (h, c), each (L, B, H): the hidden state carried across BPTT windows.
State = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class LSTMLMConfig:
    vocab_size: int = 10000  # PTB's 10k words
    n_layers: int = 2  # L
    hidden: int = 200  # units per layer; also the embedding size
    dropout: float = 0.0  # probability of zeroing a unit at each dropout point (0 = no dropout)
    dropout_mode: DropoutMode = "non-recurrent"  # or "recurrent": also D(h_{t-1}) every step
    init_scale: float = 0.1  # every parameter ~ U(-init_scale, init_scale)
    tie_weights: bool = False  # beyond the paper: decoder weight = embedding weight

    def __post_init__(self) -> None:
        if self.dropout_mode not in DROPOUT_MODES:
            raise ValueError(f"dropout_mode must be one of {DROPOUT_MODES}, "
                             f"got {self.dropout_mode!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.n_layers < 1 or self.hidden < 1 or self.vocab_size < 1:
            raise ValueError("vocab_size, n_layers and hidden must be positive, got "
                             f"{self.vocab_size}, {self.n_layers}, {self.hidden}")
        if self.init_scale <= 0:
            raise ValueError(f"init_scale must be positive, got {self.init_scale}")


class LSTMLanguageModel(nn.Module):
    """Embedding -> L stacked LSTMs -> linear decoder, dropout on the non-recurrent arrows."""

    def __init__(self, config: LSTMLMConfig) -> None:
        super().__init__()
        self.config = config
        V, H, L = config.vocab_size, config.hidden, config.n_layers
        self.embedding = nn.Embedding(V, H)
        # One fused nn.LSTM per layer rather than one L-layer nn.LSTM with its built-in
        # inter-layer dropout: every dropout point is then an explicit call in `forward` (the
        # property the paper is about, and one a test can check by hooking each layer's input),
        # and "recurrent" mode reuses the same per-layer parameters. Speed is the same on CPU:
        # oneDNN runs one layer per call either way (small config, 1 thread, interleaved:
        # 3,586 vs 3,560 words/s). cuDNN could overlap layers in one multi-layer call; time it
        # with `benchmarks/rnn_regularization_speed.py --alternatives` on a GPU.
        self.layers = nn.ModuleList(nn.LSTM(H, H) for _ in range(L))
        self.drop = nn.Dropout(config.dropout)  # used at all L+1 non-recurrent points
        self.decoder = nn.Linear(H, V)
        for p in self.parameters():
            nn.init.uniform_(p, -config.init_scale, config.init_scale)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight  # both (V, H)

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """Zero (h, c), each (L, B, H), on `device` (default: the parameters' device)."""
        weight = self.decoder.weight
        shape = (self.config.n_layers, batch_size, self.config.hidden)
        device = weight.device if device is None else device
        h = torch.zeros(shape, device=device, dtype=weight.dtype)
        return h, torch.zeros_like(h)

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """tokens (T, B) -> logits (T, B, V) and the state after the last step."""
        B = tokens.shape[1]
        h0, c0 = self.init_state(B, tokens.device) if state is None else state  # (L, B, H)
        x = self.drop(self.embedding(tokens))  # (T, B, H)  D(h_t^0)
        h_n, c_n = [], []
        for l, lstm in enumerate(self.layers):
            h, c = h0[l : l + 1], c0[l : l + 1]  # (1, B, H)
            if self.config.dropout_mode == "recurrent" and self.training and self.drop.p > 0:
                x, (h, c) = self._lstm_recurrent_dropout(lstm, x, h, c)
            else:
                # fused kernel, all t: gates = T_{2n,4n}[D(h_t^{l-1}); h_{t-1}^l], h_{t-1} unmasked
                x, (h, c) = lstm(x, (h, c))  # (T, B, H)  h_t^l
            x = self.drop(x)  # (T, B, H)  D(h_t^l): input of layer l+1, or of the decoder
            h_n.append(h)
            c_n.append(c)
        logits = self.decoder(x)  # (T, B, V)  W D(h_t^L) + b
        return logits, (torch.cat(h_n), torch.cat(c_n))

    def _lstm_recurrent_dropout(self, lstm: nn.LSTM, x: Tensor, h: Tensor, c: Tensor
                                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One layer, step by step, with D(h_{t-1}) too: the variant the paper argues against.

        Same parameters and gate order (i, f, g, o) as nn.LSTM, so the init and the state dict
        are identical to the fused path. x (T, B, H_in); h, c (1, B, H).
        """
        p = self.drop.p
        h, c = h[0], c[0]  # (B, H)
        gates_x = F.linear(x, lstm.weight_ih_l0, lstm.bias_ih_l0)  # (T, B, 4H), all t at once
        outputs = []
        for t in range(x.shape[0]):
            h_masked = F.dropout(h, p, training=True)  # D(h_{t-1}): a fresh mask every step
            gates = gates_x[t] + F.linear(h_masked, lstm.weight_hh_l0, lstm.bias_hh_l0)  # (B, 4H)
            i, f, g, o = gates.chunk(4, dim=1)  # (B, H) each
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # c_t = f*c_{t-1} + i*g
            h = torch.sigmoid(o) * torch.tanh(c)  # h_t = o * tanh(c_t), carried unmasked
            outputs.append(h)
        return torch.stack(outputs), (h[None], c[None])  # (T, B, H), ((1, B, H), (1, B, H))


def detach_state(state: State) -> State:
    """Cut the graph between BPTT windows; the values are carried over unchanged."""
    h, c = state
    return h.detach(), c.detach()


def n_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a tied embedding/decoder weight is counted once)."""
    return sum(p.numel() for p in model.parameters())


def flops_per_token(config: LSTMLMConfig) -> float:
    """Matmul FLOPs of one training token: (LSTM gates + decoder) forward, x3 for backward.

    Per layer the gates are one (4H, H_in + H) matmul, 2 * 4H (H_in + H) FLOPs (H_in = H: the
    embedding has the hidden size); the decoder is 2 H V. The embedding lookup and the
    elementwise gate, dropout and softmax work are not counted (the usual MFU convention).
    """
    H, V = config.hidden, config.vocab_size
    lstm = config.n_layers * 2 * 4 * H * (H + H)
    decoder = 2 * H * V
    return 3.0 * (lstm + decoder)

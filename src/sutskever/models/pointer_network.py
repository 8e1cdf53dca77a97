"""Pointer Networks and their two sequence-to-sequence baselines.

Reproduces the models of "Pointer Networks" (Vinyals, Fortunato, Jaitly, 2015, arXiv:1506.03134),
Section 2. All three share one LSTM encoder and one LSTM decoder over the same inputs and differ
only in the output head, so a comparison between them isolates the pointer mechanism:

- "softmax":   the plain sequence-to-sequence model (Section 2.1): a fixed softmax over a
               vocabulary of ``max_points + 1`` output tokens computed from the decoder state.
- "attention": the content-based input attention model (Section 2.2, eq. 2): the attention
               context over encoder states is concatenated with the decoder state, then a fixed
               softmax as above.
- "pointer":   the Ptr-Net (Section 2.3, eq. 3): the attention scores over the inputs *are* the
               output distribution, so the output vocabulary grows with the input length.

Index convention. An input of n points becomes n+1 "slots": slot 0 is a special END slot and slots
1..n are the points. Each slot is the vector [x, y, is_special] (END and START are [0, 0, 1], a
point is [x, y, 0]), mapped by a learned linear embedding to H dims before the LSTMs. The paper
feeds the coordinates to the LSTM; mathematically the embedding only re-parameterises the LSTM's
input weights, but with every weight drawn from U(-0.08, 0.08) the 3-d input barely moves the
LSTM and training stalls on a solution that ignores the coordinates (measured: hull n=5 accuracy
0% after 800 Adam steps without it, 64% with it). So the embedding keeps PyTorch's default init
(U(-1/sqrt(3), 1/sqrt(3))); every other weight is U(-0.08, 0.08) as in the paper.

Outputs are slot indices: 1..n point at a point, 0 is END. Targets are padded with -100 after END.
For the fixed-softmax heads token k of the vocabulary stands for slot k.

Simplification: eq. 2's concatenation [d_i; c_i] is used only for the prediction, not also fed
back as decoder input, so that teacher forcing is one LSTM call over the whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HEADS = ("pointer", "softmax", "attention")

# The decoding state carried between `step` calls: every tensor has the batch on dim 0.
State = dict[str, Tensor]


@dataclass(frozen=True)
class PointerNetConfig:
    hidden: int = 256  # LSTM units (the paper used 256 or 512)
    head: str = "pointer"  # one of HEADS
    max_points: int = 50  # vocabulary is max_points + 1 tokens for the fixed-softmax heads
    init_scale: float = 0.08  # LSTM and head weights ~ U(-0.08, 0.08) as in the paper
    input_dim: int = 2  # coordinates per point


class PointerNet(nn.Module):
    """LSTM encoder-decoder over a set of points with a pointer, attention or softmax head."""

    def __init__(self, config: PointerNetConfig) -> None:
        super().__init__()
        if config.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {config.head!r}")
        self.config = config
        H, D = config.hidden, config.input_dim + 1  # slot vector = [coords, is_special]
        self.embed = nn.Linear(D, H)  # shared by encoder and decoder inputs
        self.encoder = nn.LSTM(H, H, batch_first=True)
        self.decoder = nn.LSTM(H, H, batch_first=True)
        if config.head in ("pointer", "attention"):
            self.W1 = nn.Linear(H, H, bias=False)  # applied to encoder states e_j
            self.W2 = nn.Linear(H, H, bias=False)  # applied to decoder states d_i
            self.v = nn.Linear(H, 1, bias=False)
        if config.head == "attention":
            self.out = nn.Linear(2 * H, config.max_points + 1)
        elif config.head == "softmax":
            self.out = nn.Linear(H, config.max_points + 1)
        for name, p in self.named_parameters():
            if not name.startswith("embed."):
                nn.init.uniform_(p, -config.init_scale, config.init_scale)

    # ----------------------------------------------------------------------------------------
    # helpers

    def _slots(self, points: Tensor) -> Tensor:
        """(B, n, input_dim) points -> (B, n+1, H) embedded slot vectors, slot 0 = END."""
        B, n, _ = points.shape
        n_cfg = self.config.max_points
        if self.config.head != "pointer" and n > n_cfg:
            raise ValueError(
                f"the {self.config.head!r} head has a fixed vocabulary for at most "
                f"max_points={n_cfg} points, got n={n}; use head='pointer' or raise max_points"
            )
        special = points.new_zeros(B, n + 1, 1)
        special[:, 0] = 1.0
        coords = F.pad(points, (0, 0, 1, 0))  # (B, n+1, input_dim), slot 0 = zeros
        return self.embed(torch.cat([coords, special], dim=-1))  # (B, n+1, H)

    def _logits(self, e: Tensor, w1e: Tensor, d: Tensor) -> Tensor:
        """Encoder states e (B, n+1, H), W1 e (B, n+1, H), decoder states d (B, T, H)
        -> logits over the n+1 slots (B, T, n+1)."""
        n_slots = e.shape[1]
        if self.config.head == "softmax":
            return self.out(d)[..., :n_slots]  # (B, T, n+1)
        # u^i_j = v^T tanh(W1 e_j + W2 d_i)                               (eq. 3)
        u = self.v(torch.tanh(w1e[:, None] + self.W2(d)[:, :, None])).squeeze(-1)  # (B, T, n+1)
        if self.config.head == "pointer":
            return u  # p(C_i | C_1..C_{i-1}, P) = softmax(u^i)               (eq. 3)
        a = torch.softmax(u, dim=-1)  # a^i_j = softmax(u^i)_j                 (eq. 2)
        c = a @ e  # d'_i = sum_j a^i_j e_j                                   (B, T, H)
        return self.out(torch.cat([d, c], dim=-1))[..., :n_slots]  # (B, T, n+1)

    # ----------------------------------------------------------------------------------------
    # training: teacher forcing

    def forward(self, points: Tensor, targets: Tensor) -> Tensor:
        """points (B, n, input_dim), targets (B, T) slot indices (-100 = pad)
        -> logits (B, T, n+1). Decoder inputs are START, then the slots of targets[:, :-1]."""
        slots = self._slots(points)  # (B, n+1, H)
        e, (h, c) = self.encoder(slots)  # e: (B, n+1, H); h, c: (1, B, H)
        w1e = self.W1(e) if self.config.head != "softmax" else e  # (B, n+1, H)
        # START is the special vector, i.e. the END slot's vector; pads (-100) also feed END.
        prev = F.pad(targets[:, :-1].clamp_min(0), (1, 0))  # (B, T)
        dec_in = torch.gather(slots, 1, prev[..., None].expand(-1, -1, slots.shape[-1]))
        d, _ = self.decoder(dec_in, (h, c))  # (B, T, H)
        return self._logits(e, w1e, d)  # (B, T, n+1)

    # ----------------------------------------------------------------------------------------
    # inference: one token at a time (used by sutskever.models.search)

    def encode(self, points: Tensor) -> State:
        """Run the encoder once; the returned state has the batch on dim 0 of every tensor."""
        slots = self._slots(points)  # (B, n+1, H)
        e, (h, c) = self.encoder(slots)  # (B, n+1, H), (1, B, H)
        w1e = self.W1(e) if self.config.head != "softmax" else e  # (B, n+1, H)
        return {"slots": slots, "e": e, "w1e": w1e, "h": h[0], "c": c[0]}

    def step(self, state: State, prev_slots: Tensor) -> tuple[Tensor, State]:
        """Feed the slot chosen at the previous step (B,) (0 = START at the first step)
        -> (log-probs over the n+1 slots (B, n+1), new state)."""
        slots = state["slots"]
        x = slots[torch.arange(slots.shape[0], device=slots.device), prev_slots]  # (B, D)
        d, (h, c) = self.decoder(x[:, None], (state["h"][None], state["c"][None]))  # (B, 1, H)
        logits = self._logits(state["e"], state["w1e"], d)[:, 0]  # (B, n+1)
        new_state = {**state, "h": h[0], "c": c[0]}
        return F.log_softmax(logits, dim=-1), new_state

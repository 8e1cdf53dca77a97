"""Read-Process-Write, and the Ptr-Net baseline that reads the set in its given order.

Reproduces the set encoder of "Order Matters: Sequence to Sequence for Sets" (Vinyals, Bengio,
Kudlur, ICLR 2016, arXiv:1511.06391), section 4.2, and the two models of its sorting experiment
(section 4.3, table 1):

- "rpw", Read-Process-Write:
    Read:    a small MLP embeds each element x_i on its own: m_i = MLP(x_i).
    Process: an LSTM without inputs or outputs runs P steps of content attention over the
             memories:
                 q_t     = LSTM(q*_{t-1})
                 e_{i,t} = <m_i, q_t>
                 a_{i,t} = softmax_i(e_{i,t})
                 r_t     = sum_i a_{i,t} m_i
                 q*_t    = [q_t, r_t]
             Every step sees the memories only through a softmax-weighted sum, so q*_P does not
             depend on the order of the elements.
    Write:   a pointer network (an LSTM decoder) started from q*_P points at the memories.
- "ptrnet", the Ptr-Net baseline: the same Read MLP, then an LSTM encoder reads the embeddings
  in the order given (the data's random order); the decoder starts from the encoder's final state
  and points at the encoder's outputs, as in "Pointer Networks" (Vinyals et al. 2015).

P = 0 (the paper's baseline column): no Process step, so q*_0 = 0 and the decoder starts from a
learned constant state (the projection of q*_0 = 0 is its bias). The decoder then learns about
the set only through its pointer (and glimpse) attention and the memories of the elements it
has already pointed at, which it is fed as inputs.

Glimpse (optional, the paper's "glimpse" columns; see also Bello et al. 2016, arXiv:1611.09940):
before the pointer scores, the decoder state d_t reads the memory once with its own additive
attention, g_t = sum_j softmax_j(v_g^T tanh(W_g ref_j + U_g d_t)) ref_j, and the pointer's query
is [d_t; g_t]: u_{t,j} = v^T tanh(W1 ref_j + W2 d_t + W3 g_t). Bello et al. replace d_t by g_t
instead; then, at initialisation, the query is the near-uniform average of the memories whatever
d_t is, and we measured the Ptr-Net baseline (64 units, Adam 3e-3) stuck at the uniform pointer,
loss log(n+1), for all of 1500 steps. With [d_t; g_t] it learns as fast as without a glimpse.

Index convention (that of `sutskever.models.search` and `sutskever.models.pointer_network`): an
input of n elements becomes n+1 slots, slot 0 = END (a learned vector) and slot i = element i-1.
The decoder's first input (START) is the END vector; later inputs are the slot vectors (Read
memories) of the elements pointed at before. Targets are slot sequences ending with END.

Weights keep PyTorch's default initialisation (the paper does not give its own for this task).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ARCHS = ("rpw", "ptrnet")

# The decoding state carried between `step` calls: every tensor has the batch on dim 0.
State = dict[str, Tensor]


@dataclass(frozen=True)
class ReadProcessWriteConfig:
    hidden: int = 256  # units of every LSTM and of the memories (the paper: 256)
    arch: str = "rpw"  # one of ARCHS
    process_steps: int = 5  # P; ignored by "ptrnet"
    glimpse: bool = True  # one attention read over the memory before each pointer
    input_dim: int = 1  # features per set element (1 for sorting floats)


class ReadProcessWrite(nn.Module):
    """Read-Process-Write (arch "rpw") or the in-order Ptr-Net baseline (arch "ptrnet")."""

    def __init__(self, config: ReadProcessWriteConfig) -> None:
        super().__init__()
        if config.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {config.arch!r}")
        if config.process_steps < 0:
            raise ValueError(f"process_steps must be >= 0, got {config.process_steps}")
        self.config = config
        H = config.hidden
        self.read = nn.Sequential(nn.Linear(config.input_dim, H), nn.ReLU(), nn.Linear(H, H))
        self.end = nn.Parameter(torch.empty(H).uniform_(-1.0, 1.0))  # END slot = START input
        if config.arch == "rpw":
            self.process = nn.LSTMCell(2 * H, H)  # input q*_{t-1} (2H), output q_t (H)
            self.init_h = nn.Linear(2 * H, H)  # decoder state from q*_P
            self.init_c = nn.Linear(2 * H, H)
        else:
            self.encoder = nn.LSTM(H, H, batch_first=True)
        self.decoder = nn.LSTM(H, H, batch_first=True)
        if config.glimpse:
            self.Wg = nn.Linear(H, H, bias=False)  # applied to the memories
            self.Ug = nn.Linear(H, H, bias=False)  # applied to the decoder state
            self.vg = nn.Linear(H, 1, bias=False)
            self.W3 = nn.Linear(H, H, bias=False)  # pointer: applied to the glimpse
        self.W1 = nn.Linear(H, H, bias=False)  # pointer: applied to the memories
        self.W2 = nn.Linear(H, H, bias=False)  # pointer: applied to the decoder state
        self.v = nn.Linear(H, 1, bias=False)

    # ----------------------------------------------------------------------------------------
    # Read and Process

    def read_slots(self, inputs: Tensor) -> Tensor:
        """Read: (B, n, input_dim) elements -> (B, n+1, H) slot vectors, slot 0 = END."""
        m = self.read(inputs)  # (B, n, H), each element embedded on its own
        return torch.cat([self.end.expand(m.shape[0], 1, -1), m], dim=1)

    def process_set(self, memory: Tensor) -> Tensor:
        """Process: memories (B, n, H) -> q*_P (B, 2H), invariant to the order of the n."""
        B, _, H = memory.shape
        q_star = memory.new_zeros(B, 2 * H)  # q*_0
        q, c = memory.new_zeros(B, H), memory.new_zeros(B, H)
        for _ in range(self.config.process_steps):
            q, c = self.process(q_star, (q, c))  # q_t = LSTM(q*_{t-1})
            e = (memory @ q[:, :, None]).squeeze(-1)  # e_{i,t} = <m_i, q_t>          (B, n)
            a = torch.softmax(e, dim=-1)  # a_{i,t}                                  (B, n)
            r = (a[:, None] @ memory).squeeze(1)  # r_t = sum_i a_{i,t} m_i            (B, H)
            q_star = torch.cat([q, r], dim=-1)  # q*_t = [q_t, r_t]                   (B, 2H)
        return q_star

    def encode(self, inputs: Tensor) -> State:
        """Read (and Process, or the LSTM encoder) once; every tensor has the batch on dim 0."""
        slots = self.read_slots(inputs)  # (B, n+1, H)
        if self.config.arch == "rpw":
            q_star = self.process_set(slots[:, 1:])  # the set only; END is not an element
            ref = slots  # the pointer attends over the Read memories
            h, c = torch.tanh(self.init_h(q_star)), self.init_c(q_star)  # (B, H) each
        else:
            ref, (h_n, c_n) = self.encoder(slots)  # reads END, then x_1..x_n as given
            h, c = h_n[0], c_n[0]
        state = {"slots": slots, "ref": ref, "w1ref": self.W1(ref), "h": h, "c": c}
        if self.config.glimpse:
            state["wgref"] = self.Wg(ref)
        return state

    # ----------------------------------------------------------------------------------------
    # Write

    def _logits(self, state: State, d: Tensor) -> Tensor:
        """Decoder states d (B, T, H) -> pointer logits over the n+1 slots (B, T, n+1)."""
        query = self.W2(d)  # (B, T, H)
        if self.config.glimpse:
            # g_t = sum_j softmax_j(v_g^T tanh(W_g ref_j + U_g d_t)) ref_j
            s = self.vg(torch.tanh(state["wgref"][:, None] + self.Ug(d)[:, :, None]))
            g = torch.softmax(s.squeeze(-1), dim=-1) @ state["ref"]  # (B, T, H)
            query = query + self.W3(g)
        # u_{t,j} = v^T tanh(W1 ref_j + W2 d_t [+ W3 g_t]); p(y_t | y_<t, X) = softmax_j(u_{t,j})
        u = self.v(torch.tanh(state["w1ref"][:, None] + query[:, :, None]))
        return u.squeeze(-1)  # (B, T, n+1)

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """Teacher forcing: inputs (B, n, input_dim), targets (B, T) slots (-100 = pad)
        -> logits (B, T, n+1). Decoder inputs are START, then the slots of targets[:, :-1]."""
        state = self.encode(inputs)
        slots = state["slots"]
        prev = F.pad(targets[:, :-1].clamp_min(0), (1, 0))  # (B, T); START = slot 0
        dec_in = torch.gather(slots, 1, prev[..., None].expand(-1, -1, slots.shape[-1]))
        d, _ = self.decoder(dec_in, (state["h"][None], state["c"][None]))  # (B, T, H)
        return self._logits(state, d)

    def step(self, state: State, prev_slots: Tensor) -> tuple[Tensor, State]:
        """Feed the slot chosen at the previous step (B,) (0 = START at the first step)
        -> (log-probs over the n+1 slots (B, n+1), new state)."""
        slots = state["slots"]
        x = slots[torch.arange(slots.shape[0], device=slots.device), prev_slots]  # (B, H)
        d, (h, c) = self.decoder(x[:, None], (state["h"][None], state["c"][None]))  # (B, 1, H)
        logits = self._logits(state, d)[:, 0]  # (B, n+1)
        return F.log_softmax(logits, dim=-1), {**state, "h": h[0], "c": c[0]}

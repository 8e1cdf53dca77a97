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

Output order (section 4.3, the 5-gram language model): `OrderedNgramLM` emits the words of an
n-gram in a given order, each step told which position it emits, so that every order factorises
the same joint distribution; `order_log_likelihoods` scores an n-gram under candidate orders and
`choose_orders` picks one from the model's posterior over them (the paper's search over orders).
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


# ------------------------------------------------------------------------------------------------
# Output order: a language model of 5-grams that emits the words in a chosen order (section 4.3)


@dataclass(frozen=True)
class OrderedNgramLMConfig:
    vocab_size: int = 10_000  # words (the corpus's vocabulary)
    n: int = 5  # words per n-gram (the paper: 5)
    embed: int = 256  # word and position embeddings
    hidden: int = 256  # LSTM units


class OrderedNgramLM(nn.Module):
    """An LSTM that emits the n words of an n-gram in a given order pi (a permutation of the
    positions 0..n-1), each step told which position it emits:

        p(w_1..w_n | pi) = prod_t p(w_{pi_t} | pi_t, (pi_s, w_{pi_s}) for s < t)

    Step t reads x_t = [E(w_{pi_{t-1}}) + P(pi_{t-1}); Q(pi_t)] (START for t = 1), where E embeds
    words, P the position of the word fed back and Q the position to emit now; the LSTM output is
    a softmax over the vocabulary. Because every step names its position, each order is a
    chain-rule factorisation of a joint distribution over all n-grams (so perplexities of
    different orders compare), and with enough capacity and data every order could represent the
    true joint: the orders differ in what is easy to learn, which is the paper's point (natural
    order vs (5,1,3,4,2)).
    """

    def __init__(self, config: OrderedNgramLMConfig) -> None:
        super().__init__()
        self.config = config
        V, E, n = config.vocab_size, config.embed, config.n
        self.word = nn.Embedding(V + 1, E)  # row V: START
        self.fed_position = nn.Embedding(n + 1, E)  # row n: START
        self.query_position = nn.Embedding(n, E)
        self.lstm = nn.LSTM(2 * E, config.hidden, batch_first=True)
        self.out = nn.Linear(config.hidden, V)

    def forward(self, words: Tensor, orders: Tensor) -> Tensor:
        """Teacher forcing: words (B, n) in their natural positions, orders (B, n) 0-based
        -> logits (B, n, V) in emission order; the target of step t is words[b, orders[b, t]]."""
        B, n = words.shape
        emitted = words.gather(1, orders)  # (B, n): the words in the order they are emitted
        start_w = words.new_full((B, 1), self.config.vocab_size)
        start_p = orders.new_full((B, 1), n)
        prev_w = torch.cat([start_w, emitted[:, :-1]], dim=1)  # (B, n)
        prev_p = torch.cat([start_p, orders[:, :-1]], dim=1)  # (B, n)
        x = torch.cat([self.word(prev_w) + self.fed_position(prev_p),
                       self.query_position(orders)], dim=-1)  # (B, n, 2E)
        h, _ = self.lstm(x)  # (B, n, H)
        return self.out(h)  # (B, n, V)

    def log_likelihood(self, words: Tensor, orders: Tensor) -> Tensor:
        """log p(w_1..w_n | pi) of each n-gram (B,) under its order (B, n)."""
        logits = self(words, orders).float()  # (B, n, V); float32 also under bf16 autocast
        targets = words.gather(1, orders)  # (B, n)
        # log softmax at the targets only: z_target - logsumexp(z), without a (B, n, V) copy
        log_p = logits.gather(2, targets[..., None]).squeeze(-1) - logits.logsumexp(-1)
        return log_p.sum(dim=1)


@torch.no_grad()
def order_log_likelihoods(model: OrderedNgramLM, words: Tensor, candidates: Tensor,
                          chunk: int = 512) -> Tensor:
    """log p(w | pi) of every n-gram under each of its candidate orders: words (B, n),
    candidates (B, K, n) or (K, n) shared by the batch -> (B, K)."""
    B, n = words.shape
    if candidates.dim() == 2:
        candidates = candidates.expand(B, -1, -1)
    K = candidates.shape[1]
    flat_w = words[:, None].expand(B, K, n).reshape(B * K, n)
    flat_o = candidates.reshape(B * K, n)
    out = torch.cat([model.log_likelihood(flat_w[i:i + chunk], flat_o[i:i + chunk])
                     for i in range(0, B * K, chunk)])
    return out.view(B, K)


def choose_orders(log_scores: Tensor, how: str = "argmax",
                  uniform: Tensor | None = None) -> Tensor:
    """Which of its K candidate orders (B,) each n-gram gets, from the log of its unnormalised
    posterior over them (B, K), log p(w | pi) + log q(pi) (under a uniform prior q, just the
    log-likelihoods): the posterior's mode ("argmax") or a sample from it ("sample", by
    inverting its CDF at `uniform` (B,), values in [0, 1))."""
    if how == "argmax":
        return log_scores.argmax(dim=1)
    if how == "sample":
        if uniform is None:
            raise ValueError("sampling an order needs `uniform` (B,) in [0, 1)")
        cdf = log_scores.softmax(dim=1).cumsum(dim=1)  # (B, K)
        return (cdf < uniform[:, None]).sum(dim=1).clamp_max(cdf.shape[1] - 1)
    raise ValueError(f"how must be 'argmax' or 'sample', got {how!r}")

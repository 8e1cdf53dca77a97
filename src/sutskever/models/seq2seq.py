"""The deep LSTM encoder-decoder of "Sequence to Sequence Learning with Neural Networks"
(Sutskever, Vinyals, Le 2014, arXiv:1409.3215), section 3.

Two separate LSTMs: the encoder reads the source (reversed, in the paper's best models) into
its final (h, c) state of every layer; the decoder starts from that state and models
p(y_t | y_<t, x) with a softmax over the target vocabulary. No attention: the fixed-size state is
the whole summary of the source, which is why reversing the source (short-range dependencies
between the first words of each side) helps so much. Every parameter ~ U(-0.08, 0.08).

`encode`/`step` give incremental decoding for greedy and beam search (`search.beam_search_tokens`);
the state is a dict of batch-first tensors so that the search can reorder beams. `Ensemble`
averages its members' log-probabilities at every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

State = dict[str, Tensor]


@dataclass(frozen=True)
class Seq2SeqConfig:
    src_vocab: int = 160_000
    tgt_vocab: int = 80_000
    n_layers: int = 4
    hidden: int = 1000        # cells per layer; also the embedding size (the paper: 1000 and 1000)
    init_scale: float = 0.08
    dropout: float = 0.0      # beyond the paper: between layers and before the softmax

    def __post_init__(self) -> None:
        for name in ("src_vocab", "tgt_vocab", "n_layers", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be at least 1, got {getattr(self, name)}")


class Seq2Seq(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.cfg = cfg
        H, L = cfg.hidden, cfg.n_layers
        self.src_emb = nn.Embedding(cfg.src_vocab, H, padding_idx=0)
        self.tgt_emb = nn.Embedding(cfg.tgt_vocab, H, padding_idx=0)
        self.encoder = nn.LSTM(H, H, L, batch_first=True, dropout=cfg.dropout)
        self.decoder = nn.LSTM(H, H, L, batch_first=True, dropout=cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(H, cfg.tgt_vocab)
        for p in self.parameters():
            nn.init.uniform_(p, -cfg.init_scale, cfg.init_scale)

    def encode(self, src: Tensor, src_len: Tensor) -> State:
        """src (B, S) padded, lengths (B,) -> the encoder's final state, batch first."""
        packed = pack_padded_sequence(self.src_emb(src), src_len.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, (h, c) = self.encoder(packed)  # (L, B, H) each, at each sequence's true end
        return {"h": h.transpose(0, 1), "c": c.transpose(0, 1)}

    def decode(self, state: State, tgt_in: Tensor) -> tuple[Tensor, State]:
        """Teacher-forced: target inputs (B, T) -> logits (B, T, V) and the final state."""
        hc = (state["h"].transpose(0, 1).contiguous(), state["c"].transpose(0, 1).contiguous())
        y, (h, c) = self.decoder(self.tgt_emb(tgt_in), hc)
        return self.out(self.drop(y)), {"h": h.transpose(0, 1), "c": c.transpose(0, 1)}

    def forward(self, src: Tensor, src_len: Tensor, tgt_in: Tensor) -> Tensor:
        return self.decode(self.encode(src, src_len), tgt_in)[0]

    def step(self, state: State, prev: Tensor) -> tuple[Tensor, State]:
        """One decoder step: previous tokens (B,) -> log-probabilities (B, V), next state."""
        logits, state = self.decode(state, prev[:, None])
        return F.log_softmax(logits[:, 0].float(), dim=-1), state


class Ensemble(nn.Module):
    """Several models decoded as one: at every step the mean of their log-probabilities."""

    def __init__(self, models: list[Seq2Seq]):
        super().__init__()
        self.members = nn.ModuleList(models)

    def encode(self, src: Tensor, src_len: Tensor) -> State:
        states = [m.encode(src, src_len) for m in self.members]
        return {f"{k}{i}": v for i, s in enumerate(states) for k, v in s.items()}

    def step(self, state: State, prev: Tensor) -> tuple[Tensor, State]:
        total, out = None, {}
        for i, m in enumerate(self.members):
            log_p, s = m.step({"h": state[f"h{i}"], "c": state[f"c{i}"]}, prev)
            total = log_p if total is None else total + log_p
            out.update({f"h{i}": s["h"], f"c{i}": s["c"]})
        assert total is not None
        return total / len(self.members), out


def flops_per_target_token(cfg: Seq2SeqConfig, src_per_tgt: float = 1.0) -> float:
    """Training matmul FLOPs per target token: the decoder's LSTM layers and softmax, plus the
    encoder's layers for `src_per_tgt` source tokens; x3 for forward and backward."""
    lstm = cfg.n_layers * 2 * 4 * cfg.hidden * 2 * cfg.hidden
    return 3.0 * (lstm * (1 + src_per_tgt) + 2 * cfg.hidden * cfg.tgt_vocab)

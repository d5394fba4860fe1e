"""A GPT-2 style transformer (pre-LayerNorm blocks, ReLU or GELU MLP), without position embeddings:
callers add their own (DT adds a timestep embedding to every token). Causal by default;
``causal=False`` gives the bidirectional encoder the masked inverse-dynamics model needs."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.config import at_least, positive
from bench.nn.layers import FastDropout, fast_dropout, row_padded_linear


def transformer_problems(config: Any) -> list[str]:
    """Problems of the transformer fields DT and the transformer IDM share (``problems()``)."""
    out = (at_least(config, 1, "context_len", "embed_dim", "n_layers", "n_heads")
           + at_least(config, 0, "warmup_steps", "weight_decay")
           # A negative clip norm flips the gradient (torch scales by max_norm / norm), 0 zeroes it.
           + positive(config, "grad_clip"))
    if config.n_heads >= 1 and config.embed_dim % config.n_heads:
        out.append(f"embed_dim ({config.embed_dim}) must be divisible by n_heads ({config.n_heads})")
    if not 0.0 <= config.dropout < 1.0:
        out.append(f"dropout must be in [0, 1), got {config.dropout!r}")
    if config.activation not in ACTIVATIONS:
        out.append(f"activation must be one of {', '.join(ACTIVATIONS)}, got {config.activation!r}")
    return out


class CausalSelfAttention(nn.Module):
    def __init__(self, embed_dim: int, n_heads: int, dropout: float, causal: bool = True) -> None:
        super().__init__()
        self.causal = causal
        if embed_dim % n_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.attn_dropout = dropout
        self.resid_dropout = FastDropout(dropout)

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        B, L, _ = x.shape  # (B, L, n*E) -> n tensors of (B, heads, L, E/heads)
        return x.view(B, L, n, self.n_heads, -1).permute(2, 0, 3, 1, 4)

    def forward(self, x: torch.Tensor | None, attn_mask: torch.Tensor | None,
                queries: torch.Tensor | None = None, qkv: torch.Tensor | None = None,
                pad_rows: int = 0) -> torch.Tensor:
        """``queries``: positions whose outputs are wanted (all when None). Keys and values always
        cover the whole sequence; computing only the wanted queries saves work in a last layer.
        ``qkv``: this layer's Q/K/V projections of every position, computed earlier (``x`` is then
        not needed). ``pad_rows``: see ``row_padded_linear`` (callers give it only when few rows
        are computed, i.e. with ``queries``)."""
        if qkv is not None:
            B, L, E3 = qkv.shape
            E = E3 // 3
            if queries is None:
                q, k, v = self._heads(qkv, 3)
            else:
                q = self._heads(qkv[:, queries, :E], 1)[0]
                k, v = self._heads(qkv[..., E:], 2)
        elif queries is None:
            B, L, E = x.shape
            q, k, v = self._heads(self.qkv(x), 3)
        else:
            B, L, E = x.shape
            w, b = self.qkv.weight, self.qkv.bias
            q = self._heads(row_padded_linear(x[:, queries], w[:E], b[:E], pad_rows), 1)[0]
            k, v = self._heads(F.linear(x, w[E:], b[E:]), 2)
        if queries is not None:
            if attn_mask is not None:
                attn_mask = attn_mask[..., queries, :]
            if self.causal:
                causal = queries[:, None] >= torch.arange(L, device=q.device)[None, :]
                attn_mask = causal if attn_mask is None else attn_mask & causal
        dropout = self.training and self.attn_dropout > 0
        if q.device.type == "cpu" and (dropout or q.shape[2] == 1):
            # SDPA's CPU dropout draws Bernoulli masks element by element (+7 ms per layer at
            # DT size, fwd+bwd); with short sequences the explicit product plus the cheap mask
            # is faster. For a lone query (acting) SDPA's CPU kernel splits the keys by the
            # batch size, so a row's result would depend on the batch; the explicit product does
            # not, and is faster there too (48 vs 375 µs for 5 windows of 60 tokens with 16
            # queries, as acting computed before).
            scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
            if attn_mask is None and self.causal:
                attn_mask = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
            if attn_mask is not None:
                scores = scores.masked_fill(~attn_mask, float("-inf"))
            weights = fast_dropout(scores.softmax(-1), self.attn_dropout, dropout)
            y = weights @ v
        else:
            p = self.attn_dropout if self.training else 0.0
            if attn_mask is None:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, dropout_p=p)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        y = y.transpose(1, 2).reshape(B, q.shape[2], E)
        return self.resid_dropout(row_padded_linear(y, self.proj.weight, self.proj.bias, pad_rows))


# Out-of-place on purpose: a Linear's 3-D output is a view of its 2-D matmul result, and an
# in-place ReLU on a view makes autograd add copies and zero-fills (measured: +15 ms per DT update).
ACTIVATIONS = {"relu": F.relu, "gelu": lambda x: F.gelu(x, approximate="tanh")}


class TransformerBlock(nn.Module):
    def __init__(self, embed_dim: int, n_heads: int, dropout: float,
                 activation: str = "relu", causal: bool = True) -> None:
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        self.ln1 = nn.LayerNorm(embed_dim)
        self.attn = CausalSelfAttention(embed_dim, n_heads, dropout, causal)
        self.ln2 = nn.LayerNorm(embed_dim)
        self.fc = nn.Linear(embed_dim, 4 * embed_dim)
        self.out = nn.Linear(4 * embed_dim, embed_dim)
        self.dropout = FastDropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None,
                queries: torch.Tensor | None = None, qkv: torch.Tensor | None = None,
                pad_rows: int = 0) -> torch.Tensor:
        """``qkv``: the attention's projections of ``ln1(x)``, computed earlier (acting caches
        them); ``queries`` and ``pad_rows``: see ``CausalSelfAttention.forward``."""
        attended = self.attn(self.ln1(x) if qkv is None else None, attn_mask, queries, qkv, pad_rows)
        x = (x if queries is None else x[:, queries]) + attended
        hidden = row_padded_linear(self.ln2(x), self.fc.weight, self.fc.bias, pad_rows)
        # Without autograd (acting, evaluation) the ReLU can reuse its input's buffer.
        hidden = (F.relu_(hidden) if self.activation is F.relu and torch.is_inference_mode_enabled()
                  else self.activation(hidden))
        return x + self.dropout(row_padded_linear(hidden, self.out.weight, self.out.bias, pad_rows))


class CausalTransformer(nn.Module):
    """Blocks plus a final LayerNorm. ``token_mask`` (B, L) marks real tokens; padded keys are
    hidden from every query; a padded query also sees itself (so no row is all -inf; causal, it
    sees nothing else, since padding is on the left). Padded outputs are never read."""

    def __init__(self, embed_dim: int, n_layers: int, n_heads: int, dropout: float,
                 activation: str = "relu", causal: bool = True) -> None:
        super().__init__()
        self.causal = causal
        self.blocks = nn.ModuleList(TransformerBlock(embed_dim, n_heads, dropout, activation, causal)
                                    for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(embed_dim)

    def attention_mask(self, token_mask: torch.Tensor | None, length: int,
                       device: torch.device) -> torch.Tensor | None:
        if token_mask is None or bool(token_mask.all()):
            return None  # plain causal (or full) attention, the fused fast path
        eye = torch.eye(length, dtype=torch.bool, device=device)
        allowed = token_mask[:, None, :] | eye  # (B, L, L)
        if self.causal:
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=device).tril()
        return allowed[:, None]  # broadcast over heads

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None,
                outputs: torch.Tensor | None = None, first_qkv: torch.Tensor | None = None,
                pad_rows: int = 0) -> torch.Tensor:
        """Hidden states at positions ``outputs`` (all when None). The last block computes only
        those: with DT reading 1 token in 3, that removes ~18% of an update's FLOPs.
        ``first_qkv``: the first block's Q/K/V projections of ``x``, if already known (a token's
        projections in the first block depend on that token alone, so acting caches them).
        ``pad_rows``: the last block's products over ``outputs`` rows are padded to a multiple
        of it (``row_padded_linear``)."""
        attn_mask = self.attention_mask(token_mask, x.shape[1], x.device)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, attn_mask, outputs if i == last else None,
                      first_qkv if i == 0 else None, pad_rows if i == last else 0)
        return self.ln_f(x)

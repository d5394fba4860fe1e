"""Small building blocks: MLPs and twin critics (``QEnsemble``), a dropout whose masks are cheap
to draw on the CPU, the attention kernel choice, and row-padded products for batch-invariant
acting (``row_invariant_act``)."""
from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

_dropout_source = threading.local()


@contextlib.contextmanager
def dropout_generator(generator: torch.Generator | None) -> Iterator[None]:
    """Within the block, ``fast_dropout`` on this thread draws its masks from ``generator``
    instead of torch's global generator (``bench.nn.parallel`` gives each concurrent batch shard
    its own, so that no mask depends on how the threads interleave)."""
    previous = getattr(_dropout_source, "generator", None)
    _dropout_source.generator = generator
    try:
        yield
    finally:
        _dropout_source.generator = previous


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout with masks built from 16-bit slices of ``torch.randint`` int64 words.

    ``F.dropout`` on the CPU draws one Bernoulli sample per element (≈21 ms for a 3840×512 tensor
    here, a quarter of a DT update). Drawing a quarter as many int64 words from the same global
    generator and comparing their 16-bit pieces against ``p * 2**16`` costs ≈4 ms. The keep
    probability is exact to 1/65536; the generator is torch's global one, so ``torch.manual_seed``
    and ``torch.get_rng_state`` reproduce and resume it — or the thread's ``dropout_generator``,
    which the global state does not capture: ``bench.nn.parallel`` seeds a fresh one from the
    global generator at every step, so resumes reproduce there too. On accelerators the fused
    kernel is already fast, so it is used there.
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return nn.functional.dropout(x, p, True)
    n = x.numel()
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64,
                          generator=getattr(_dropout_source, "generator", None))
    threshold = int(round(p * 65536)) - 32768
    keep = words.view(torch.int16)[:n].view(x.shape) >= threshold
    # In-place scaling of the fresh product saves a full-size temporary; autograd allows it
    # because a product with a bool mask saves only the mask for its backward.
    return (x * keep).mul_(1.0 / (1.0 - p))


def row_padded_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      multiple: int) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` computed so that each row's bits do not depend on how many
    rows share the call (plain ``F.linear`` when ``multiple`` is 0).

    MKL chooses its GEMM kernel by the row count, and below some count a row's result depends on
    the count (here: under 4 rows on one thread, under 12 on two; on an AVX-512 Xeon more). So
    ``x``'s rows (all leading dims together) are padded with zeros to a multiple of ``multiple``
    (16 suffices on both). With fewer input features than that (DT's 3 action and 11 state
    features) the products are summed feature by feature instead: a Xeon's small-K kernels
    rounded differently at any row count (see ``ScalarEmbedding``), and elementwise sums cannot.
    An agent acting this way on a few envs at once returns exactly what it would for each env
    alone. From ``UNPADDED_ROWS`` rows on, the kernel no longer depends on the count and the
    product is left as it is (padding DT's whole-window products cost 15% of an action).
    """
    rows = x.numel() // max(x.shape[-1], 1)
    if not multiple or (rows >= UNPADDED_ROWS and x.shape[-1] >= multiple):
        return nn.functional.linear(x, weight, bias)
    if x.shape[-1] < multiple:
        out = torch.zeros(*x.shape[:-1], weight.shape[0], dtype=x.dtype, device=x.device) \
            if bias is None else bias.expand(*x.shape[:-1], -1)
        for k in range(x.shape[-1]):
            out = torch.addcmul(out, x[..., k:k + 1], weight[:, k])
        return out
    lead = x.shape[:-1]
    flat = x.reshape(rows, x.shape[-1])
    padded = -(-rows // multiple) * multiple
    if padded != rows:
        flat = nn.functional.pad(flat, (0, 0, 0, padded - rows))
    return nn.functional.linear(flat, weight, bias)[:rows].reshape(*lead, weight.shape[0])


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None,
              causal: bool, dropout: "FastDropout") -> torch.Tensor:
    """softmax(q kᵀ / √d) v over heads (B, h, Q, d) × (B, h, L, d): ``allowed`` (bool, broadcast to
    (B, h, Q, L)) hides keys, ``causal`` (with ``allowed`` None) hides the keys after each query,
    ``dropout`` drops attention weights while it is training.

    PyTorch's fused kernel is the fast path, except on the CPU with dropout or with a lone query.
    Its CPU dropout draws Bernoulli masks element by element (+7 ms per layer at DT size,
    forward and backward), slower than the explicit product with ``fast_dropout``'s masks for
    short sequences. For a lone query (acting) its CPU kernel splits the keys by the batch
    size, so an env's action would depend on the batch; the explicit product does not (and is
    faster there: 48 vs 375 µs for 5 windows of 60 tokens)."""
    training = dropout.training and dropout.p > 0
    if q.device.type == "cpu" and (training or q.shape[2] == 1):
        scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
        if allowed is None and causal:
            L = k.shape[2]
            allowed = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        return dropout(scores.softmax(-1)) @ v
    p = dropout.p if dropout.training else 0.0
    if allowed is None:
        return nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=p)
    return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)


class FastDropout(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# When acting, products over a few rows per env are padded to a multiple of this many rows. MKL
# picks its matmul kernel by the row count, and below a threshold a row's bits depend on how many
# rows share the call (and on the thread count): 4 sufficed on AVX2 (AMD EPYC) on one thread, 12
# on two; on AVX-512 (Intel Xeon) a 512 -> 128 product needs 16.
ACT_ROW_MULTIPLE = 16
# Row counts from which a product is not padded: four times the largest threshold seen (16), and
# above the 60-row products that acting computed unpadded from the start (DT's window keys),
# always bit-identical across batch sizes and thread counts in the tests.
UNPADDED_ROWS = 64


class RowPaddedLinears(TorchFunctionMode):
    """Within this mode every ``F.linear`` — so every ``nn.Linear`` — is ``row_padded_linear``
    with ``multiple`` rows: a network of linear layers and elementwise ops then gives each row
    the same bits whatever other rows share the call and however many threads compute it."""

    def __init__(self, multiple: int = ACT_ROW_MULTIPLE) -> None:
        super().__init__()
        self.multiple = multiple

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        if func is nn.functional.linear:
            x, weight = args[0], args[1] if len(args) > 1 else kwargs["weight"]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            return row_padded_linear(x, weight, bias, self.multiple)
        return func(*args, **kwargs)


_Act = TypeVar("_Act", bound=Callable[..., Any])


def row_invariant_act(act: _Act) -> _Act:
    """Decorator for an MLP agent's ``act``: runs it in inference mode under ``RowPaddedLinears``,
    so that an env's action does not depend on the batch it is computed in, nor on the thread
    count, provided ``act`` is only linear layers, elementwise and per-row ops (lookups, layer
    norms, attention over one query's keys). The agent is then ``batch_invariant_act``
    (``bench.algorithm.Algorithm``) and its evaluation may be sharded."""

    @functools.wraps(act)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode(), RowPaddedLinears():
            return act(*args, **kwargs)

    wrapper.row_invariant = True  # type: ignore[attr-defined]  # read by Algorithm.batch_invariant_act
    return wrapper  # type: ignore[return-value]


class MLP(nn.Sequential):
    """Linear layers with ReLU between them; optional output activation."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int,
                 out_act: nn.Module | None = None, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = []
        last = in_dim
        for h in hidden:
            layers += [nn.Linear(last, h), nn.ReLU()]
            if dropout > 0:
                layers.append(FastDropout(dropout))
            last = h
        layers.append(nn.Linear(last, out_dim))
        if out_act is not None:
            layers.append(out_act)
        super().__init__(*layers)


class QEnsemble(nn.Module):
    """``n`` Q-networks over (s, a), ReLU MLPs of the same shape, computed together: one batched
    product per layer instead of ``n`` small ones (twin critics: ``n = 2``). Each member starts
    as an MLP of ``nn.Linear`` layers would (weights and biases uniform in ±1/√fan_in)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], n: int = 2) -> None:
        super().__init__()
        sizes = [in_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(n, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(B, obs), (B, act) → (B, n): every member's Q-value."""
        x = torch.cat([states, actions], dim=-1)
        h = x.expand(len(self.weights[0]), *x.shape)  # (n, B, obs + act)
        return _ensemble_layers(h, list(self.weights), list(self.biases)).T

    def frozen(self, states: torch.Tensor, actions: torch.Tensor,
               member: int | None = None) -> torch.Tensor:
        """Q-values with the ensemble's parameters held constant, so gradients reach only the
        inputs (an actor's step through its critics): (B, obs), (B, act) → (B, n), or (B,) for
        one ``member``. (Not ``torch.func.functional_call``, which swaps the module's parameters
        in place and so cannot run beside another forward of it.) Computing one member without
        the weight gradients halves the cost of TD3+BC's actor step."""
        x = torch.cat([states, actions], dim=-1)
        if member is None:
            h = x.expand(len(self.weights[0]), *x.shape)  # (n, B, obs + act)
            return _ensemble_layers(h, [w.detach() for w in self.weights],
                                    [b.detach() for b in self.biases]).T
        h = x[None]  # (1, B, obs + act)
        return _ensemble_layers(h, [w[member][None].detach() for w in self.weights],
                                [b[member][None].detach() for b in self.biases])[0]


def _ensemble_layers(h: torch.Tensor, weights: list[torch.Tensor],
                     biases: list[torch.Tensor]) -> torch.Tensor:
    """A ReLU MLP ensemble on (n, B, in) inputs → (n, B): batched products, then the last
    layer's single output as a product-and-sum over the hidden units. Done as a batched product,
    that layer is a GEMV that MKL runs slowly: with its ReLU, forward and backward took 0.35 ms
    of a 4 ms TD3+BC update at batch 256 (0.16-0.22 ms as a product-and-sum) and 12 ms at CQL's
    7,936 rows (6 ms eagerly)."""
    for w, b in zip(weights[:-1], biases[:-1]):
        h = torch.relu(torch.baddbmm(b, h, w))  # (n, B, fan_out)
    w, b = weights[-1], biases[-1]  # (n, hidden, 1), (n, 1, 1)
    return (h * w.transpose(1, 2)).sum(-1) + b[..., 0]  # (n, B)


class ScalarEmbedding(nn.Linear):
    """``nn.Linear(1, dim)`` computed as ``x * w + b`` elementwise: the same parameters and
    state_dict keys, but no matrix multiply. With one input feature, MKL's GEMM picks kernels by
    the row count that round differently, so a row's embedding would depend on how many rows share
    the call (seen on AVX-512), and acting on a batch of envs would not equal acting on each."""

    def __init__(self, dim: int) -> None:
        super().__init__(1, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, x, self.weight[:, 0])


def _orthogonal_linear(inp: int, out: int, std: float) -> nn.Linear:
    layer = nn.Linear(inp, out)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer


def orthogonal_tanh_mlp(inp: int, hidden: tuple[int, ...], out: int,
                        out_std: float) -> nn.Sequential:
    """PPO's actor and critic body (cleanrl's initialization): tanh hidden layers with
    orthogonal weights of gain sqrt(2), the output layer with gain ``out_std``, zero biases."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [_orthogonal_linear(inp, h, math.sqrt(2)), nn.Tanh()]
        inp = h
    return nn.Sequential(*layers, _orthogonal_linear(inp, out, out_std))

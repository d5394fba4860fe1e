"""Network pieces shared by the algorithms (DT, IDMs, goal setters)."""
from bench.nn.layers import MLP, FastDropout, fast_dropout
from bench.nn.transformer import CausalTransformer, TransformerBlock

__all__ = ["MLP", "FastDropout", "fast_dropout", "CausalTransformer", "TransformerBlock"]

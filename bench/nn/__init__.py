"""Network pieces shared by the algorithms (DT, IDMs, goal setters)."""
from bench.nn.layers import MLP, FastDropout, fast_dropout
from bench.nn.transformer import Transformer, TransformerBlock

__all__ = ["MLP", "FastDropout", "fast_dropout", "Transformer", "TransformerBlock"]

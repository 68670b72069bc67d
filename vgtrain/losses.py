"""CosFace (large margin cosine) classifier head, as CosPlace's MarginCosineProduct (cosface_loss.py)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CosFace"]


class CosFace(nn.Module):
    """Per-group CosFace classifier: one weight row per class, logits ready for cross-entropy.

    For descriptors ``x`` (B, in_features) and class weights ``W`` (out_features, in_features)::

        cos[i, j]    = x_i . W_j / max(|x_i| |W_j|, 1e-8)        (cosine similarity, unitless, in [-1, 1])
        logits[i, j] = s * (cos[i, j] - m * [j == labels[i]])

    ``m`` is the additive cosine margin subtracted from the true class only, ``s`` the
    scale (inverse temperature) applied to every logit; both are unitless. The trainer's
    loss is ``F.cross_entropy(logits, labels)``, in nats per image (batch mean).
    CosPlace uses s=30, m=0.40; ``W`` is Xavier-uniform initialised.

    Args:
        in_features: descriptor dimension (the model's ``fc_output_dim``).
        out_features: number of classes in the group.
        s: logit scale.
        m: cosine margin.
    """

    def __init__(self, in_features: int, out_features: int, s: float = 30.0, m: float = 0.40):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.s = s
        self.m = m
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        """Descriptors (B, in_features) and int64 class indices (B,) -> logits (B, out_features)."""
        w = self.weight
        norms = torch.outer(x.norm(p=2, dim=1), w.norm(p=2, dim=1)).clamp(min=1e-8)
        cos = (x @ w.t()) / norms
        margin = torch.zeros_like(cos).scatter_(1, labels.view(-1, 1), self.m)
        return self.s * (cos - margin)

    def extra_repr(self) -> str:
        """Show sizes, scale and margin when the module is printed."""
        return f"in_features={self.in_features}, out_features={self.out_features}, s={self.s}, m={self.m}"

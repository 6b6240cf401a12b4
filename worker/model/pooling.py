"""AttentionPool: softmax-attention pooling of members (sensors, components) into groups."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import softmax


class AttentionPool(nn.Module):
    """Pool member vectors into their groups with learned, explainable weights.

    Each member gets a score; scores are softmax-normalised within each group, and the group
    vector is the weighted sum of the members' projected vectors. A group without members
    pools to zeros. The result does not depend on member order.

    Args:
        features: Width of member and group vectors.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features
        self.score = nn.Sequential(
            nn.Linear(features, features // 2), nn.Tanh(), nn.Linear(features // 2, 1)
        )
        self.value = nn.Linear(features, features)

    def forward(
        self, h: Tensor, group: Tensor, num_groups: int, bias: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Pool ``h`` by ``group``.

        Args:
            h: Member vectors.
            group: Group index of each member.
            num_groups: Number of groups G (groups may be empty).
            bias: Added to each member's score before the softmax (e.g. a log prior that
                silences unobserved sensors).

        Returns:
            ``(pooled, weights)``: group vectors, and each member's weight within its group.

        Shapes:
            h: ``[M, features]``; group, bias: ``[M]``.
            pooled: ``[G, features]``; weights: ``[M]``.
        """
        score = self.score(h).squeeze(-1)
        if bias is not None:
            score = score + bias
        weights: Tensor = softmax(score, group, num_nodes=num_groups)
        pooled = torch.zeros(num_groups, self.features, dtype=h.dtype, device=h.device)
        pooled = pooled.index_add(0, group, weights[:, None] * self.value(h))
        return pooled, weights

    def extra_repr(self) -> str:
        return f"features={self.features}"

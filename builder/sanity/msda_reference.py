"""Multi-scale deformable attention in pure PyTorch, written from the published formula.

Deformable DETR (Zhu et al., 2021), eq. 3 with multiple levels::

    out[n, q, m, :] = sum_l sum_p A[n, q, m, l, p] * V_l[n, m](phi_l(loc[n, q, m, l, p]))

where ``loc`` is normalised to [0, 1] per level, ``phi_l`` maps it to pixel
coordinates ``(x * W_l - 0.5, y * H_l - 0.5)`` (pixel centres at integer +0.5,
i.e. ``grid_sample(align_corners=False)``), and sampling is bilinear with zeros
outside the map.  Shapes follow the op's Python surface:

* value ``(N, S, M, D)`` with ``S = sum_l H_l * W_l``
* spatial_shapes ``(L, 2)`` int64 rows ``(H_l, W_l)``; level_start_index ``(L,)``
* sampling_loc ``(N, Q, M, L, P, 2)`` as ``(x, y)``; attn_weight ``(N, Q, M, L, P)``
* returns ``(N, Q, M * D)``

This file imports only torch: the prefix's python runs it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def msda_fast(value: torch.Tensor, spatial_shapes: torch.Tensor, sampling_loc: torch.Tensor,
              attn_weight: torch.Tensor) -> torch.Tensor:
    """grid_sample-based reference (vectorised over batch, heads, queries and points)."""
    n, _, m, d = value.shape
    _, q, _, levels, p, _ = sampling_loc.shape
    sizes = [int(h) * int(w) for h, w in spatial_shapes.tolist()]
    per_level = torch.split(value, sizes, dim=1)
    grids = 2 * sampling_loc - 1  # [0, 1] -> [-1, 1] for grid_sample
    sampled = []
    for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
        # (N, H*W, M, D) -> (N*M, D, H, W)
        v = per_level[lvl].permute(0, 2, 3, 1).reshape(n * m, d, int(h), int(w))
        # (N, Q, M, P, 2) -> (N*M, Q, P, 2)
        g = grids[:, :, :, lvl].permute(0, 2, 1, 3, 4).reshape(n * m, q, p, 2)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros",
                                     align_corners=False))  # (N*M, D, Q, P)
    stacked = torch.stack(sampled, dim=-2).flatten(-2)  # (N*M, D, Q, L*P)
    weights = attn_weight.permute(0, 2, 1, 3, 4).reshape(n * m, 1, q, levels * p)
    out = (stacked * weights).sum(-1)  # (N*M, D, Q)
    return out.view(n, m * d, q).transpose(1, 2).contiguous()


def _bilinear(img: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """Sample ``img`` (H, W, D) at pixel coordinates (y, x) with zero padding."""
    h, w, _ = img.shape
    y0, x0 = int(torch.floor(torch.tensor(y))), int(torch.floor(torch.tensor(x)))
    ly, lx = y - y0, x - x0
    out = torch.zeros(img.shape[-1], dtype=img.dtype)
    for yy, xx, wt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                       (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        if 0 <= yy < h and 0 <= xx < w:
            out = out + wt * img[yy, xx]
    return out


def msda_slow(value: torch.Tensor, spatial_shapes: torch.Tensor, sampling_loc: torch.Tensor,
              attn_weight: torch.Tensor) -> torch.Tensor:
    """Loop-for-loop transcription of the formula (tiny inputs only; validates msda_fast)."""
    n, _, m, d = value.shape
    _, q, _, levels, p, _ = sampling_loc.shape
    out = torch.zeros(n, q, m, d, dtype=value.dtype)
    starts = [0]
    for h, w in spatial_shapes.tolist()[:-1]:
        starts.append(starts[-1] + int(h) * int(w))
    for b in range(n):
        for qi in range(q):
            for head in range(m):
                for lvl in range(levels):
                    h, w = (int(x) for x in spatial_shapes[lvl].tolist())
                    img = value[b, starts[lvl]:starts[lvl] + h * w, head].reshape(h, w, d)
                    for pt in range(p):
                        x, y = sampling_loc[b, qi, head, lvl, pt].tolist()
                        s = _bilinear(img, y * h - 0.5, x * w - 0.5)
                        out[b, qi, head] += attn_weight[b, qi, head, lvl, pt] * s
    return out.reshape(n, q, m * d)


def random_inputs(n: int, m: int, d: int, q: int, p: int, shapes: list[tuple[int, int]],
                  dtype: torch.dtype, device: str | torch.device = "cpu",
                  seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(value, spatial_shapes, level_start_index, sampling_loc, attn_weight) for tests.

    Locations spill slightly outside [0, 1] so zero padding is exercised.
    """
    gen = torch.Generator().manual_seed(seed)
    spatial = torch.tensor(shapes, dtype=torch.long)
    sizes = spatial[:, 0] * spatial[:, 1]
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    levels = len(shapes)
    value = torch.rand(n, int(sizes.sum()), m, d, generator=gen, dtype=torch.float64)
    loc = torch.rand(n, q, m, levels, p, 2, generator=gen, dtype=torch.float64) * 1.2 - 0.1
    attn = torch.rand(n, q, m, levels, p, generator=gen, dtype=torch.float64) + 1e-5
    attn = attn / attn.sum(dim=(-1, -2), keepdim=True)
    return tuple(t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
                 for t in (value, spatial, starts, loc, attn))

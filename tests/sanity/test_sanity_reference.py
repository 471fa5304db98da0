"""Our pure-PyTorch MSDeformAttn reference: the fast (grid_sample) one against the loop one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "builder" / "sanity"))
import msda_reference as ref  # noqa: E402


@pytest.mark.parametrize("channels", [1, 3, 8])
def test_fast_matches_the_formula_loop(channels: int) -> None:
    v, s, _, loc, a = ref.random_inputs(2, 2, channels, 3, 2, [(5, 6), (3, 2), (1, 1)],
                                        torch.float64, seed=channels)
    fast = ref.msda_fast(v, s, loc, a)
    assert fast.shape == (2, 3, 2 * channels)
    torch.testing.assert_close(fast, ref.msda_slow(v, s, loc, a), atol=1e-12, rtol=1e-12)


def test_zero_padding_outside_the_map() -> None:
    v, s, _, loc, a = ref.random_inputs(1, 1, 2, 2, 1, [(4, 4)], torch.float64)
    far = torch.full_like(loc, 2.0)  # every point well outside [0, 1]
    assert ref.msda_fast(v, s, far, a).abs().max().item() == 0.0
    assert ref.msda_slow(v, s, far, a).abs().max().item() == 0.0


def test_pixel_centre_samples_exactly() -> None:
    value = torch.arange(6, dtype=torch.float64).reshape(1, 6, 1, 1)  # a 2x3 map
    shapes = torch.tensor([[2, 3]])
    loc = torch.tensor([(1.5 / 3, 0.5 / 2)], dtype=torch.float64).reshape(1, 1, 1, 1, 1, 2)
    attn = torch.ones(1, 1, 1, 1, 1, dtype=torch.float64)
    assert ref.msda_fast(value, shapes, loc, attn).item() == pytest.approx(1.0)


def test_fast_reference_is_differentiable() -> None:
    v, s, _, loc, a = ref.random_inputs(1, 2, 2, 2, 2, [(3, 4), (2, 2)], torch.float64, seed=3)
    loc = loc.clamp(0.05, 0.95)
    for t in (v, loc, a):
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v_, l_, a_: ref.msda_fast(v_, s, l_, a_), (v, loc, a))

"""The CPU dropout: nn.Dropout's distribution and gradient, from a cheaper random mask."""

import pytest
import torch

from nuclei_unet.model.dropout import LEVELS, Dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_mask_drops_a_fraction_p_and_keeps_the_mean(p):
    torch.manual_seed(0)
    mask = keep_mask(torch.empty(1_000_000), p)
    dropped = round(p * LEVELS)
    scale = LEVELS / (LEVELS - dropped)
    # two values only: 0 and the scale that keeps the expectation
    assert mask.unique().tolist() == [0.0, pytest.approx(scale)]
    # 1e6 Bernoulli(p) draws: the fraction's standard deviation is <= 5e-4
    assert (mask == 0).float().mean().item() == pytest.approx(p, abs=2.5e-3)
    assert mask.mean().item() == pytest.approx(1.0, abs=5e-3)


def test_mask_elements_are_independent_of_their_neighbours():
    # four uniforms come from each 64-bit draw: check that neighbours inside a word are not
    # tied (P(both dropped) = p^2 for independent draws: 0.25 at p 0.5, 0.5 if tied)
    torch.manual_seed(1)
    dropped = keep_mask(torch.empty(400_000), 0.5) == 0
    pairs = dropped.view(-1, 4)
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        assert (pairs[:, a] & pairs[:, b]).float().mean().item() == pytest.approx(0.25, abs=5e-3)


def test_mask_follows_the_layout_and_dtype():
    x = torch.rand(2, 3, 4, 5).contiguous(memory_format=torch.channels_last).bfloat16()
    mask = keep_mask(x, 0.2)
    assert mask.shape == x.shape and mask.dtype == torch.bfloat16
    assert mask.is_contiguous(memory_format=torch.channels_last)


def test_forward_and_gradient_use_the_same_mask():
    torch.manual_seed(2)
    drop = Dropout(0.4).train()
    x = torch.rand(4, 8, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = drop(x)
    y.backward(torch.ones_like(y))
    kept = y != 0
    scale = LEVELS / (LEVELS - round(0.4 * LEVELS))
    assert torch.allclose(y[kept], x.detach()[kept] * scale)
    # d(sum y)/dx: the scale where kept, 0 where dropped
    assert torch.equal(x.grad != 0, kept)
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], scale))


def test_seeded_draws_repeat():
    x = torch.rand(2, 4, 8, 8)
    torch.manual_seed(3)
    a = Dropout(0.3).train()(x)
    torch.manual_seed(3)
    b = Dropout(0.3).train()(x)
    assert torch.equal(a, b) and not torch.equal(a, x)


@pytest.mark.parametrize("p, training", [(0.0, True), (0.5, False)])
def test_identity_when_off_or_in_eval(p, training):
    x = torch.rand(2, 4, 8, 8)
    assert Dropout(p).train(training)(x) is x


@pytest.mark.parametrize("p", [1.0, 0.999995])  # the second rounds to 65536/65536
def test_drops_everything_at_one(p):
    torch.manual_seed(0)
    assert torch.equal(Dropout(p).train()(torch.rand(3, 5)), torch.zeros(3, 5))

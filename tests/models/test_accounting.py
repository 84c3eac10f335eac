"""Parameters, FLOPs and effective depth on graphs whose answers can be worked out by hand."""

import jax
import pytest
from flax import nnx

from recbench.models import accounting
from recbench.models.engine import AreaGraph, chain_graph


def _blt(lateral, topdown, schedule="sequential", steps=4, channels=(32, 32)):
    spec = chain_graph(channels, lateral=lateral, topdown=topdown, steps=steps, schedule=schedule,
                       in_channels=1, num_classes=10)
    return AreaGraph(spec, rngs=nnx.Rngs(0))


def test_param_count_by_hand():
    # BLT at Spoerer sizes: input->1 (3*3*1*32), 1->2, two laterals and one top-down (3*3*32*32 each),
    # per-step BN scale+bias (2 areas * 4 steps * 32 * 2), readout 32*10 + 10.
    expected = 288 + 9216 + 2 * 9216 + 9216 + 2 * 4 * 32 * 2 + 330
    assert accounting.count_params(_blt(True, True)) == expected == 37994
    assert accounting.count_params(_blt(False, False)) == 288 + 9216 + 128 + 330  # one step: one row of BN


@pytest.mark.parametrize("lateral,topdown,schedule,expected", [
    # B: feedforward, one step (one readout): two ReLUs from pixels to it.
    (False, False, "sequential", [2]),
    # BL: area2(t) = 1 + max(area1(t), area2(t-1)), area1(t) = 1 + area1(t-1) -> t + 2.
    (True, False, "sequential", [2, 3, 4, 5]),
    # BT and BLT: the top-down loop adds two ReLUs per step -> 2t + 2.
    (False, True, "sequential", [2, 4, 6, 8]),
    (True, True, "sequential", [2, 4, 6, 8]),
    # Synchronous: the top area is reached at t=1 (nothing to read out at t=0, reported as 0).
    (False, False, "synchronous", [0, 2, 2, 2]),
    (True, False, "synchronous", [0, 2, 3, 4]),
    (False, True, "synchronous", [0, 2, 2, 4]),
])
def test_effective_depth_by_hand(lateral, topdown, schedule, expected):
    assert accounting.effective_depth(_blt(lateral, topdown, schedule, channels=(4, 4)), (8, 8, 1)) == expected


def test_effective_depth_follows_ablation_free_graph_and_test_time_steps():
    m = _blt(True, True, channels=(4, 4))
    assert accounting.effective_depth(m, (8, 8, 1), steps=6) == [2, 4, 6, 8, 10, 12]


def test_jaxpr_depth_counts_nonlinearities_on_the_longest_path():
    relu = jax.nn.relu

    def f(x):
        a = relu(relu(relu(x)))          # 3 deep
        b = jax.nn.sigmoid(x) * 2.0      # 1 deep
        return a + b, b, x * 3.0         # 3, 1, 0

    closed = jax.make_jaxpr(f)(1.0)
    assert accounting.jaxpr_depths(closed.jaxpr, [0]) == [3, 1, 0]


def test_flops_are_cumulative_per_step():
    b = _blt(False, False)
    flops = accounting.flops_per_image(b, (32, 32, 1))
    # B is feedforward: it runs (and is charged) one pass, not one per step.
    assert len(flops) == 1
    bl = accounting.flops_per_image(_blt(True, False), (32, 32, 1))
    assert len(bl) == 4 and all(later > earlier for earlier, later in zip(bl, bl[1:], strict=False))
    # The bottom-up convs alone: 32x32x(3x3x1 -> 32) and 16x16x(3x3x32 -> 32) multiply-adds, x2 FLOPs each,
    # less the zero-padding border that XLA does not count.
    convs = 2 * (32 * 32 * 9 * 32 + 16 * 16 * 9 * 32 * 32)
    assert 0.8 * convs < flops[0] < 1.3 * convs
    blt = accounting.flops_per_image(_blt(True, True), (32, 32, 1))
    assert blt[0] == pytest.approx(flops[0], rel=1e-6)  # step 0 has no lateral or top-down input yet
    assert blt[1] - blt[0] > 2 * flops[0]  # a BLT step adds the lateral and top-down convs to a B pass

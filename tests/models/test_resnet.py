"""ResNet fidelity (parameter counts, layout, torchvision names) and behaviour (BN modes, sharing)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from recbench.models.norms import NormContext
from recbench.models.resnet import cifar_resnet, imagenet_resnet
from recbench.models.resnet_blocks import BasicBlock, pad_shortcut


def n_params(model: nnx.Module) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def abstract(build, *args, **kw) -> nnx.Module:
    """Shapes only: no allocation and no random init."""
    return nnx.eval_shape(lambda: build(*args, rngs=nnx.Rngs(0), **kw))


def rngs() -> nnx.Rngs:
    # rbg keys compile random init ~3x faster than threefry on CPU (docs/performance.md §4b).
    return nnx.Rngs(jax.random.key(0, impl="rbg"))


def images(b: int = 4, hw: int = 32, seed: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), (b, hw, hw, 3))


# Option A: the counts akamaster/pytorch_resnet_cifar10 prints (README 0.27M … 1.7M); B adds 2 projections.
CIFAR_A = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}
CIFAR_B = {20: 272_474, 32: 466_906, 44: 661_338, 56: 855_770, 110: 1_730_714}
TORCHVISION = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}


@pytest.mark.parametrize("depth", sorted(CIFAR_A))
def test_cifar_param_counts(depth):
    assert n_params(abstract(cifar_resnet, depth)) == CIFAR_A[depth]
    assert n_params(abstract(cifar_resnet, depth, shortcut="B")) == CIFAR_B[depth]


@pytest.mark.slow
def test_cifar_1202_param_count():
    # Built for real: nnx.eval_shape is quadratic in the number of layers (each rng draw walks the traced
    # jaxpr), about a minute at 1202 layers, while eager construction is linear.
    model = cifar_resnet(1202, rngs=rngs())
    assert len(model.layer1) == len(model.layer3) == 200
    assert n_params(model) == 19_421_274  # akamaster's README: 19.4M


@pytest.mark.parametrize("depth", sorted(TORCHVISION))
def test_imagenet_param_counts_match_torchvision(depth):
    assert n_params(abstract(imagenet_resnet, depth)) == TORCHVISION[depth]


@pytest.mark.parametrize("depth", [0, 2, 18, 21, 100])
def test_cifar_rejects_depth_not_6n_plus_2(depth):
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_resnet(depth, rngs=nnx.Rngs(0))


def test_imagenet_rejects_unknown_depth():
    with pytest.raises(ValueError, match="18, 34, 50, 101, 152"):
        imagenet_resnet(20, rngs=nnx.Rngs(0))


def _torch_key_to_array(model: nnx.Module, key: str):
    """The mechanical name mapping a weight converter uses (see recbench.models.resnet's docstring)."""
    *path, leaf = key.split(".")
    node = model
    for part in path:
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    name = {
        "weight": "kernel" if isinstance(node, nnx.Conv | nnx.Linear) else "scale",
        "running_mean": "mean",
        "running_var": "var",
    }.get(leaf, leaf)
    return getattr(node, name).get_value()


def test_resnet50_layout_matches_torchvision_names_and_shapes():
    m = abstract(imagenet_resnet, 50)
    # torchvision state-dict key -> its PyTorch shape; ours: HWIO convs, [in, out] fc, [1, C] BN rows.
    torch_shapes = {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_var": (64,),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.0.downsample.1.bias": (256,),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer3.5.conv3.weight": (1024, 256, 1, 1),
        "layer4.2.bn3.running_mean": (2048,),
        "fc.weight": (1000, 2048),
        "fc.bias": (1000,),
    }
    for key, shape in torch_shapes.items():
        ours = _torch_key_to_array(m, key).shape
        if len(shape) == 4:
            expected = (shape[2], shape[3], shape[1], shape[0])
        elif key == "fc.weight":
            expected = shape[::-1]
        elif key.startswith("fc"):
            expected = shape
        else:
            expected = (1, *shape)
        assert ours == expected, key
    # v1.5: the stride sits on the 3x3 conv, the 1x1 convs stay at stride 1; PyTorch's symmetric padding.
    assert m.layer2[0].conv2.strides == 2 and m.layer2[0].conv1.strides == 1
    assert m.layer2[0].downsample[0].strides == 2
    assert m.conv1.padding == ((3, 3), (3, 3))
    # torchvision's resnet50 has 53 convs (1 stem + 16 blocks x 3 + 4 projections) and no conv biases.
    kernels = [p for path, p in nnx.iter_graph(m) if isinstance(p, nnx.Param) and path[-1] == "kernel"]
    assert len(kernels) == 53 + 1  # + fc
    assert not any(isinstance(n, nnx.Conv) and n.bias is not None for _, n in nnx.iter_graph(m))


def test_option_a_shortcut_subsamples_and_pads_channels_without_params():
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 16))
    y = pad_shortcut(x, 32, 2)
    assert y.shape == (2, 4, 4, 32)
    np.testing.assert_array_equal(y[..., :8], 0)  # akamaster pads planes // 4 on each side
    np.testing.assert_array_equal(y[..., 24:], 0)
    np.testing.assert_array_equal(y[..., 8:24], x[:, ::2, ::2, :])

    block_a = BasicBlock(16, 32, 2, shortcut="A", rngs=rngs())
    block_b = BasicBlock(16, 32, 2, shortcut="B", rngs=rngs())
    assert block_a.downsample is None
    assert n_params(block_a) == 9 * 16 * 32 + 9 * 32 * 32 + 2 * 2 * 32  # conv1 + conv2 + 2 BN
    assert n_params(block_b) - n_params(block_a) == 16 * 32 + 2 * 32  # the 1x1 projection and its BN
    out = block_a(x, 0, NormContext(train=False))
    assert out.shape == (2, 4, 4, 32)


def test_cifar_forward_shape_and_steps_ignored_without_sharing():
    model = cifar_resnet(20, width=4, num_classes=7, rngs=rngs())
    x = images(3)
    out = model(x)
    assert out.shape == (1, 3, 7)
    assert model.trained_steps == 1
    assert len(model.unroll(x)) == 1
    np.testing.assert_allclose(model(x, steps=5, ablate=("lateral",)), out, rtol=1e-6)


def test_train_mode_updates_running_stats_and_eval_uses_them():
    model = cifar_resnet(14, width=4, rngs=rngs())
    x = images(8)
    before = model(x)
    np.testing.assert_array_equal(model.bn1.mean[...], 0)  # eval left the statistics alone

    train_out = model(x, train=True)
    # Stem BN: running = 0.9 * 0 + 0.1 * (batch mean of conv1's output over N, H, W).
    batch_mean = jnp.mean(model.conv1(x), axis=(0, 1, 2))
    np.testing.assert_allclose(model.bn1.mean[...][0], 0.1 * batch_mean, rtol=1e-5, atol=1e-7)
    assert not np.allclose(model.layer3[1].bn2.var[...], 1.0)  # deep layers updated too

    after = model(x)
    assert not np.allclose(after, before)  # eval reads the new running statistics...
    assert not np.allclose(after, train_out)  # ...not the batch statistics
    # Eval is per-example (no batch coupling); train-mode BN couples the batch.
    np.testing.assert_allclose(model(x[:2]), after[:, :2], rtol=1e-5, atol=1e-6)
    assert not np.allclose(model(x[:2], train=True), train_out[:, :2], atol=1e-4)


def test_train_step_under_jit_commits_stats():
    model = cifar_resnet(8, width=4, rngs=rngs())

    @nnx.jit
    def forward(m, x):
        return m(x, train=True)

    forward(model, images(4))
    assert not np.allclose(model.layer2[0].bn1.mean[...], 0)


def test_shared_weights_param_drop_and_time_specific_bn():
    # Sharing keeps one conv set per stage after the first block: ResNet-20 drops one BasicBlock's convs
    # per stage (16: 2*9*16*16, 32: 2*9*32*32, 64: 2*9*64*64) and keeps every BN row.
    shared = abstract(cifar_resnet, 20, share_weights=True)
    assert n_params(shared) == CIFAR_A[20] - (4_608 + 18_432 + 73_728) == 172_954
    assert len(shared.layer2) == 2 and shared.shared_steps == (2, 2, 2)
    assert shared.layer2[1].bn1.scale.get_value().shape == (2, 32)
    # ResNet-34 [3,4,6,3]: drop (n-2) blocks of 2 3x3 convs per stage; ResNet-18 has nothing to share.
    drop = sum((n - 2) * 2 * 9 * w * w for n, w in zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True))
    assert n_params(abstract(imagenet_resnet, 34, share_weights=True)) == TORCHVISION[34] - drop
    assert n_params(abstract(imagenet_resnet, 18, share_weights=True)) == TORCHVISION[18]


def test_shared_steps_change_the_computation_at_call_time():
    model = cifar_resnet(20, width=4, share_weights=True, rngs=rngs())
    x = images(4)
    model(x, train=True)  # gives the BN rows distinct statistics
    rows = model.layer1[1].bn1.mean[...]
    assert not np.allclose(rows[0], rows[1])  # time-specific: each application has its own statistics

    trained = model(x)
    np.testing.assert_allclose(model(x, steps=2), trained, rtol=1e-6)  # the trained depth is the default
    for steps in (0, 1, 4, (2, 3, 1)):  # 4: beyond training, reusing the last BN row
        out = model(x, steps=steps)
        assert out.shape == (1, 4, 10)
        assert not np.allclose(out, trained), steps
    with pytest.raises(ValueError, match="steps"):
        model(x, steps=(1, 2))


@pytest.mark.parametrize("norm, expected", [("group", CIFAR_A[20]), ("none", CIFAR_A[20] - 1_376)])
def test_other_norms(norm, expected):
    # "none" drops every BN's scale and bias: 2 * (16 + 6*16 + 6*32 + 6*64) = 1,376.
    assert n_params(abstract(cifar_resnet, 20, norm=norm)) == expected
    model = cifar_resnet(8, width=4, norm=norm, rngs=rngs())
    assert model(images(2), train=True).shape == (1, 2, 10)
    with pytest.raises(ValueError, match="bn, group, none"):
        cifar_resnet(20, norm="bn_step", rngs=nnx.Rngs(0))


def test_zero_init_residual_zeros_last_bn_gamma():
    plain = cifar_resnet(8, width=4, rngs=rngs())
    zeroed = cifar_resnet(8, width=4, zero_init_residual=True, rngs=rngs())
    np.testing.assert_array_equal(zeroed.layer1[0].bn2.scale[...], 0)
    np.testing.assert_array_equal(plain.layer1[0].bn2.scale[...], 1)
    np.testing.assert_array_equal(zeroed.layer1[0].bn1.scale[...], 1)


# ---- shared BN, shared-weight presets, early exits, ImageNet width -------------------------------------------------


def test_share_norm_keeps_one_bn_for_the_shared_block():
    """``share_norm=False`` (default): the shared block has a BN row per application (time-specific); ``True``: one
    BN for all of them, (n - 2) rows of 2 BNs x (scale, bias) fewer per stage."""
    per_step = abstract(cifar_resnet, 20, share_weights=True)
    shared = abstract(cifar_resnet, 20, share_weights=True, share_norm=True)
    assert per_step.layer2[1].bn1.scale.get_value().shape == (2, 32)
    assert shared.layer2[1].bn1.scale.get_value().shape == (1, 32)
    assert shared.layer2[0].bn1.scale.get_value().shape == (1, 32)  # the unshared first block: as before
    assert n_params(per_step) - n_params(shared) == 2 * 2 * (16 + 32 + 64)
    model = cifar_resnet(14, width=4, share_weights=True, share_norm=True, rngs=rngs())
    model(images(4), train=True)
    assert model.layer1[1].bn1.mean[...].shape == (1, 4) and not np.allclose(model.layer1[1].bn1.mean[...], 0)
    out = model(images(4), steps=3)  # beyond the trained count: the one BN again
    assert out.shape == (1, 4, 10)


@pytest.mark.parametrize("depth", [20, 56, 110])
def test_shared_weight_presets(depth):
    from recbench.models.registry import build_model

    n = (depth - 2) // 6
    m = nnx.eval_shape(lambda: build_model(f"resnet{depth}_shared"))
    drop = sum((n - 2) * 2 * 9 * w * w for w in (16, 32, 64))  # one block's convs kept per stage after the first
    assert n_params(m) == CIFAR_A[depth] - drop
    assert m.shared_steps == (n - 1,) * 3 and m.layer3[1].bn2.scale.get_value().shape == (n - 1, 64)


def test_early_exits_read_out_after_every_stage():
    model = cifar_resnet(8, width=4, num_classes=7, exits="stages", rngs=rngs())
    assert model.trained_steps == 3
    x = images(3)
    out = model(x)
    assert out.shape == (3, 3, 7)
    ctx = NormContext(train=False)  # each exit: GAP -> its own linear layer, on that stage's output
    h = jax.nn.relu(model.bn1(model.conv1(x), 0, ctx))
    for s, head in enumerate((model.exit_fcs[0], model.exit_fcs[1], model.fc)):
        h = getattr(model, f"layer{s + 1}")[0](h, 0, ctx)
        np.testing.assert_allclose(out[s], head(jnp.mean(h, axis=(1, 2))), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x, steps=2), out[:2], rtol=1e-6)  # the first two exits only
    for bad in (0, 4, (1, 2)):
        with pytest.raises(ValueError, match="1..3"):
            model(x, steps=bad)
    with pytest.raises(ValueError, match="choose one"):
        cifar_resnet(20, exits="stages", share_weights=True, rngs=nnx.Rngs(0))
    # the heads of stages 1 and 2 are the only new parameters; torchvision's names stay where they were
    assert n_params(abstract(cifar_resnet, 20, exits="stages")) == CIFAR_A[20] + (16 + 1) * 10 + (32 + 1) * 10


def test_early_exit_accounting_per_readout():
    from recbench.models.accounting import describe
    from recbench.models.registry import build_model, preset

    for name, depth in (("resnet20_exits", 20), ("resnet50_cifar_exits", 50)):
        assert preset(name).objective == "mean" and preset(name).exits == "stages"
        n = (depth - 2) // 6
        m = nnx.eval_shape(lambda name=name: build_model(name))
        assert m.trained_steps == 3
        assert n_params(m) == CIFAR_A.get(depth, n_params(abstract(cifar_resnet, depth))) + 170 + 330
        if depth == 20:
            d = describe(m, (32, 32, 3))
            assert d["effective_depth"] == [1 + 2 * n, 1 + 4 * n, 1 + 6 * n] == [7, 13, 19]
            flops = d["flops_per_image"]
            assert flops[0] < flops[1] < flops[2]
            plain = describe(nnx.eval_shape(lambda: build_model("resnet20")), (32, 32, 3))["flops_per_image"][0]
            assert abs(flops[2] - plain) / plain < 0.01  # the last exit costs the whole net (+ two tiny heads)
    assert preset("resnet20").objective == "last"


def _imagenet_basic_params(blocks, width, classes=1000):
    """A torchvision basic-block ResNet's parameters, counted from its layout."""
    total = 49 * 3 * width + 2 * width  # 7x7 stem conv + BN
    c_in = width
    for s, n in enumerate(blocks):
        w = width * 2**s
        for i in range(n):
            cin = c_in if i == 0 else w
            total += 9 * cin * w + 9 * w * w + 4 * w  # two 3x3 convs, two BNs
            if i == 0 and (s > 0):
                total += cin * w + 2 * w  # the 1x1 projection + BN
        c_in = w
    return total + c_in * classes + classes


def test_imagenet_width_multiplier_scales_the_net_and_keeps_torchvision_at_1():
    from recbench.models.registry import build_model

    assert _imagenet_basic_params((2, 2, 2, 2), 64) == TORCHVISION[18]  # the formula is torchvision's
    assert n_params(nnx.eval_shape(lambda: build_model("resnet18"))) == TORCHVISION[18]
    assert n_params(nnx.eval_shape(lambda: build_model("resnet18", width=1.0))) == TORCHVISION[18]
    narrow = nnx.eval_shape(lambda: build_model("resnet18", width=0.5))
    assert n_params(narrow) == _imagenet_basic_params((2, 2, 2, 2), 32)
    assert narrow.conv1.kernel.get_value().shape == (7, 7, 3, 32) and narrow.fc.kernel.get_value().shape == (256, 1000)
    assert n_params(abstract(imagenet_resnet, 50, width=32)) < TORCHVISION[50] / 3

"""The PyTorch references of recbench-bench are the same networks as recbench's: with recbench's weights copied in,
they give the same logits at every time step, in eval mode (running statistics) and in train mode (batch
statistics), for every benchmark case.

recbench's fresh BatchNorms are the identity in eval mode (mean 0, variance 1, scale 1, bias 0), which would hide a
wrong row or a swapped statistic, so every norm row and every bias gets its own random values.
"""

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch references need the torch extra (pip install -e .[torch])")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

import recbench  # noqa: E402
from recbench.bench.cases import CASES, model_config  # noqa: E402
from recbench.bench.torch_refs import build_reference, transpose_conv  # noqa: E402
from recbench.bench.weights import copy_into_torch, invert, torch_state_from  # noqa: E402
from recbench.models.norms import StepNorm  # noqa: E402
from recbench.models.torch_weights import MODULE_RULES  # noqa: E402

TOL = 1e-4  # of the largest logit
BATCH = 2


def random_model(case, seed: int, **overrides) -> nnx.Module:
    """The case's recbench model with every variable drawn here (no JAX random init, which dominates the test's
    time): He-normal kernels, and distinct random affine, statistics and biases in every norm row."""
    model = nnx.eval_shape(lambda: recbench.build_model(case.preset, num_classes=case.num_classes,
                                                        input_shape=case.input_shape, **overrides))
    rng = np.random.default_rng(seed)

    def put(var, values):
        var.set_value(jax.numpy.asarray(values, jax.numpy.float32))

    for _, node in nnx.iter_graph(model):
        if isinstance(node, StepNorm) and node.kind != "none":
            shape = node.scale.shape
            put(node.scale, rng.uniform(0.7, 1.3, shape))
            put(node.bias, 0.2 * rng.standard_normal(shape))
            if node.kind != "group":
                put(node.mean, 0.2 * rng.standard_normal(shape))
                put(node.var, rng.uniform(0.5, 2.0, shape))
        elif isinstance(node, (nnx.Conv, nnx.ConvTranspose, nnx.Linear)):
            shape = node.kernel.shape
            put(node.kernel, rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1])))
            if node.bias is not None:
                put(node.bias, 0.2 * rng.standard_normal(node.bias.shape))
    for path, var in nnx.to_flat_state(nnx.state(model)):
        assert isinstance(var[...], jax.Array), f"{path} was left abstract"
    return model


def pair(case_name: str, seed: int = 0, **overrides):
    case = CASES[case_name]
    model = random_model(case, seed, **overrides)
    ref = build_reference(model_config(case.preset, **overrides), case.num_classes, case.input_shape)
    copy_into_torch(model, ref)
    x = np.random.default_rng(seed + 1).standard_normal((BATCH, *case.input_shape), dtype=np.float32)
    return model, ref, x


def recbench_logits(model: nnx.Module, x: np.ndarray, *, train: bool, steps: int | None = None) -> np.ndarray:
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    forward = jax.jit(lambda p, r, x: nnx.merge(graphdef, p, r, copy=True)(x, train=train, steps=steps))
    return np.asarray(forward(params, rest, x))


def torch_logits(ref, x: np.ndarray, *, train: bool, steps: int | None = None) -> np.ndarray:
    ref.train(train)
    with torch.no_grad():
        return ref(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), steps=steps).numpy()


def assert_same(out: np.ndarray, ref: np.ndarray) -> None:
    assert out.shape == ref.shape
    scale = np.abs(ref).max()
    assert scale > 0.1  # non-trivial logits
    err = np.abs(out - ref).max(axis=(1, 2)) / scale  # per time step
    assert err.max() < TOL, f"relative error per step {err}"


@pytest.mark.parametrize("case_name", list(CASES))
def test_reference_logits_match_at_every_step_in_eval_and_train_mode(case_name):
    model, ref, x = pair(case_name)
    steps = model.trained_steps
    for train in (False, True):
        out = recbench_logits(model, x, train=train)
        assert out.shape[0] == steps
        assert_same(out, torch_logits(ref, x, train=train))


def test_reference_matches_the_rolled_scan_unroll():
    """recbench's two unroll strategies compute the same network; the reference matches the rolled one too."""
    model, ref, x = pair("blt", seed=7, unroll="scan")
    for train in (False, True):
        assert_same(recbench_logits(model, x, train=train), torch_logits(ref, x, train=train))


@pytest.mark.parametrize(("case_name", "overrides"), [("blt", {"width": 0.5}), ("blt", {"norm": "none"}),
                                                      ("cornet_rt", {"width": 0.25})])
def test_blt_and_cornet_references_follow_width_and_norm(case_name, overrides):
    """``model.width`` scales the references' channels as the builders do; a BLT without norm has bottom-up biases."""
    model, ref, x = pair(case_name, **overrides)
    for train in (False, True):
        assert_same(recbench_logits(model, x, train=train), torch_logits(ref, x, train=train))


def test_blt_reference_matches_beyond_the_trained_depth():
    model, ref, x = pair("blt", seed=3)
    assert_same(recbench_logits(model, x, train=False, steps=7), torch_logits(ref, x, train=False, steps=7))


@pytest.mark.parametrize(("kernel", "stride", "size"), [(3, 2, 5), (3, 4, 3), (3, 8, 2), (2, 2, 3)])
def test_transpose_conv_matches_flax_same_padding(kernel, stride, size):
    rng = np.random.default_rng(kernel * stride)
    layer = nnx.ConvTranspose(3, 4, (kernel, kernel), strides=(stride, stride), padding="SAME", use_bias=False,
                              rngs=nnx.Rngs(0))
    x = rng.standard_normal((2, size, size, 3), dtype=np.float32)
    want = np.asarray(layer(x))
    conv, crop = transpose_conv(3, 4, kernel, stride, bias=False)
    rule = next(r for cls, r in MODULE_RULES if cls is nnx.ConvTranspose)
    _, transform = rule.leaves["weight"]
    conv.weight.data = torch.from_numpy(invert(transform, np.asarray(layer.kernel[...]), tuple(conv.weight.shape)))
    with torch.no_grad():
        got = conv(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    if crop:
        got = got[..., :-crop, :-crop]
    np.testing.assert_allclose(got.numpy().transpose(0, 2, 3, 1), want, atol=1e-5)


def test_resnet_copy_round_trips_through_the_torch_weight_loader():
    """The copy is the loader run backwards: loading the copied state dict back gives recbench's variables."""
    model, ref, _ = pair("resnet20", seed=5)
    back = recbench.load_torch_weights(
        nnx.eval_shape(lambda: recbench.build_model("resnet20")), ref.state_dict())
    for (path, a), (_, b) in zip(nnx.to_flat_state(nnx.state(model)), nnx.to_flat_state(nnx.state(back)),
                                 strict=True):
        np.testing.assert_array_equal(np.asarray(a[...]), np.asarray(b[...]), err_msg=str(path))


def test_copy_names_what_does_not_fit():
    model = random_model(CASES["blt"], 0)
    wrong = build_reference(model_config("blt", channels=[32, 16]), 10, (32, 32, 1))
    with pytest.raises(ValueError, match="shape mismatches"):
        torch_state_from(model, wrong)
    fewer = build_reference(model_config("blt", topdown=False), 10, (32, 32, 1))
    with pytest.raises(ValueError, match="recbench variables no reference key takes: .*area2_to_area1"):
        torch_state_from(model, fewer)


@pytest.mark.parametrize(("preset", "overrides"), [
    ("liao_poggio_2state", {"steps": 4}),
    ("liao_poggio_3state", {"steps": 4, "width": 0.5}),  # feedback of stride 4: nearest upsampling, then a conv
    ("liao_poggio_4state", {"steps": 4, "width": 0.25, "norm": "bn"}),  # one BN shared by the steps
])
def test_liao_poggio_reference_matches_each_transition_function(preset, overrides):
    """Every transition its own conv-BN-ReLU-conv-BN, the lateral identity kept, the stem computed once, feedback
    that reaches every pixel: the PyTorch reference of the new structure gives the same logits, eval and train."""
    from recbench.bench.cases import Case

    case = Case(preset, preset, (32, 32, 3), 10, BATCH, "")
    model = random_model(case, 11, **overrides)
    ref = build_reference(model_config(preset, **overrides), case.num_classes, case.input_shape)
    copy_into_torch(model, ref)
    x = np.random.default_rng(12).standard_normal((BATCH, *case.input_shape), dtype=np.float32)
    for train in (False, True):
        assert_same(recbench_logits(model, x, train=train), torch_logits(ref, x, train=train))


def test_liao_poggio_reference_refuses_the_stagewise_shared_resnet():
    with pytest.raises(ValueError, match="two or more states"):
        build_reference(model_config("liao_poggio_1state"), 10, (32, 32, 3))

"""Every preset of the model zoo builds, returns [T, B, C], and matches its paper where that is checkable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from recbench.config import group_choices
from recbench.models.accounting import count_params
from recbench.models.contract import Model
from recbench.models.matching import chain_params
from recbench.models.norms import StepNorm
from recbench.models.registry import build_model, model_from_config, natural_input, preset
from recbench.models.resnet import ResNet

IMAGENET_FAMILIES = ("cornet", "imagenet_resnet")


def _shape(cfg):
    return (64, 64, 3) if cfg.family in IMAGENET_FAMILIES else (32, 32, 1)


@pytest.mark.parametrize("name", group_choices("model"))
def test_every_preset_keeps_the_model_contract(name):
    """A readout per step, as many as ``trained_steps`` says, whether called or unrolled (``strategy`` accepted)."""
    cfg = preset(name)
    shape = _shape(cfg)
    seen = {}

    def forward():
        m = model_from_config(cfg, num_classes=7, input_shape=shape)
        seen.update(contract=isinstance(m, Model), trained_steps=m.trained_steps)
        x = jnp.zeros((2, *shape))
        return m(x, train=True), m.unroll(x, strategy="loop")

    out, per_step = jax.eval_shape(forward)
    expected_t = {"cornet_s": 2, "cornet_z": 1, "hgru": 8, "feedback48": 4}.get(name)
    if cfg.family in ("cifar_resnet", "imagenet_resnet"):
        expected_t = 3 if cfg.get("exits") == "stages" else 1  # early exits: a readout after each of 3 stages
    elif cfg.family in ("blt", "matched_control") and not (cfg.lateral or cfg.topdown):
        expected_t = 1  # a feedforward control runs once (recbench.models.engine.GraphSpec.feedforward)
    elif expected_t is None:
        expected_t = cfg.steps
    assert seen["contract"]
    assert seen["trained_steps"] == expected_t == len(per_step)
    assert out.shape == (expected_t, 2, 7) and all(p.shape == (2, 7) for p in per_step)


def _natural(name: str, family: str) -> tuple[tuple[int, int, int], int]:
    """What each paper trained on, written out independently of the configs."""
    if name.endswith("_net") and family == "blt":
        return (128, 128, 3), 565  # rcnn-sat on ecoset
    return {"blt": ((32, 32, 1), 10), "matched_control": ((32, 32, 1), 10),  # Spoerer et al.'s digits
            "cornet": ((224, 224, 3), 1000), "imagenet_resnet": ((224, 224, 3), 1000),
            "cifar_resnet": ((32, 32, 3), 10), "liao_poggio": ((32, 32, 3), 10),  # CIFAR-10
            "feedback_net": ((32, 32, 3), 100),  # Zamir et al.: CIFAR-100
            "hgru": ((150, 150, 1), 2),  # Linsley et al.: Pathfinder
            "dt_net": ((32, 32, 1), 2)}[family]  # deep thinking, on this benchmark's 32 px Pathfinder


@pytest.mark.parametrize("name", group_choices("model"))
def test_natural_input_is_what_the_paper_trained_on(name):
    cfg = preset(name)
    assert natural_input(cfg) == _natural(name, cfg.family)


def test_build_model_defaults_to_the_natural_input_and_overrides_it():
    out = jax.eval_shape(lambda: build_model("resnet18")(jnp.zeros((1, 224, 224, 3))))
    assert out.shape == (1, 1, 1000)
    m = nnx.eval_shape(lambda: build_model("resnet18"))
    assert m.conv1.kernel.shape == (7, 7, 3, 64) and count_params(m) == 11_689_512  # torchvision's
    small = nnx.eval_shape(lambda: build_model("resnet18", num_classes=10, input_shape=(32, 32, 1)))
    assert small.conv1.kernel.shape == (7, 7, 1, 64) and small.fc.kernel.shape == (512, 10)
    net = nnx.eval_shape(lambda: build_model("b_net", natural_classes=1000))  # ImageNet instead of ecoset
    assert net.readout.kernel.shape == (2048, 1000)


@pytest.mark.parametrize("name,params", [
    ("cornet_z", 2_071_656), ("cornet_r", 5_208_936), ("cornet_rt", 5_208_936), ("cornet_s", 53_416_616),
    ("resnet18", 11_689_512), ("resnet50", 25_557_032),
    ("b_net", 8_999_850), ("bl_net", 26_833_002),
])
def test_parameter_counts_match_the_reference_code(name, params):
    # CORnet counts are those of dicarlolab/CORnet's PyTorch modules at 1000 classes, summed by hand
    # (e.g. CORnet-Z: 9472 + 73856 + 295168 + 1180160 + 513000); b_net/bl_net are rcnn-sat's layer sizes: b_net is
    # feedforward with one BN per layer (8,980,256 conv weights at 3 input channels, less 9,408 at 1; 2 * 4256 BN;
    # 2048 * 10 + 10), bl_net has a BN per layer per step.
    cfg = preset(name)
    classes = 1000 if cfg.family in IMAGENET_FAMILIES else 10
    m = nnx.eval_shape(lambda: model_from_config(cfg, num_classes=classes, input_shape=(224, 224, 3)
                                                 if cfg.family in IMAGENET_FAMILIES else (32, 32, 1)))
    assert count_params(m) == params


@pytest.mark.parametrize("name", ["b_k", "b_f", "b_d"])
def test_matched_controls_are_feedforward_and_within_5_percent_of_blt(name):
    target = count_params(build_model("blt"))
    control = build_model(name)
    assert abs(count_params(control) - target) <= 0.05 * target
    assert all(e.kind == "bottom_up" for e in control.spec.edges)
    assert control.trained_steps == 1
    assert count_params(build_model(name, target_params=20_000)) == pytest.approx(20_000, rel=0.05)


@pytest.mark.parametrize("name,params", [("b", 9_962), ("b_k", 37_592), ("b_f", 38_346), ("b_d", 37_802)])
def test_feedforward_controls_are_counted_with_one_row_of_bn(name, params):
    """B and its controls run once, so their BNs have one row (B: 288 + 9216 + 2·2·32 + 330), while BLT (37,994) has
    four; matching counts each as built (before, B was counted with four rows: 10,346, and B-K came out at 37,592
    while matching believed 38,048)."""
    control = build_model(name)
    assert count_params(control) == chain_params(control.spec) == params
    assert {n.mean.shape[0] for _, n in nnx.iter_graph(control) if isinstance(n, StepNorm)} == {1}


def test_matched_controls_match_blt_under_the_same_overrides():
    """``model=b_k model.width=0.5`` is sized against BLT at width 0.5; ``norm=lrn`` against BLT with LRN."""
    for overrides in ({"width": 0.5}, {"norm": "lrn"}):
        blt = count_params(build_model("blt", **overrides))
        assert blt != count_params(build_model("blt"))
        for name in ("b_k", "b_f", "b_d"):
            assert count_params(build_model(name, **overrides)) == pytest.approx(blt, rel=0.05)


@pytest.mark.parametrize("name,objective", [
    ("b", "mean"), ("blt", "mean"), ("b_k", "mean"), ("blt_net", "mean"),  # Spoerer: a loss at every step
    ("feedback48", "mean"),  # Zamir: a loss at every iteration
    ("hgru", "last"),  # Linsley: the last step's output
    ("cornet_z", "last"), ("cornet_r", "last"), ("cornet_rt", "last"), ("cornet_s", "last"),  # IT at the last step
    ("kar_feedback", "last"),
])
def test_presets_say_how_their_paper_trains(name, objective):
    assert preset(name).objective == objective


@pytest.mark.parametrize("name,widths", [
    ("blt", [16, 16]), ("b_net", [48, 64, 96, 128, 256, 512, 1024]), ("cornet_rt", [32, 64, 128, 256]),
    ("cornet_s", [32, 32, 64, 128, 256]), ("hgru", [12]), ("feedback48", [8, 8, 16, 32, 32, 32]),
])
def test_width_multiplies_every_area(name, widths):
    cfg = preset(name)
    shape = (64, 64, 3) if cfg.family in IMAGENET_FAMILIES else (32, 32, 1)
    m = nnx.eval_shape(lambda: build_model(name, width=0.5, input_shape=shape))
    assert [a.channels for a in m.spec.areas] == widths
    assert count_params(m) < count_params(nnx.eval_shape(lambda: build_model(name, input_shape=shape)))


def test_lrn_blt_has_biases_on_its_bottom_up_convs_and_no_norm_parameters():
    """Spoerer et al. 2017's layers: conv (with bias) → ReLU → LRN; no BN rows to count."""
    m = build_model("blt", norm="lrn")
    assert [e.bias for e in m.spec.edges] == [e.kind == "bottom_up" for e in m.spec.edges]
    assert count_params(m) == chain_params(m.spec) == 37_994 - 2 * 4 * 32 * 2 + 2 * 32
    assert m(jnp.zeros((2, 32, 32, 1))).shape == (4, 2, 10)


@pytest.mark.parametrize("readout", ["gap", "gmp", "flatten"])
def test_blt_readouts(readout):
    """gap (the preset's, as rcnn-sat), gmp (Spoerer 2017's re-implementations), flatten (a linear layer on the map)."""
    m = build_model("blt", readout=readout, num_classes=5)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 1))
    assert m(x).shape == (4, 2, 5)
    features = 32 * 16 * 16 if readout == "flatten" else 32
    assert m.readout.kernel.shape == (features, 5)
    top = jax.random.normal(jax.random.key(1), (2, 16, 16, 32))
    pooled = {"gap": top.mean(axis=(1, 2)), "gmp": top.max(axis=(1, 2)), "flatten": top.reshape(2, -1)}[readout]
    np.testing.assert_allclose(m.readout(top), pooled @ m.readout.kernel[...] + m.readout.bias[...], rtol=1e-5,
                               atol=1e-5)


def test_kar_feedback_adds_only_topdown_edges_to_cornet_rt():
    rt, kar = build_model("cornet_rt", input_shape=(64, 64, 3)), build_model("kar_feedback", input_shape=(64, 64, 3))
    extra = set(kar.spec.edges) - set(rt.spec.edges)
    assert {(e.kind, kar.spec.names[e.src], kar.spec.names[e.dst]) for e in extra} == {
        ("topdown", "IT", "V4"), ("topdown", "V4", "V2"), ("topdown", "V2", "V1")}


def _copy_norm(dst, src, dst_row=None, src_row=0):
    for name in ("scale", "bias", "mean", "var"):
        d, s = getattr(dst, name), getattr(src, name)[...]
        value = s[src_row]
        d.set_value(d[...].at[dst_row].set(value) if dst_row is not None else d[...].at[:].set(value))


def test_shared_resnet_equals_one_area_lateral_residual_unroll():
    """Liao & Poggio: a ResNet stage whose n blocks share weights is a 1-area RNN unrolled n steps."""
    n = 4
    rnn = build_model("liao_poggio_1state", steps=n, stages=1, num_classes=5, input_shape=(16, 16, 3), seed=1)
    resnet = ResNet(block="basic", stage_blocks=(n,), widths=(16,), strides=(1,), stem="cifar", stem_width=16,
                    num_classes=5, in_channels=3, shortcut="A", share_weights=True, rngs=nnx.Rngs(2))
    # Random running statistics everywhere, so a mismatched row cannot hide.
    rng = np.random.default_rng(0)
    for _, var in nnx.iter_graph(rnn):
        if isinstance(var, nnx.BatchStat):
            var.set_value(jnp.asarray(rng.uniform(0.5, 1.5, var[...].shape), jnp.float32))
    cell = rnn.areas["S1"].cells[0]
    resnet.conv1.kernel.set_value(rnn.edges["input_to_stem"].conv.kernel[...])
    _copy_norm(resnet.bn1, rnn.areas["stem"].cells[0].norm)
    for blk in resnet.layer1:  # the first block and the shared block carry the same convs
        blk.conv1.kernel.set_value(cell.conv1.kernel[...])
        blk.conv2.kernel.set_value(cell.conv2.kernel[...])
    _copy_norm(resnet.layer1[0].bn1, cell.norm1, src_row=0)
    _copy_norm(resnet.layer1[0].bn2, cell.norm2, src_row=0)
    for t in range(n - 1):  # shared block application t is the RNN's step t + 1
        _copy_norm(resnet.layer1[1].bn1, cell.norm1, dst_row=t, src_row=t + 1)
        _copy_norm(resnet.layer1[1].bn2, cell.norm2, dst_row=t, src_row=t + 1)
    resnet.fc.kernel.set_value(rnn.readout.kernel[...])
    resnet.fc.bias.set_value(rnn.readout.bias[...])
    x = jax.random.normal(jax.random.key(3), (3, 16, 16, 3))
    rnn_logits = rnn(x)
    assert rnn_logits.shape == (n, 3, 5)
    np.testing.assert_allclose(rnn_logits[-1], resnet(x)[0], rtol=1e-4, atol=1e-5)
    assert not np.allclose(rnn_logits[-2], rnn_logits[-1])  # earlier steps are shallower nets


SMALL = [n for n in group_choices("model") if preset(n).family not in IMAGENET_FAMILIES and not n.endswith("_net")
         and n not in ("resnet44", "resnet56", "resnet110")]


# Fewer steps and smaller kernels/widths keep compile times of the unrolled graphs short on 2 CPU cores; the
# structure (areas, edges, cells, schedule) is the preset's own.
# Synchronous nets need a step per area before the readout sees anything.
QUICK = {"hgru": {"kernel": 5, "channels": 8}, "liao_poggio_2state": {"steps": 4}, "liao_poggio_3state": {"steps": 6},
         "liao_poggio_4state": {"channels": [8, 8, 8, 8], "steps": 6},
         "feedback48": {"channels": [8, 8, 8, 8]}}


def _train_step_fn(name, shape, classes=10, quick=False):
    import optax
    from omegaconf import OmegaConf

    from recbench.train.objectives import step_weights
    from recbench.train.step import TrainState, make_train_step

    cfg = preset(name)
    if quick:
        cfg = OmegaConf.merge(cfg, {"steps": 2} if "steps" in cfg and cfg.family != "cornet" else {},
                              QUICK.get(name, {}))
    model = model_from_config(cfg, num_classes=classes, input_shape=shape)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(1e-3)
    n_steps = len(jax.eval_shape(lambda: model.unroll(jnp.zeros((1, *shape)))))
    step = make_train_step(graphdef, tx, step_weights("mean", n_steps), multilabel=False)
    return step, TrainState(params, rest, tx.init(params))


@pytest.mark.parametrize("name", SMALL)
def test_small_presets_train_on_digit_stimuli(name, data_dir):
    """Two real optimizer steps on the embedded stimuli: the loss is finite and most weight arrays move (an
    edge whose source is not reached within the unrolled steps gets no gradient, e.g. feedback at 2 steps)."""
    from recbench.data import procedural

    x, y = procedural.prepare("digit_debris", data_dir=data_dir, progress=False, level="none", num_train=64,
                              num_test=32, seed=0)["train"]
    x = jnp.asarray(x[:8], jnp.float32) / 255.0 - 0.5
    y = jnp.asarray(y[:8])
    step, state = _train_step_fn(name, (32, 32, 1), quick=True)
    before = [np.array(p) for p in jax.tree.leaves(state.params)]
    for _ in range(2):
        state, metrics = step(state, x, y)
    assert np.isfinite(float(metrics["loss"]))
    moved = [not np.allclose(b, a) for b, a in zip(before, jax.tree.leaves(state.params), strict=True)]
    assert sum(moved) > len(moved) / 2


@pytest.mark.parametrize("name", sorted(set(group_choices("model")) - set(SMALL)))
def test_large_presets_train_step_traces(name):
    """The full train step (forward, backward, update) of the big presets, traced without compiling."""
    cfg = preset(name)
    shape = (64, 64, 3) if cfg.family in IMAGENET_FAMILIES else (32, 32, 3)
    step, state = _train_step_fn(name, shape, classes=7)
    out_state, metrics = jax.eval_shape(step, state, jnp.zeros((2, *shape)), jnp.zeros((2,), jnp.int32))
    assert metrics["loss"].shape == () and len(metrics["accuracy_per_step"].shape) == 1
    assert jax.tree.structure(out_state.params) == jax.tree.structure(state.params)

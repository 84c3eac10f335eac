"""CORnet state dicts load into recbench's CORnet presets and give the same last-step logits.

The references below are written for this test with dicarlolab/CORnet's module names (so their state-dict keys
are the public checkpoints' keys) and its forward passes: CORnet-Z conv-ReLU-pool blocks; CORnet-R/RT blocks of
input conv + GroupNorm(32) + ReLU added to the state, then conv + GroupNorm + ReLU, where V1 gets the image at
every step and at t=0 V2/V4/IT get zeros (no input yet) — R then updates the areas in order within a step, RT
reads every area's previous step; CORnet-S's two-conv V1 and bottleneck blocks with per-step BN, a stride-2 first
step and a conv + BN skip at that step. The public R/RT hard-code the t=0 zero maps for 224 px (56/28/14/7);
here they follow the input size.
"""

import math
from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import recbench  # noqa: E402
from recbench.models.torch_weights import renamer_for  # noqa: E402

TOL = 1e-4
CLASSES = 1000


# ---- references -------------------------------------------------------------------------------------------


def decoder(classes: int = CLASSES) -> nn.Sequential:
    return nn.Sequential(OrderedDict(avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                                     linear=nn.Linear(512, classes)))


class BlockZ(nn.Module):
    def __init__(self, c_in, c_out, kernel_size=3, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.conv(x)), 3, 2, 1)


def cornet_z() -> nn.Sequential:
    return nn.Sequential(OrderedDict(V1=BlockZ(3, 64, 7, 2), V2=BlockZ(64, 128), V4=BlockZ(128, 256),
                                     IT=BlockZ(256, 512), decoder=decoder()))


class BlockR(nn.Module):
    """CORblock_R / CORblock_RT (identical): ``inp=None`` is "no input yet" (a zero map of ``out_shape``)."""

    def __init__(self, c_in, c_out, kernel_size=3, stride=1, out_shape=None):
        super().__init__()
        self.out_channels, self.out_shape = c_out, out_shape
        self.conv_input = nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2)
        self.norm_input = nn.GroupNorm(32, c_out)
        self.conv1 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, c_out)

    def forward(self, inp=None, state=None, batch_size=None):
        if inp is None:
            inp = torch.zeros(batch_size, self.out_channels, self.out_shape, self.out_shape)
        else:
            inp = F.relu(self.norm_input(self.conv_input(inp)))
        x = F.relu(self.norm1(self.conv1(inp + (0 if state is None else state))))
        return x, x


class CORnetR(nn.Module):
    """CORnet-R (``biological=False``: within a step V2 reads this step's V1) or CORnet-RT (every area reads
    the previous step)."""

    def __init__(self, times=5, size=224, biological=False):
        super().__init__()
        self.times, self.biological = times, biological
        side = [math.ceil(size / 4)]
        for _ in range(3):
            side.append(math.ceil(side[-1] / 2))
        self.V1 = BlockR(3, 64, 7, 4, side[0])
        self.V2 = BlockR(64, 128, stride=2, out_shape=side[1])
        self.V4 = BlockR(128, 256, stride=2, out_shape=side[2])
        self.IT = BlockR(256, 512, stride=2, out_shape=side[3])
        self.decoder = decoder()

    def forward(self, img):
        blocks = ("V1", "V2", "V4", "IT")
        out, state = {}, {}
        for b in blocks:  # t = 0: the image reaches V1 only
            out[b], state[b] = getattr(self, b)(img if b == "V1" else None, batch_size=len(img))
        for _ in range(1, self.times):  # V1 gets the image again; R reads this step's area below, RT the last
            src = {"inp": img, **out} if self.biological else None
            for below, b in zip(("inp",) + blocks[:-1], blocks, strict=True):
                inp = (src or {"inp": img, **out})[below]
                out[b], state[b] = getattr(self, b)(inp, state[b])
        return self.decoder(out["IT"])


class BlockS(nn.Module):
    scale = 4

    def __init__(self, c_in, c_out, times=1):
        super().__init__()
        wide = c_out * self.scale
        self.times = times
        self.conv_input = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.skip = nn.Conv2d(c_out, c_out, 1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_out, wide, 1, bias=False)
        self.conv2 = nn.Conv2d(wide, wide, 3, stride=2, padding=1, bias=False)
        self.conv3 = nn.Conv2d(wide, c_out, 1, bias=False)
        for t in range(times):
            for k, c in ((1, wide), (2, wide), (3, c_out)):
                setattr(self, f"norm{k}_{t}", nn.BatchNorm2d(c))

    def forward(self, inp):
        x = self.conv_input(inp)
        for t in range(self.times):
            skip = self.norm_skip(self.skip(x)) if t == 0 else x
            x = F.relu(getattr(self, f"norm1_{t}")(self.conv1(x)))
            x = F.conv2d(x, self.conv2.weight, stride=2 if t == 0 else 1, padding=1)
            x = F.relu(getattr(self, f"norm2_{t}")(x))
            x = F.relu(getattr(self, f"norm3_{t}")(self.conv3(x)) + skip)
        return x


def cornet_s() -> nn.Sequential:
    v1 = nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 64, 7, 2, 3, bias=False), norm1=nn.BatchNorm2d(64), nonlin1=nn.ReLU(),
        pool=nn.MaxPool2d(3, 2, 1), conv2=nn.Conv2d(64, 64, 3, 1, 1, bias=False), norm2=nn.BatchNorm2d(64),
        nonlin2=nn.ReLU()))
    return nn.Sequential(OrderedDict(V1=v1, V2=BlockS(64, 128, 2), V4=BlockS(128, 256, 4), IT=BlockS(256, 512, 2),
                                     decoder=decoder()))


# ---- helpers ---------------------------------------------------------------------------------------------


def images(b: int, hw: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((b, hw, hw, 3), dtype=np.float32)


def to_torch(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def randomised(net: nn.Module, x: np.ndarray, seed: int) -> nn.Module:
    """Random biases and norm affines; BN running statistics near those of ``x`` (one train pass), with a small
    gain on each block's last BN so activations stay O(1); eval mode."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    with torch.no_grad():
        if bns:
            net.train()
            net(to_torch(x))
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                c = m.weight.shape[0]
                m.weight.copy_(0.8 + 0.4 * torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean += 0.1 * torch.randn(c, generator=g) * m.running_var.sqrt()
                m.running_var *= 0.8 + 0.4 * torch.rand(c, generator=g)
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape[0], generator=g))
        for name, m in net.named_modules():
            if name.split(".")[-1].startswith("norm3_"):
                m.weight.mul_(0.3)
    return net.eval()


def abstract(name: str, hw: int) -> nnx.Module:
    """No random init: the load sets every variable."""
    return nnx.eval_shape(lambda: recbench.build_model(name, num_classes=CLASSES, input_shape=(hw, hw, 3)))


def compare(name: str, net: nn.Module, hw: int, steps: int, seed: int, prefix: str = "") -> float:
    net = randomised(net, images(2, hw, seed), seed)
    x = images(2, hw, seed + 1)
    with torch.no_grad():
        ref = net(to_torch(x)).numpy()
    model = recbench.load_torch_weights(abstract(name, hw), {prefix + k: v for k, v in net.state_dict().items()})
    out = np.asarray(model(x))
    assert out.shape == (steps, 2, CLASSES)
    assert np.abs(ref).max() > 0.1  # non-trivial logits
    return float(np.abs(out[-1] - ref).max())


# ---- logits match ------------------------------------------------------------------------------------------


def test_cornet_z_matches_reference():
    torch.manual_seed(0)
    assert compare("cornet_z", cornet_z(), 60, 1, seed=10) < TOL


def test_cornet_rt_matches_reference():
    torch.manual_seed(0)
    # 60 px: not a multiple of the 32 px total stride, so the ceil-rounded sizes (15, 8, 4, 2) are checked too
    assert compare("cornet_rt", CORnetR(5, 60, biological=True), 60, 5, seed=20) < TOL


def test_cornet_r_matches_reference():
    torch.manual_seed(0)
    assert compare("cornet_r", CORnetR(5, 60), 60, 5, seed=30) < TOL


def test_cornet_s_matches_reference_dataparallel_keys():
    torch.manual_seed(0)
    assert compare("cornet_s", cornet_s(), 72, 2, seed=40, prefix="module.") < TOL


# ---- names --------------------------------------------------------------------------------------------------


def test_renamer_maps_public_names():
    s = renamer_for(abstract("cornet_s", 64))
    assert s("module.V1.conv1.weight") == "edges.input_to_V1_0.conv.weight"
    assert s("V1.norm1.running_var") == "areas.V1_0.cells.0.norm.running_var"
    assert s("V1.conv2.weight") == "edges.V1_0_to_V1.conv.weight"
    assert s("V1.norm2.bias") == "areas.V1.cells.0.norm.bias"
    assert s("V2.conv_input.weight") == "edges.V1_to_V2.conv.weight"
    assert s("V4.norm_skip.running_mean") == "areas.V4.cells.0.norm_skip.running_mean"
    assert s("IT.conv3.weight") == "areas.IT.cells.0.conv3.weight"
    assert s("V4.norm2_3.weight") == ("areas.V4.cells.0.norm2.weight", 3)
    assert s("decoder.linear.weight") == "readout.weight"
    r = renamer_for(abstract("cornet_r", 64))
    assert r("V1.conv_input.weight") == "edges.input_to_V1.conv.weight"
    assert r("V2.norm_input.weight") == "edges.V1_to_V2.norm.weight"
    assert r("V2.conv1.weight") == "areas.V2.cells.0.conv.weight"
    assert r("IT.norm1.bias") == "areas.IT.cells.0.norm.bias"
    z = renamer_for(abstract("cornet_z", 64))
    assert z("V4.conv.bias") == "edges.V2_to_V4.conv.bias"
    assert z("edges.V2_to_V4.conv.bias") == "edges.V2_to_V4.conv.bias"  # recbench's own layout passes


def test_wrong_variant_and_non_cornet_graph_fail_clearly():
    torch.manual_seed(0)
    sd = cornet_z().state_dict()
    with pytest.raises(ValueError, match=r"model variables no key sets: .*areas\.V1\.cells\[0\]\.conv\.kernel"):
        recbench.load_torch_weights(abstract("cornet_r", 64), sd)
    with pytest.raises(ValueError, match="only known for CORnet graphs"):
        recbench.load_torch_weights(abstract("blt", 32), sd)

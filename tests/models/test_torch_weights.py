"""load_torch_weights: PyTorch references with torchvision's / akamaster's module names give the same logits."""

import pytest

torch = pytest.importorskip("torch")

import subprocess  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import recbench  # noqa: E402
from recbench.models import torch_weights  # noqa: E402
from recbench.models.resnet import ResNet, cifar_resnet, imagenet_resnet, resnet_renamer  # noqa: E402

TOL = 1e-4


# ---- torchvision's ResNet, trimmed to its structure and names ------------------------------------------


class TVBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class TVBottleneck(nn.Module):
    """torchvision's v1.5 bottleneck: the stride sits on the 3x3 conv."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class TVResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---- akamaster/pytorch_resnet_cifar10 (option-A shortcuts) ----------------------------------------------


class LambdaLayer(nn.Module):
    def __init__(self, lambd):
        super().__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class AkaBasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            pad = planes // 4
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class AkaResNet(nn.Module):
    def __init__(self, n, num_classes=10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(AkaBasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


# ---- helpers ---------------------------------------------------------------------------------------------


def randomised(net: nn.Module, x: np.ndarray, seed: int = 0) -> nn.Module:
    """Random BN affine and running statistics (near the true ones, and a small gain on each block's last
    norm, so activations stay O(1) and an absolute 1e-4 on float32 logits is both attainable and
    meaningful), random linear bias; eval mode."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass sets the batch statistics
    net.train()
    with torch.no_grad():
        net(to_torch(x))
        for m in bns:
            c = m.num_features
            # gentle: ResNet-50's 53 norms compound any gain (U(0.5, 1.5) here gives logits ~5e3)
            m.running_mean += 0.1 * torch.randn(c, generator=g) * m.running_var.sqrt()
            m.running_var *= 0.8 + 0.4 * torch.rand(c, generator=g)
            m.weight.copy_(0.8 + 0.4 * torch.rand(c, generator=g))
            m.bias.copy_(0.1 * torch.randn(c, generator=g))
        for m in net.modules():  # trained ResNets have small gammas on a block's last norm (Goyal et al.)
            last = getattr(m, "bn3", None) or getattr(m, "bn2", None)
            if last is not None:
                last.weight.mul_(0.3)
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.bias.copy_(0.1 * torch.randn(m.out_features, generator=g))
    return net.eval()


def to_torch(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def torch_logits(net: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(to_torch(x)).numpy()


def rngs() -> nnx.Rngs:
    return nnx.Rngs(jax.random.key(0, impl="rbg"))


def abstract(build, *args, **kw) -> nnx.Module:
    """No random init: every variable is overwritten by the load."""
    return nnx.eval_shape(lambda: build(*args, rngs=rngs(), **kw))


def images(b: int, hw: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((b, hw, hw, 3), dtype=np.float32)


def max_diff(model: nnx.Module, x: np.ndarray, ref: np.ndarray) -> float:
    out = np.asarray(model(x))
    assert out.shape == (1, *ref.shape)
    assert np.abs(ref).max() > 0.1  # non-trivial logits
    return float(np.abs(out[0] - ref).max())


@pytest.fixture(scope="module")
def cifar20():
    """akamaster ResNet-20, its state dict, an input batch and the reference logits."""
    torch.manual_seed(0)
    x = images(2, 32, 1)
    net = randomised(AkaResNet(3), x, seed=1)
    x = images(2, 32, 2)
    return net.state_dict(), x, torch_logits(net, x)


# ---- logits match ----------------------------------------------------------------------------------------


def test_resnet18_matches_torchvision_structure():
    torch.manual_seed(0)
    net = TVResNet(TVBasicBlock, [2, 2, 2, 2])
    net = randomised(net, images(2, 64, 3), seed=3)
    x = images(2, 64, 4)
    model = recbench.load_torch_weights(imagenet_resnet(18, rngs=rngs()), net.state_dict())
    assert max_diff(model, x, torch_logits(net, x)) < TOL


def test_resnet50_bottleneck_matches_torchvision_structure():
    torch.manual_seed(0)
    net = TVResNet(TVBottleneck, [3, 4, 6, 3])
    net = randomised(net, images(2, 64, 5), seed=5)
    x = images(2, 64, 6)
    model = recbench.load_torch_weights(abstract(imagenet_resnet, 50), net.state_dict())
    assert max_diff(model, x, torch_logits(net, x)) < TOL


def test_cifar_resnet20_option_a_matches_akamaster(cifar20):
    sd, x, ref = cifar20
    assert not any("shortcut" in k for k in sd)  # option A: no parameters on the shortcut
    model = recbench.load_torch_weights(cifar_resnet(20, rngs=rngs()), sd)
    assert max_diff(model, x, ref) < TOL


# ---- sources -------------------------------------------------------------------------------------------


def test_load_from_pth_path(cifar20, tmp_path):
    sd, x, ref = cifar20
    path = tmp_path / "resnet20.pth"
    torch.save(sd, path)
    model = recbench.load_torch_weights(abstract(cifar_resnet, 20), path)
    assert max_diff(model, x, ref) < TOL
    model = recbench.load_torch_weights(abstract(cifar_resnet, 20), str(path))
    assert max_diff(model, x, ref) < TOL


def test_load_wrapped_dataparallel_checkpoint_of_numpy_arrays(cifar20):
    sd, x, ref = cifar20
    ckpt = {"epoch": 182, "best_prec1": 91.7, "state_dict": {f"module.{k}": v.numpy() for k, v in sd.items()}}
    model = recbench.load_torch_weights(abstract(cifar_resnet, 20), ckpt)
    assert max_diff(model, x, ref) < TOL


def test_numpy_state_dict_needs_no_torch(cifar20, tmp_path):
    sd, x, ref = cifar20
    np.savez(tmp_path / "sd.npz", **{k: v.numpy() for k, v in sd.items()})
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "ref.npy", ref)
    script = f"""
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import jax, numpy as np
from flax import nnx
import recbench
from recbench.models.resnet import cifar_resnet
d = "{tmp_path}"
sd = dict(np.load(d + "/sd.npz"))
model = nnx.eval_shape(lambda: cifar_resnet(20, rngs=nnx.Rngs(jax.random.key(0, impl="rbg"))))
recbench.load_torch_weights(model, sd)
diff = np.abs(np.asarray(model(np.load(d + "/x.npy")))[0] - np.load(d + "/ref.npy")).max()
assert diff < {TOL}, diff
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_bn_broadcasts_into_every_row_and_a_renamer_can_fill_rows(cifar20, monkeypatch):
    sd, _, _ = cifar20
    # ResNet-20 blocks 0 and 1 of each stage load into a shared-weight net (layer{s}[1] has 2 BN rows).
    shared = {k: v for k, v in sd.items() if ".2." not in k}
    model = recbench.load_torch_weights(abstract(cifar_resnet, 20, share_weights=True), shared)
    var = np.asarray(model.layer2[1].bn1.var[...])
    assert var.shape == (2, 32)
    np.testing.assert_array_equal(var[0], sd["layer2.1.bn1.running_var"].numpy())
    np.testing.assert_array_equal(var[1], sd["layer2.1.bn1.running_var"].numpy())

    # CORnet-style per-step names: `bn1_0`, `bn1_1` fill rows 0 and 1 of `bn1`.
    per_step = {k: v for k, v in shared.items() if not (k.startswith("layer") and k.split(".")[1] == "1")}
    for k, v in shared.items():
        if k.startswith("layer") and k.split(".")[1] == "1":
            if ".bn" in k:
                for t in (0, 1):
                    name, leaf = k.rsplit(".", 1)
                    per_step[f"{name}_{t}.{leaf}"] = v + t
            else:
                per_step[k] = v

    def renamer(key):
        name, leaf = key.rsplit(".", 1)
        base, _, step = name.rpartition("_")
        return (f"{base}.{leaf}", int(step)) if step.isdigit() and base else resnet_renamer(key)

    monkeypatch.setitem(torch_weights._RENAMERS, ResNet, renamer)
    model = recbench.load_torch_weights(abstract(cifar_resnet, 20, share_weights=True), per_step)
    var = np.asarray(model.layer2[1].bn1.var[...])
    np.testing.assert_allclose(var[1] - var[0], np.ones(32, np.float32), rtol=1e-6)


# ---- mismatches fail loudly and write nothing -------------------------------------------------------------


def _expect_error(sd, *fragments):
    model = cifar_resnet(20, rngs=rngs())
    before = np.asarray(model.fc.bias[...]).copy()
    with pytest.raises(ValueError) as err:
        recbench.load_torch_weights(model, sd)
    msg = str(err.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg
    np.testing.assert_array_equal(np.asarray(model.fc.bias[...]), before)  # no partial load
    return msg


def test_missing_key_raises(cifar20):
    sd = dict(cifar20[0])
    del sd["layer3.2.bn2.running_var"]
    _expect_error(sd, "1 model variables no key sets", "layer3[2].bn2.var")


def test_extra_key_raises(cifar20):
    sd = dict(cifar20[0])
    sd["layer4.0.conv1.weight"] = torch.zeros(64, 64, 3, 3)
    sd["layer1.0.conv1.bias"] = torch.zeros(16)  # a module that exists, a variable that does not
    _expect_error(sd, "2 keys with no target", "layer4.0.conv1.weight", "layer1.0.conv1.bias")


def test_wrong_shape_raises(cifar20):
    sd = dict(cifar20[0])
    sd["linear.weight"] = sd["linear.weight"][:5]
    msg = _expect_error(sd, "1 shape mismatches", "linear.weight (5, 64) -> fc.kernel (64, 10)")
    assert "no key sets" not in msg  # reported once, as a mismatch

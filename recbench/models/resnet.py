"""Deep feedforward baselines: CIFAR ResNets (He et al. 2016 §4.2) and torchvision's ImageNet ResNets.

These live outside the areas/steps engine so that they match the references exactly (parameter counts,
padding, stride placement, weight names); the shared-weight variant (Liao & Poggio 2016) ties them to the
engine's view of a stage as one area stepped n times (``share_norm`` shares one BN over the steps instead of their
time-specific BN). ``exits="stages"`` is Zamir et al. 2017's feedforward early-exit baseline: a readout after every
stage, so a ResNet reports accuracy, FLOPs and effective depth per readout as the recurrent nets do per step.

Weight names map mechanically onto PyTorch state dicts (``.`` ↔ nnx path, list index ↔ ``[i]``):

==============================================  ===================================================
torchvision / akamaster key                     recbench path (array transform)
==============================================  ===================================================
``conv1.weight`` [O,I,kh,kw]                     ``conv1.kernel`` [kh,kw,I,O] (``transpose(2,3,1,0)``)
``bn1.weight`` / ``bias`` [C]                    ``bn1.scale`` / ``bias`` [1,C] (row 0)
``bn1.running_mean`` / ``running_var`` [C]       ``bn1.mean`` / ``var`` [1,C]; drop ``num_batches_tracked``
``layer{s}.{i}.conv{j}`` / ``bn{j}``             ``layer{s}[i].conv{j}`` / ``bn{j}``
``layer{s}.{i}.downsample.0`` / ``.1``           ``layer{s}[i].downsample[0]`` / ``[1]``
  (akamaster option B: ``shortcut.0`` / ``.1``)
``fc.weight`` [C,F] / ``fc.bias`` (akamaster:   ``fc.kernel`` [F,C] (transpose) / ``fc.bias``
  ``linear.*``)
==============================================  ===================================================

Note PyTorch's BN ``momentum=0.1`` is ``StepNorm(momentum=0.9)`` (the default here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from recbench.config import ConfigError, check_int, choice
from recbench.models.contract import FamilyConfig, Shape, widen
from recbench.models.norms import NormContext, StepNorm
from recbench.models.resnet_blocks import BLOCKS, SHORTCUTS, conv
from recbench.models.torch_weights import Renamed, register_torch_renamer

#: Norm kinds a caller picks; ``"bn"`` becomes time-specific ``"bn_step"`` in weight-shared blocks (unless
#: ``share_norm``: one BN shared by the applications of the shared block, the ablation of time-specific BN).
RESNET_NORMS = ("bn", "group", "none")
#: Where a ResNet reads out: after its last stage only, or after every stage (Zamir et al.'s early exits).
RESNET_EXITS = ("last", "stages")

#: torchvision's depths: (block, blocks per stage).
IMAGENET_CONFIGS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

# Parameter counts (10 classes) measured in tests/models/test_resnet.py. With option-A shortcuts
# (the paper's CIFAR models, akamaster/pytorch_resnet_cifar10): ResNet-20 269,722; 32 464,154;
# 44 658,586; 56 853,018; 110 1,727,962. The often-quoted 272,474 / 466,906 / 661,338 / 855,770 /
# 1,730,714 are 2,752 higher at every depth: that is exactly the two option-B projections
# (16→32: 512 + 64 BN; 32→64: 2,048 + 128 BN), i.e. those counts belong to ``shortcut="B"``.


class ResNet(nnx.Module):
    """A ResNet whose stages are lists of residual blocks; ``stem`` picks the CIFAR or ImageNet entry.

    With ``share_weights=True`` each stage holds two blocks: ``layer{s}[0]`` changes resolution/width and
    ``layer{s}[1]`` is applied ``blocks - 1`` times with one set of conv weights and time-specific BN
    (row k on its k-th application; ``share_norm=True``: one BN for every application), so depth can change at
    call time without new weights.

    With ``exits="stages"`` the net reads out after every stage (global average pool, then a linear layer of its
    own, ``exit_fcs[s]``; the last stage's is ``fc``): T = stages readouts, the k-th of which costs stages 1..k
    (Zamir et al. 2017's feedforward early-exit baseline). ``steps`` then counts the stages to run.
    """

    def __init__(
        self,
        *,
        block: str,
        stage_blocks: Sequence[int],
        widths: Sequence[int],
        strides: Sequence[int],
        stem: str,
        stem_width: int,
        num_classes: int,
        in_channels: int = 3,
        shortcut: str = "B",
        share_weights: bool = False,
        share_norm: bool = False,
        norm: str = "bn",
        zero_init_residual: bool = False,
        exits: str = "last",
        rngs: nnx.Rngs,
    ):
        if norm not in RESNET_NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(RESNET_NORMS)}")
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; choose one of {', '.join(BLOCKS)}")
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"unknown stem {stem!r}; choose 'cifar' or 'imagenet'")
        if not len(stage_blocks) == len(widths) == len(strides):
            raise ValueError("stage_blocks, widths and strides need one entry per stage")
        if share_weights and min(stage_blocks) < 2:
            raise ValueError(f"share_weights needs >= 2 blocks in every stage, got {tuple(stage_blocks)}")
        if exits not in RESNET_EXITS:
            raise ValueError(f"unknown exits {exits!r}; choose one of {', '.join(RESNET_EXITS)}")
        if exits == "stages" and share_weights:
            raise ValueError("exits='stages' and share_weights both take steps (stages to run / shared applications); "
                             "choose one")
        block_cls = BLOCKS[block]
        self.stem = stem
        self.share_weights = share_weights
        self.early_exits = exits == "stages"
        # one readout (a feedforward net has T = 1), or one per stage with early exits
        self.trained_steps = len(stage_blocks) if self.early_exits else 1
        #: applications of the shared block per stage that were trained (rows of its time-specific BN)
        self.shared_steps = tuple(n - 1 for n in stage_blocks) if share_weights else ()

        if stem == "cifar":  # 3x3/1 conv: CIFAR images are too small to downsample at entry
            self.conv1 = conv(in_channels, stem_width, 3, rngs=rngs)
        else:  # 7x7/2 conv + 3x3/2 max-pool: 224 px → 56 px before the first stage
            self.conv1 = conv(in_channels, stem_width, 7, 2, rngs=rngs)
        self.bn1 = StepNorm(stem_width, kind=norm)

        kw = dict(shortcut=shortcut, zero_init_residual=zero_init_residual, rngs=rngs)
        channels_in = stem_width
        for s, (n, width, stride) in enumerate(zip(stage_blocks, widths, strides, strict=True), start=1):
            out = width * block_cls.expansion
            blocks = [block_cls(channels_in, width, stride, norm=norm, **kw)]
            if share_weights:
                shared_norm = "bn_step" if norm == "bn" and not share_norm else norm
                blocks.append(block_cls(out, width, 1, norm=shared_norm, steps=n - 1, **kw))
            else:
                blocks += [block_cls(out, width, 1, norm=norm, **kw) for _ in range(n - 1)]
            setattr(self, f"layer{s}", nnx.List(blocks))
            channels_in = out
        self.num_stages = len(stage_blocks)
        if self.early_exits:  # a head per stage but the last, whose head is ``fc`` (torchvision's name)
            self.exit_fcs = nnx.List([nnx.Linear(w * block_cls.expansion, num_classes, rngs=rngs)
                                      for w in widths[:-1]])
        self.fc = nnx.Linear(channels_in, num_classes, rngs=rngs)

    def _stages_to_run(self, steps: int | Sequence[int] | None) -> int:
        if not self.early_exits or steps is None:
            return self.num_stages
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= self.num_stages:
            raise ValueError(f"an early-exit ResNet reads out after each of its {self.num_stages} stages; steps must "
                             f"be an int in 1..{self.num_stages}, got {steps!r}")
        return steps

    def _shared_runs(self, steps: int | Sequence[int] | None) -> tuple[int, ...]:
        if not self.share_weights or steps is None:
            return self.shared_steps
        runs = (steps,) * self.num_stages if isinstance(steps, int) else tuple(steps)
        if len(runs) != self.num_stages or any(not isinstance(r, int) or r < 0 for r in runs):
            raise ValueError(f"steps must be an int >= 0 or {self.num_stages} of them, got {steps!r}")
        return runs

    def unroll(
        self,
        x: jax.Array,
        *,
        steps: int | Sequence[int] | None = None,
        ablate: Sequence[str] = (),
        train: bool = False,
        strategy: str | None = None,
    ) -> list[jax.Array]:
        """Per-step logits (one step here; one per stage with early exits), from NHWC images.

        With ``share_weights``, ``steps`` is how many times each stage applies its shared block (an int for every
        stage, or one per stage; default the trained ``stage_blocks - 1``); beyond the trained count the shared
        block reuses its last BN row. With early exits it is how many stages run (and read out), default all.
        Otherwise it is ignored. ``ablate`` and ``strategy`` are the model
        contract's (:class:`recbench.models.contract.Model`); a ResNet has no lateral or top-down connections
        to silence and no rolled loop (its blocks run as Python code).
        """
        del ablate, strategy
        ctx = NormContext(train)
        h = jax.nn.relu(self.bn1(self.conv1(x), 0, ctx))
        if self.stem == "imagenet":
            h = nnx.max_pool(h, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        runs = self._shared_runs(steps)
        logits = []
        last = self.num_stages - 1
        for s in range(self._stages_to_run(steps)):
            layer = getattr(self, f"layer{s + 1}")
            if self.share_weights:
                h = layer[0](h, 0, ctx)
                for t in range(runs[s]):
                    h = layer[1](h, t, ctx)
            else:
                for blk in layer:
                    h = blk(h, 0, ctx)
            if self.early_exits or s == last:  # an exit after this stage (the last stage's head is fc)
                logits.append((self.fc if s == last else self.exit_fcs[s])(jnp.mean(h, axis=(1, 2))))
        ctx.commit()
        return logits

    def __call__(
        self,
        x: jax.Array,
        *,
        steps: int | Sequence[int] | None = None,
        ablate: Sequence[str] = (),
        train: bool = False,
    ) -> jax.Array:
        """Logits ``[T, B, num_classes]`` (T = 1, or the stages with early exits); see :meth:`unroll`."""
        return jnp.stack(self.unroll(x, steps=steps, ablate=ablate, train=train))


def cifar_resnet(
    depth: int = 20,
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    width: int = 16,
    share_weights: bool = False,
    share_norm: bool = False,
    norm: str = "bn",
    shortcut: str = "A",
    zero_init_residual: bool = False,
    exits: str = "last",
    rngs: nnx.Rngs,
) -> ResNet:
    """He et al.'s CIFAR ResNet: depth 6n+2, three stages of n BasicBlocks at width, 2·width, 4·width.

    Option-A shortcuts by default, as in the paper's CIFAR experiments; ``shortcut="B"`` gives the
    projection variant (+2,752 parameters at width 16, see the counts above). ``exits="stages"`` reads out after
    every stage (three readouts); ``share_norm`` shares one BN over the applications of a weight-shared block.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, n >= 1 (20, 32, 44, 56, 110, 1202), got {depth}")
    n = (depth - 2) // 6
    return ResNet(
        block="basic",
        stage_blocks=(n, n, n),
        widths=(width, 2 * width, 4 * width),
        strides=(1, 2, 2),
        stem="cifar",
        stem_width=width,
        num_classes=num_classes,
        in_channels=in_channels,
        shortcut=shortcut,
        share_weights=share_weights,
        share_norm=share_norm,
        norm=norm,
        zero_init_residual=zero_init_residual,
        exits=exits,
        rngs=rngs,
    )


def imagenet_resnet(
    depth: int = 18,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    width: int = 64,
    share_weights: bool = False,
    share_norm: bool = False,
    norm: str = "bn",
    zero_init_residual: bool = False,
    rngs: nnx.Rngs,
) -> ResNet:
    """torchvision's ``resnet{18,34,50,101,152}`` (v1.5 bottlenecks, projection shortcuts); ``width`` is the stem's
    and the first stage's (then 2x, 4x, 8x; torchvision's 64 by default, where the counts are torchvision's)."""
    if depth not in IMAGENET_CONFIGS:
        raise ValueError(f"ImageNet ResNet depth must be one of {sorted(IMAGENET_CONFIGS)}, got {depth}")
    block, stage_blocks = IMAGENET_CONFIGS[depth]
    return ResNet(
        block=block,
        stage_blocks=stage_blocks,
        widths=(width, 2 * width, 4 * width, 8 * width),
        strides=(1, 2, 2, 2),
        stem="imagenet",
        stem_width=width,
        num_classes=num_classes,
        in_channels=in_channels,
        shortcut="B",
        share_weights=share_weights,
        share_norm=share_norm,
        norm=norm,
        zero_init_residual=zero_init_residual,
        rngs=rngs,
    )


def resnet_renamer(key: str) -> Renamed:
    """torchvision's names are recbench's; akamaster's CIFAR ResNets call ``fc`` ``linear`` and the option-B
    projection ``shortcut``."""
    if key.startswith("linear."):
        key = "fc." + key[len("linear.") :]
    return key.replace(".shortcut.", ".downsample.")


register_torch_renamer(ResNet, resnet_renamer)


# ---- the model registry's two ResNet families ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CifarResNetConfig(FamilyConfig):
    natural_input: Shape = (32, 32, 3)  # CIFAR-10, He et al. §4.2
    natural_classes: int = 10
    objective: str = "last"  # one readout (exits=stages presets train every exit: mean)
    depth: int  # 6n+2: 20, 32, 44, 56, 110, ...
    width: float = 1.0  # channel multiplier, as every family's: the first stage has round(16 x width) (then 2x, 4x)
    norm: str = "bn"  # bn | group | none (bn becomes per-step BN in weight-shared blocks, unless share_norm)
    share_weights: bool = False  # Liao & Poggio's shared ResNet: one block's convs repeated through a stage
    share_norm: bool = False  # with share_weights: false = time-specific BN per application, true = one shared BN
    shortcut: str = "A"  # A: zero-padded identity (the paper) | B: 1x1 conv projections
    exits: str = "last"  # last (one readout) | stages (a GAP-linear readout after every stage: Zamir's early exits)


@dataclass(frozen=True, kw_only=True)
class ImageNetResNetConfig(FamilyConfig):
    natural_input: Shape = (224, 224, 3)  # ImageNet, as torchvision's weights were trained
    natural_classes: int = 1000
    objective: str = "last"  # one readout
    depth: int  # 18 | 34 | 50 | 101 | 152
    width: float = 1.0  # channel multiplier: the stem and first stage have round(64 x width); 1 = torchvision
    norm: str = "bn"  # bn | group | none
    share_weights: bool = False
    share_norm: bool = False  # with share_weights: one BN for the shared block's applications (default per-step)


def check_cifar_resnet(c: CifarResNetConfig, num_classes: int, input_shape: Shape) -> int:
    """One-line :class:`ConfigError` for a bad config; the readouts the net gives (one per stage with exits)."""
    depth = check_int("model.depth", c.depth)
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"model.depth={depth} is not 6n+2 with n >= 1; use 20, 32, 44, 56, 110, ...")
    if c.share_weights and depth < 14:
        raise ConfigError(f"model.share_weights needs 2 or more blocks per stage (depth >= 14), got depth={depth}")
    choice(c.norm, "model.norm", RESNET_NORMS)
    choice(c.shortcut, "model.shortcut", SHORTCUTS)
    choice(c.exits, "model.exits", RESNET_EXITS)
    if c.exits == "stages" and c.share_weights:
        raise ConfigError("model.exits=stages and model.share_weights both take steps; choose one")
    return 3 if c.exits == "stages" else 1  # three stages, with exits a readout after each


def build_cifar_resnet(c: CifarResNetConfig, num_classes: int, input_shape: Shape,
                       rngs: nnx.Rngs) -> ResNet:
    check_cifar_resnet(c, num_classes, input_shape)
    return cifar_resnet(c.depth, num_classes=num_classes, in_channels=input_shape[-1],
                        width=widen(16, c.width), share_weights=c.share_weights, share_norm=c.share_norm, norm=c.norm,
                        shortcut=c.shortcut,
                        exits=c.exits, rngs=rngs)


def check_imagenet_resnet(c: ImageNetResNetConfig, num_classes: int, input_shape: Shape) -> int:
    if c.depth not in IMAGENET_CONFIGS:
        raise ConfigError(f"model.depth={c.depth!r} is not valid; choose one of: "
                          f"{', '.join(map(str, IMAGENET_CONFIGS))}")
    choice(c.norm, "model.norm", RESNET_NORMS)
    return 1


def build_imagenet_resnet(c: ImageNetResNetConfig, num_classes: int, input_shape: Shape,
                          rngs: nnx.Rngs) -> ResNet:
    check_imagenet_resnet(c, num_classes, input_shape)
    return imagenet_resnet(c.depth, num_classes=num_classes, in_channels=input_shape[-1],
                           width=widen(64, c.width), share_weights=c.share_weights, share_norm=c.share_norm,
                           norm=c.norm, rngs=rngs)

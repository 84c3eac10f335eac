"""Model configs: one source of defaults (the family dataclasses), checks that build nothing, one-line errors."""

import dataclasses
from importlib import resources

import pytest
from flax import nnx
from omegaconf import OmegaConf

from recbench.config import ConfigError, compose_train, group_choices, load_option
from recbench.models.accounting import count_params
from recbench.models.engine import AreaGraph
from recbench.models.matching import chain_params
from recbench.models.registry import FAMILIES, family_defaults, graph_spec, natural_input, preset, validate_model_config
from recbench.models.resnet import ResNet

MODEL_DIR = resources.files("recbench.configs") / "model"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_defaults_come_from_the_dataclass_alone(family):
    """``model/family/<family>`` is registered in code from the dataclass; no YAML copy of it exists."""
    assert not (MODEL_DIR / "family").is_dir()
    registered = OmegaConf.to_container(load_option("model", f"family/{family}"))
    assert registered == {**family_defaults(family), "name": f"family/{family}"}  # a preset's name: its path
    fields = {f.name: f for f in dataclasses.fields(FAMILIES[family].schema)}
    assert set(family_defaults(family)) == {"family"} | {k for k, f in fields.items()
                                                         if f.default is not dataclasses.MISSING}


@pytest.mark.parametrize("name", ["b", "blt", "cornet_s", "resnet20", "liao_poggio_4state"])
def test_hydra_and_load_option_compose_a_preset_alike(name):
    assert OmegaConf.to_container(compose_train([f"model={name}"]).model) == OmegaConf.to_container(preset(name))


@pytest.mark.parametrize("name", group_choices("model"))
def test_every_preset_carries_every_key_of_its_family(name):
    """So that ``model.<key>=value`` works on the command line for every key (Hydra refuses absent keys)."""
    cfg = preset(name)
    assert set(cfg) == {f.name for f in dataclasses.fields(FAMILIES[cfg.family].schema)}


@pytest.mark.parametrize("name", group_choices("model"))
def test_a_preset_states_only_what_differs_from_what_it_inherits(name):
    raw = OmegaConf.to_container(OmegaConf.create((MODEL_DIR / f"{name}.yaml").read_text()))
    entries = raw.pop("defaults", [])
    assert entries[-1:] == ["_self_"] or not entries
    inherited = OmegaConf.to_container(OmegaConf.merge({}, *(load_option("model", e) for e in entries[:-1])))
    same = sorted(k for k, v in raw.items() if k in inherited and inherited[k] == v)
    assert not same, f"{name}.yaml repeats inherited values of {same}"


def test_hydra_overrides_keys_a_preset_does_not_state():
    cfg = compose_train(["model=b", "model.remat=true", "model.norm=group"])
    assert (cfg.model.remat, cfg.model.norm, cfg.model.steps) == (True, "group", 4)
    assert compose_train(["model=resnet18", "model.share_weights=true"]).model.share_weights is True


@pytest.mark.parametrize("name", group_choices("model"))
def test_validation_builds_no_model(name, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("validation built a model")

    monkeypatch.setattr(AreaGraph, "__init__", refuse)
    monkeypatch.setattr(ResNet, "__init__", refuse)
    cfg = preset(name)
    shape, classes = natural_input(cfg)
    validate_model_config(cfg, shape, classes)
    spec = graph_spec(cfg, num_classes=classes, input_shape=shape)
    assert (spec is None) == (cfg.family in ("cifar_resnet", "imagenet_resnet"))


@pytest.mark.parametrize("name,overrides,message", [
    ("resnet18", {"depth": 19}, "model.depth=19 is not valid; choose one of: 18, 34, 50, 101, 152"),
    ("resnet20", {"depth": 2}, "model.depth=2 is not 6n+2 with n >= 1"),
    ("resnet20", {"depth": 8, "share_weights": True}, "model.share_weights needs 2 or more blocks per stage"),
    ("resnet20", {"shortcut": "C"}, "model.shortcut='C' is not valid; choose one of: A, B"),
    ("b", {"natural_input": [32, 32]}, "model.natural_input must be [height, width, channels], got [32, 32]"),
    ("b", {"natural_classes": 0}, "model.natural_classes must be a positive integer, got 0"),
    ("b", {"unroll": "fast"}, "model b: unroll must be one of auto, loop, scan, got 'fast'"),
    ("b_k", {"match": "height"}, "model.match='height' is not valid; choose one of: kernel, width, depth"),
    ("cornet_r", {"variant": "q"}, "model cornet_r: variant must be one of z, r, rt, s, got 'q'"),
    ("cornet_s", {"area_steps": [2, 4, 2]}, "area_steps takes the steps of V2 and V4 (IT's are steps), got [2, 4, 2]"),
    ("liao_poggio_4state", {"connectivity": "some"}, "model.connectivity='some' is not valid; choose one of: chain"),
])
def test_bad_values_are_one_line_config_errors(name, overrides, message):
    cfg = OmegaConf.merge(preset(name), overrides)
    with pytest.raises(ConfigError) as err:
        validate_model_config(cfg, (32, 32, 3), 10)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", [n for n in group_choices("model") if preset(n).family in ("blt", "matched_control")])
@pytest.mark.parametrize("overrides", [{}, {"norm": "none"}, {"norm": "group"}, {"norm": "bn", "readout": "flatten"},
                                       {"topdown_resample": "nearest"}])
def test_chain_params_counts_what_the_engine_builds(name, overrides):
    """Matched controls are sized by hand-counting, so the count must be the engine's, exactly."""
    spec = graph_spec(OmegaConf.merge(preset(name), overrides), num_classes=10, input_shape=(32, 32, 3))
    assert chain_params(spec) == count_params(nnx.eval_shape(lambda: AreaGraph(spec, rngs=nnx.Rngs(0))))

"""The architecture schema: shipped files validate, bad configs give path-precise errors and nothing else."""

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ARCHITECTURES, ROOT
from workbench.errors import ConfigError
from workbench.schema import Architecture, load
from workbench.schema.architecture import make_divisible
from workbench.schema.common import validate

SHIPPED = sorted(ARCHITECTURES.glob("*.json"))
V2S = json.loads((ARCHITECTURES / "efficientnetv2_s.json").read_text())


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(Architecture, data, "arch.json")
    return info.value.lines


def test_every_shipped_architecture_validates_and_points_at_the_schema():
    assert len(SHIPPED) >= 17
    for path in SHIPPED:
        arch = load(Architecture, path)
        assert arch.description, path
        assert json.loads(path.read_text())["$schema"] == "../schemas/architecture.schema.json"


def test_committed_json_schema_is_current():
    from workbench.cli.arch import schema_dict

    assert json.loads((ROOT / "schemas/architecture.schema.json").read_text()) == schema_dict("architecture")


def test_channel_chain_error_names_both_fields():
    data = copy.deepcopy(V2S)
    data["stages"][3]["in_channels"] = 48
    assert errors_of(data) == ["arch.json: stages[3].in_channels is 48 but stages[2].out_channels is 64"]


def test_typo_is_named_with_its_path():
    data = copy.deepcopy(V2S)
    data["stages"][1]["kernal"] = data["stages"][1].pop("kernel")
    lines = errors_of(data)
    assert "arch.json: stages[1].kernel: required field is missing" in lines
    assert any(line.startswith("arch.json: stages[1].kernal: unknown field") for line in lines)


@pytest.mark.parametrize("field, value, fragment", [
    ("kernel", 4, "stages[0].kernel: kernel must be odd"),
    ("kernel", 0, "stages[0].kernel: Input should be greater than or equal to 1"),
    ("stride", 3, "stages[0].stride"),
    ("expand", 0.5, "stages[0].expand: Input should be greater than or equal to 1"),
    ("layers", 0, "stages[0].layers: Input should be greater than or equal to 1"),
    ("se_ratio", 1.5, "stages[0].se_ratio: Input should be less than or equal to 1"),
    ("block", "resnet", "stages[0].block"),
])
def test_stage_field_limits(field, value, fragment):
    data = copy.deepcopy(V2S)
    data["stages"][0][field] = value
    assert any(fragment in line for line in errors_of(data)), errors_of(data)


def test_at_least_one_stage():
    assert any("stages" in line and "at least 1" in line for line in errors_of({**V2S, "stages": []}))


def test_unknown_activation_and_schedule():
    lines = errors_of({**V2S, "activation": "swish2", "stochastic_depth": {"rate": 0.2, "schedule": "cubic"}})
    assert any(line.startswith("arch.json: activation:") for line in lines)
    assert any(line.startswith("arch.json: stochastic_depth.schedule:") for line in lines)


def test_make_divisible_matches_torchvision():
    from torchvision.models._utils import _make_divisible

    for value in range(1, 700):
        for mult in (0.25, 0.5, 1.0, 1.1, 1.4, 1.8, 3.1):
            assert make_divisible(value * mult) == _make_divisible(value * mult, 8), (value, mult)


def test_stochastic_depth_schedules():
    arch = load(Architecture, ARCHITECTURES / "efficientnetv2_s.json")
    n = len(arch.blocks())
    linear = [b.drop_rate for b in arch.blocks()]
    assert linear == [0.2 * i / n for i in range(n)]
    power = [b.drop_rate for b in validate(Architecture, {**V2S, "stochastic_depth": {"rate": 0.2, "schedule": "power", "power": 2.0}}, "x").blocks()]
    assert power == pytest.approx([0.2 * (i / n) ** 2 for i in range(n)])
    assert all(p <= lin for p, lin in zip(power, linear))  # shallow blocks kept more often
    arch = validate(Architecture, {**V2S, "stochastic_depth": {"rate": 0.1, "schedule": "uniform"}}, "x")
    assert {b.drop_rate for b in arch.blocks()} == {0.1}
    arch = validate(Architecture, {**V2S, "stochastic_depth": {"rate": 0.1, "schedule": "none"}}, "x")
    assert {b.drop_rate for b in arch.blocks()} == {0.0}


def test_stage_rate_overrides_the_schedule():
    data = copy.deepcopy(V2S)
    data["stages"][2]["stochastic_depth"] = 0.05
    arch = validate(Architecture, data, "x")
    assert {b.drop_rate for b in arch.blocks() if b.stage == 2} == {0.05}
    assert arch.blocks()[-1].drop_rate == pytest.approx(0.2 * (len(arch.blocks()) - 1) / len(arch.blocks()))


def test_compound_scaling_rounds_like_torchvision():
    arch = load(Architecture, ARCHITECTURES / "efficientnet_b4.json")  # width 1.4, depth 1.8
    stages = arch.resolved_stages()
    assert [s.layers for s in stages] == [2, 4, 4, 6, 6, 8, 2]
    assert [s.out_channels for s in stages] == [24, 32, 56, 112, 160, 272, 448]
    assert arch.head_width == 1792


# --- property-based: malformed configs give a ConfigError, never another exception -----------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
KEYS = ["name", "in_channels", "stem_channels", "stages", "head_channels", "dropout", "stochastic_depth", "width_mult",
        "depth_mult", "norm", "activation", "resolution", "kernal", "block", "expand", "kernel", "stride", "layers", "se_ratio",
        "out_channels", "rate", "schedule", "power", "eps", "train", "eval"]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_configs(draw):
    data = copy.deepcopy(V2S)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(data) if p]
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = draw(JSON_VALUES)
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_configs())
def test_malformed_configs_never_raise_anything_but_config_error(data):
    try:
        arch = validate(Architecture, data, "fuzz.json")
    except ConfigError as exc:
        assert exc.lines and all(line.startswith("fuzz.json: ") for line in exc.lines)
        return
    arch.blocks()  # a config that validates must also resolve
    from workbench.complexity import analytic_cost

    analytic_cost(arch, 64)


@settings(max_examples=100, deadline=None)
@given(JSON_VALUES)
def test_arbitrary_json_gives_config_error(data):
    try:
        validate(Architecture, data, "fuzz.json")
    except ConfigError:
        pass

"""WorkflowSettings: defaults, the image from the environment, parallelism levels."""

from __future__ import annotations

import pytest

from workflows.settings import DEFAULT_IMAGE, IMAGE_ENV, WorkflowSettings


def test_image_comes_from_the_environment_when_set() -> None:
    assert WorkflowSettings.from_env({}).image == DEFAULT_IMAGE
    assert WorkflowSettings.from_env({IMAGE_ENV: ""}).image == DEFAULT_IMAGE
    assert WorkflowSettings.from_env({IMAGE_ENV: "reg.example/tl:2"}).image == "reg.example/tl:2"
    custom = WorkflowSettings.from_env({IMAGE_ENV: "reg.example/tl:2"}, workflow_namespace="lc")
    assert (custom.image, custom.workflow_namespace) == ("reg.example/tl:2", "lc")


@pytest.mark.parametrize(("requested", "level"), [(0, 1), (1, 1), (3, 2), (8, 8), (33, 32)])
def test_parallelism_is_rounded_down_to_a_level(requested: int, level: int) -> None:
    assert WorkflowSettings().parallelism_level(requested) == level


@pytest.mark.parametrize("levels", [(), (2, 4), (1, 4, 2), (1, 1, 2)])
def test_invalid_parallelism_levels_are_refused(levels: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="parallelism_levels"):
        WorkflowSettings(parallelism_levels=levels)


def test_contract_keys_follow_the_prefix() -> None:
    settings = WorkflowSettings(prefix="collibra.com")
    assert settings.enabled_label == "collibra.com/enabled"
    assert settings.label("tenant") == "collibra.com/tenant"

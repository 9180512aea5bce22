"""docs/configuration.md lists every setting exactly once, and nothing that is not a setting."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from pydantic import BaseModel

from services.agent.config import AgentConfig
from services.worldmodel.config import TrainConfig
from shared.config import FROZEN_SECTIONS, MOVED_KEYS, Settings
from shared.models.config import WorldModelConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
FROZEN_CLASSES: dict[str, type] = {"worldmodel.model": WorldModelConfig,
                                   "worldmodel.train": TrainConfig, "agent.config": AgentConfig}
ROW = re.compile(r"^\| `([a-z0-9_.]+)` \|")


def documented_keys() -> list[str]:
    text = DOC.read_text()
    tables = text[text.index("\n## Keys\n"):]
    return [m.group(1) for line in tables.splitlines() if (m := ROW.match(line))]


def dataclass_keys(cls: type, prefix: str) -> set[str]:
    keys: set[str] = set()
    instance = cls()
    for field in dataclasses.fields(cls):
        value = getattr(instance, field.name)
        if dataclasses.is_dataclass(value):
            keys |= dataclass_keys(type(value), f"{prefix}{field.name}.")
        else:
            keys.add(prefix + field.name)
    return keys


def settings_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        key = prefix + name
        annotation = field.annotation
        if key in FROZEN_CLASSES:
            keys |= dataclass_keys(FROZEN_CLASSES[key], key + ".")
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= settings_keys(annotation, key + ".")
        else:
            keys.add(key)
    return keys


def test_the_frozen_sections_are_the_ones_the_settings_know():
    assert {f"{head}.{tail}" for head, tail in FROZEN_SECTIONS} == set(FROZEN_CLASSES)


def test_every_documented_key_is_a_setting_and_every_setting_is_documented():
    documented = documented_keys()
    repeated = sorted({key for key in documented if documented.count(key) > 1})
    assert not repeated, f"documented more than once: {repeated}"
    expected = settings_keys(Settings)
    assert not set(documented) - expected, "documented but not settings: " \
        f"{sorted(set(documented) - expected)}"
    assert not expected - set(documented), "settings missing from docs/configuration.md: " \
        f"{sorted(expected - set(documented))}"


def test_the_moved_keys_are_not_settings_but_their_homes_are():
    expected = settings_keys(Settings)
    assert not set(MOVED_KEYS) & expected
    assert set(MOVED_KEYS.values()) <= expected

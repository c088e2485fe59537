"""The README's configuration table is the operator's reference: it must list every setting."""

from __future__ import annotations

import re
from pathlib import Path

from harvey.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_configuration_table():
    section = README.read_text(encoding="utf-8").split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section))
    aliases = {field.alias for field in Settings.model_fields.values() if field.alias}
    assert aliases - documented == set()

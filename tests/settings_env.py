"""Whether an environment variable names a setting: the names the chart and the compose file
write must reach a field, since pydantic-settings silently ignores a JUSTICE_* name it does not
know (a flat name left over from before the sections, JUSTICE_EVIDENCE_BUCKET, would leave
the default in place)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from justice.platform.config import Settings

PREFIX = str(Settings.model_config.get("env_prefix", ""))
DELIMITER = str(Settings.model_config.get("env_nested_delimiter", ""))


def names_a_setting(variable: str) -> bool:
    """JUSTICE_LISTEN, JUSTICE_EVIDENCE__BUCKET, JUSTICE_AUDIT__DETECTION__WINDOW_SECONDS."""
    if not variable.startswith(PREFIX):
        return False
    *sections, name = variable.removeprefix(PREFIX).lower().split(DELIMITER)
    model: type[BaseModel] = Settings
    for section in sections:
        field = model.model_fields.get(section)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return False
        model = annotation
    return name in model.model_fields


def unknown_settings(variables: Iterable[str]) -> list[str]:
    """The JUSTICE_* names among `variables` that reach no setting."""
    return sorted(v for v in variables if v.startswith(PREFIX) and not names_a_setting(v))

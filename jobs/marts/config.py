"""The marts' YAML settings (rfm.yaml, ltv.yaml, features.yaml) as typed, checked models."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from jobs.common.errors import CdpError, validation_problems
from jobs.common.yamlio import load_yaml


class Strict(BaseModel):
    """A settings model that refuses unknown keys (a typo is an error, not a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Model = TypeVar("Model", bound=BaseModel)


def load_config(path: Path, model: type[Model]) -> Model:
    """`path` validated by `model`; a CdpError naming the file and every problem."""
    try:
        return model.model_validate(load_yaml(path) or {})
    except ValidationError as exc:
        raise CdpError(f"{path}: {validation_problems(exc)}") from exc

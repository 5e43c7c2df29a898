"""Reading params.yaml: one validated section at a time, every problem one line naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from nuclei_unet.config.schema import SECTIONS, Section
from nuclei_unet.errors import ParamsError

S = TypeVar("S", bound=Section)


def read_params(path: str | Path) -> dict[str, Any]:
    """Read a params YAML file into a dict; a missing or malformed file is a ParamsError."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    with open(path, encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise ParamsError(f"{path}: not valid YAML ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return data


# pydantic's error types, in the words params.yaml's users read
_WORDS = {
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "int_type": "expected an integer",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "tuple_type": "expected a list",
    "model_type": "expected a mapping",
    "missing": "missing",
}
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _range(model: type[Section], loc: tuple, ctx: dict[str, Any]) -> str:
    """``in (0, 1)`` for a field bounded on both sides, else ``> 0`` and the like."""
    field = model.model_fields.get(loc[0]) if len(loc) == 1 else None
    bounds = {
        name: getattr(m, name)
        for m in (field.metadata if field else []) for name in _BOUNDS if hasattr(m, name)
    }
    low = next((k for k in ("gt", "ge") if k in bounds), None)
    high = next((k for k in ("lt", "le") if k in bounds), None)
    if low and high:
        left, right = "(" if low == "gt" else "[", ")" if high == "lt" else "]"
        return f"in {left}{bounds[low]}, {bounds[high]}{right}"
    bound = next(k for k in _BOUNDS if k in ctx)
    return f"{_BOUNDS[bound]} {ctx[bound]}"


def _message(error: dict[str, Any], model: type[Section]) -> str:
    """One pydantic error as ``what is wrong`` (without the key)."""
    kind, ctx, value = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "extra_forbidden":
        return f"unknown key (known: {', '.join(sorted(model.model_fields))})"
    if kind == "literal_error":
        choices = ctx["expected"].replace("'", "").replace(" or ", ", ")
        return f"{value!r} is not one of {choices}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"must be {_range(model, error['loc'], ctx)}, got {value!r}"
    if kind == "value_error":
        return str(ctx["error"])
    if kind == "string_pattern_mismatch":
        return "must be 64 hexadecimal digits or null"
    if kind in _WORDS:
        return f"{_WORDS[kind]}, got {value!r}" if kind != "missing" else _WORDS[kind]
    return error["msg"]


def build(model: type[S], raw: Any, where: str) -> S:
    """Validate the mapping ``raw`` found at key path ``where`` into section ``model``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {raw!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise ParamsError(f"{key}: {_message(first, model)}") from None


def load_section(path: str | Path, name: str) -> Any:
    """Read and validate one section of the params file (e.g. ``"train"``)."""
    params = read_params(path)
    if name not in params:
        raise ParamsError(f"{path}: section '{name}' is missing")
    return build(SECTIONS[name], params[name], name)


def load_seed(path: str | Path) -> int:
    """Read ``base.seed``, the one value every stage shares."""
    base = read_params(path).get("base")
    if not isinstance(base, dict) or "seed" not in base:
        raise ParamsError(f"{path}: base.seed is missing")
    seed = base["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ParamsError(f"base.seed: expected an integer, got {seed!r}")
    return seed

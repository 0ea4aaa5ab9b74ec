"""Reading one section of the policy file into a frozen dataclass, refusing keys it does not have."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import TypeVar

C = TypeVar("C")


def from_mapping(cls: type[C], values: Mapping, label: str) -> C:
    """`cls(**values)`, refusing keys the dataclass does not have, named, so a typo in the policy file is an
    error rather than a silently ignored setting; missing keys keep their defaults."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{label}: unknown key(s) {', '.join(repr(k) for k in unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    return cls(**dict(values))

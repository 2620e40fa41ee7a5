"""The one interface every weights format implements (see `seedvault.weights`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seedvault.summaries import Summary


@dataclass(frozen=True)
class WeightFormat:
    """What seedvault knows about one weights format.

    `validate` and `summary` read only the file's header, strictly, and raise
    UnsafeWeightsError for anything malformed; `tensors` builds arrays over an already
    verified uint8 buffer (the bytes hashed are the bytes handed out)."""

    name: str  # also the predicate.files member its summary is signed under
    suffixes: tuple[str, ...]  # lowercase; a file is of this format when its name ends in one
    validate: Callable[[Path, str], None]
    summary: Callable[[Path, str], Summary]
    tensors: Callable[[np.ndarray, str, str], dict[str, Any]]

    def matches(self, path: str) -> bool:
        return path.lower().endswith(self.suffixes)

"""The base of every wire model: tolerant of unknown fields, but says so."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

log = logging.getLogger("helexa.protocol")


class WireModel(BaseModel):
    """Accepts unknown fields (peers add them all the time) and logs them at debug."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="after")
    def _log_unknown(self) -> Any:
        if self.model_extra:
            log.debug("%s: unknown fields %s", type(self).__name__, sorted(self.model_extra))
        return self

"""Value types the deployment schema's sections share."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

# One MQTT topic level: these names become topic segments skyedge/<site>/<device>/<camera>/...
TopicSegment = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)]
Precision = Literal["fp32", "fp16", "int8"]

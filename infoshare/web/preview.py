"""The preview: the STIX a bulletin would publish, converted exactly as publish does, but
with a provisional source id (for a new bulletin), today's stamp and no signature. It is
shown, never stored; publishing converts again and signs."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace

from .. import timestamps
from ..notices import Notice
from ..stix import convert, patterns
from ..stix.ids import IdSpace


@dataclass(frozen=True)
class IndicatorRow:
    value: str
    type: str  # as inferred from the value (or given)
    pattern: str


@dataclass(frozen=True)
class Preview:
    objects: list[dict]
    indicators: list[IndicatorRow]
    provisional: bool  # ids will differ on publication (no source id yet)

    @property
    def text(self) -> str:
        return json.dumps({"type": "bundle", "objects": self.objects}, indent=2,
                          ensure_ascii=False)

    def count(self, object_type: str) -> int:
        return sum(1 for obj in self.objects if obj["type"] == object_type)


def build(notice: Notice, ids: IdSpace) -> Preview:
    provisional = not notice.source_id
    if provisional:
        notice = replace(notice, source_id=f"preview-{uuid.uuid4()}")
    stamp = convert.Stamp(timestamps.format_stix(timestamps.now_us()), {})
    rows = [IndicatorRow(spec.value, spec.type, patterns.pattern(spec.type, spec.value))
            for spec in notice.indicators]
    return Preview(convert.convert(notice, stamp, ids), rows, provisional)

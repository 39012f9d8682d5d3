"""metadata.generation for sources that have no API server to bump it (plain files)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from wardgate.sources.files import RawObject


class GenerationTracker:
    """Bumps an object's generation whenever its spec changes, as the API server does.

    A generation written in the file wins: users and tests can pin it.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str], tuple[str, int]] = {}

    @staticmethod
    def _key(data: dict[str, object]) -> tuple[str, str, str]:
        meta = data.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        return (str(data.get("kind", "")), str(meta.get("namespace", "")), str(meta.get("name", "")))

    def apply(self, raws: list[RawObject]) -> list[RawObject]:
        out: list[RawObject] = []
        for raw in raws:
            meta = raw.data.get("metadata")
            if not isinstance(meta, dict) or "generation" in meta:
                out.append(raw)
                continue
            body = {k: v for k, v in raw.data.items() if k not in ("metadata", "status")}
            digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
            key = self._key(raw.data)
            old = self._seen.get(key)
            gen = 1 if old is None else old[1] + (old[0] != digest)
            self._seen[key] = (digest, gen)
            out.append(replace(raw, data={**raw.data, "metadata": {**meta, "generation": gen}}))
        return out

"""metadata.generation for sources that have no API server to bump it (plain files)."""

from __future__ import annotations

import hashlib
import json

from wardgate.sources.files import RawObject


class GenerationTracker:
    """Bumps an object's generation whenever its spec changes, as the API server does.

    A generation written in the file wins: users and tests can pin it.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str], tuple[str, int]] = {}
        # id(raw.data) -> (that dict, its digest, the object handed out for it). Sources hand back
        # the same dicts for unchanged files, so only changed objects are hashed and copied again
        # (doing it for all cost 0.25 s per reconcile at 1,000 routes). The dict is held so its id
        # can't be reused by another object.
        self._cache: dict[int, tuple[dict[str, object], str, RawObject]] = {}

    @staticmethod
    def _digest(data: dict[str, object]) -> str:
        body = {k: v for k, v in data.items() if k not in ("metadata", "status")}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    @staticmethod
    def _key(data: dict[str, object]) -> tuple[str, str, str]:
        meta = data.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        return (str(data.get("kind", "")), str(meta.get("namespace", "")), str(meta.get("name", "")))

    def apply(self, raws: list[RawObject]) -> list[RawObject]:
        out: list[RawObject] = []
        cache: dict[int, tuple[dict[str, object], str, RawObject]] = {}
        for raw in raws:
            meta = raw.data.get("metadata")
            if not isinstance(meta, dict) or "generation" in meta:
                out.append(raw)
                continue
            key = self._key(raw.data)
            old = self._seen.get(key)
            hit = self._cache.get(id(raw.data))
            if hit is not None and hit[0] is raw.data and old is not None and old[0] == hit[1] \
                    and hit[2].origin == raw.origin:
                cache[id(raw.data)] = hit
                out.append(hit[2])
                continue
            digest = self._digest(raw.data)
            gen = 1 if old is None else old[1] + (old[0] != digest)
            self._seen[key] = (digest, gen)
            made = RawObject({**raw.data, "metadata": {**meta, "generation": gen}}, raw.origin)
            cache[id(raw.data)] = (raw.data, digest, made)
            out.append(made)
        self._cache = cache
        return out

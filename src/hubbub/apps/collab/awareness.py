"""The awareness states of one document's clients (cursors, selections, names).

Semantics follow y-protocols' `awareness.js`: each client id has a clock; a state
with a higher clock replaces the one held, and a `null` state with the same clock
removes it. The table also remembers which connection sent each client's state, so
that closing a connection removes its clients' states, and it expires states not
renewed within `timeout` seconds (Yjs clients renew every 15 seconds). Time comes
from the injected clock; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubbub.apps.collab.protocol import AwarenessEntry

OUTDATED_TIMEOUT = 30.0
"""Seconds after which a state that was not renewed is dropped (as in y-protocols)."""


@dataclass(slots=True)
class _Held:
    clock: int
    state: str
    seen_at: float
    owner: object | None


class AwarenessTable:
    """Awareness states by client id; see the module docstring."""

    def __init__(self, timeout: float = OUTDATED_TIMEOUT) -> None:
        self.timeout = timeout
        self._held: dict[int, _Held] = {}

    def apply(
        self, entries: list[AwarenessEntry], owner: object | None, now: float
    ) -> list[AwarenessEntry]:
        """Take in `entries` sent by `owner` (None: another node); return those accepted."""
        accepted = []
        for entry in entries:
            held = self._held.get(entry.client_id)
            if held is not None:
                newer = entry.clock > held.clock
                removes = entry.clock == held.clock and entry.removed and held.state != "null"
                if not (newer or removes):
                    continue
            if entry.removed:
                self._held[entry.client_id] = _Held(entry.clock, "null", now, None)
            else:
                keep = owner if owner is not None or held is None else held.owner
                self._held[entry.client_id] = _Held(entry.clock, entry.state, now, keep)
            accepted.append(entry)
        return accepted

    def states(self) -> list[AwarenessEntry]:
        """Every present state (for a client that joins or asks)."""
        return [
            AwarenessEntry(client_id, held.clock, held.state)
            for client_id, held in self._held.items()
            if held.state != "null"
        ]

    def remove_owner(self, owner: object, now: float) -> list[AwarenessEntry]:
        """Remove the states sent by `owner` (its connection closed); return the removals."""
        return self._remove([cid for cid, held in self._held.items() if held.owner is owner], now)

    def expire(self, now: float) -> list[AwarenessEntry]:
        """Remove states not renewed within the timeout, forget old removals; return removals."""
        limit = now - self.timeout
        stale = [cid for cid, held in self._held.items() if held.seen_at <= limit]
        for cid in [c for c in stale if self._held[c].state == "null"]:
            del self._held[cid]  # a removal that old has reached everyone
        return self._remove([c for c in stale if c in self._held], now)

    def _remove(self, client_ids: list[int], now: float) -> list[AwarenessEntry]:
        removed = []
        for cid in client_ids:
            held = self._held[cid]
            if held.state == "null":
                continue
            # The same clock with a null state: y-protocols removes it, and the client's
            # own next renewal (clock + 1) is accepted again.
            held.state = "null"
            held.owner = None
            held.seen_at = now  # the removal itself is remembered for another timeout
            removed.append(AwarenessEntry(cid, held.clock, "null"))
        return removed

    def __len__(self) -> int:
        return sum(1 for held in self._held.values() if held.state != "null")

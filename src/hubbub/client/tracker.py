"""Where each channel's stream stands on the client, and what to deliver next.

A pure state machine, like `websockets/protocol.py`: frames in, deliveries and
replay requests out, no I/O. It gives the application every sequenced event
of a channel exactly once and in `seq` order (PROTOCOL.md section 4):

- an event at or below the last delivered `seq` is a repeat and is dropped;
- an event past the next expected `seq` (and not `conflated`) reveals a gap:
  the tracker asks for a `replay_request` of the missing range and holds the
  later events until the replay fills it;
- when the replay comes back incomplete, the tracker reports the range that
  is lost (`RecoveryFailed`) and goes on with what it holds;
- `subscribed` with `recovered: false` after a resume is a `SubscriptionReset`:
  the position jumps to the server's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hubbub.client.events import Message, RecoveryFailed, SubscriptionReset

Delivery = Message | RecoveryFailed | SubscriptionReset


@dataclass(frozen=True)
class ReplayRequest:
    """Ask the server for events `from_seq`..`to_seq` of `channel` again."""

    channel: str
    from_seq: int
    to_seq: int


@dataclass
class Step:
    """What one input to a tracker yields: events to deliver, in order, and maybe a replay."""

    deliver: list[Delivery] = field(default_factory=list)
    replay: ReplayRequest | None = None


class ChannelTracker:
    """The stream position of one channel and the rules above.

    `seq` is the last delivered sequence number (None before the first one is
    known) and `epoch` the history epoch it belongs to. `max_held` bounds the
    events held while a replay is outstanding; past it the gap is given up.
    """

    def __init__(self, channel: str, *, max_held: int = 10_000) -> None:
        self.channel = channel
        self.seq: int | None = None
        self.epoch: str | None = None
        self._max_held = max_held
        self._held: dict[int, tuple[Message, bool]] = {}
        self._replaying: tuple[int, int] | None = None

    def position(self) -> tuple[int, str] | None:
        """`(seq, epoch)` to resume from with `subscribe {since}`, when both are known."""
        if self.seq is None or self.epoch is None:
            return None
        return self.seq, self.epoch

    @property
    def held(self) -> int:
        """How many events wait for a replay to fill the gap before them."""
        return len(self._held)

    @property
    def replaying(self) -> tuple[int, int] | None:
        """The range of the outstanding replay request, if any."""
        return self._replaying

    def subscribed(
        self,
        seq: int,
        epoch: str,
        recovered: bool,
        *,
        answers_since: bool,
        last_value: Message | None = None,
    ) -> Step:
        """A `subscribed` frame. `answers_since`: it answers a subscribe that sent our `since`.

        A `subscribed` that answers no resume (a first subscribe, or the
        server's own subscription of the user channel) only sets the position
        when none is known: when one is, a subscribe with `since` follows and
        its answer decides.
        """
        if answers_since:
            if recovered and epoch == self.epoch:
                return Step()
            self._reset(seq, epoch)
            reset = SubscriptionReset(self.channel, epoch, seq, last_value)
            step = self._drain()
            step.deliver.insert(0, reset)
            return step
        if self.seq is None or self.epoch is None:
            self._reset(max(seq, self.seq or 0), epoch)
            return self._drain()
        return Step()

    def receive(self, message: Message, *, replay: bool = False, conflated: bool = False) -> Step:
        """A channel event. `replay`: it answers a `replay_request`; `conflated`: the
        server skipped older events on purpose, so the jump before it is no gap."""
        seq = message.seq
        if seq is None:
            return Step([message])
        if self.seq is None:
            if replay:
                return Step()
            self.seq = seq
            return Step([message])
        if seq <= self.seq or seq in self._held:
            return Step()
        if seq == self.seq + 1 and not self._held:
            self.seq = seq
            return Step([message])
        self._held[seq] = (message, conflated and not replay)
        if len(self._held) > self._max_held:
            # Holding more would be unbounded: give up the gap that blocks delivery.
            self._replaying = None
            return self._drain(give_up_through=min(self._held) - 1)
        return self._drain()

    def replay_complete(self, from_seq: int, to_seq: int, complete: bool) -> Step:
        """The server finished a replay (`replay_complete`), or refused it (`complete=False`).

        Whatever of `from_seq`..`to_seq` still misses is lost: it is reported
        as `RecoveryFailed` and delivery goes on after it.
        """
        if self._replaying != (from_seq, to_seq):
            return Step()
        self._replaying = None
        return self._drain(give_up_through=to_seq)

    def connection_lost(self) -> None:
        """The connection ended: drop held events and the outstanding replay.

        The resume with `since` after reconnecting brings them again.
        """
        self._held.clear()
        self._replaying = None

    def _reset(self, seq: int, epoch: str) -> None:
        self.seq = seq
        self.epoch = epoch
        self._replaying = None
        for held_seq in [s for s in self._held if s <= seq]:
            del self._held[held_seq]

    def _drain(self, give_up_through: int | None = None) -> Step:
        """Deliver held events while they follow on; ask for a replay at the first hole."""
        step = Step()
        held = self._held
        while held and self.seq is not None:
            nxt = self.seq + 1
            item = held.pop(nxt, None)
            if item is not None:
                step.deliver.append(item[0])
                self.seq = nxt
                continue
            first = min(held)
            message, conflated = held[first]
            if conflated:
                del held[first]
                step.deliver.append(message)
                self.seq = first
                continue
            if give_up_through is not None and nxt <= give_up_through:
                step.deliver.append(RecoveryFailed(self.channel, nxt, first - 1))
                self.seq = first - 1
                continue
            if self._replaying is None:
                self._replaying = (nxt, first - 1)
                step.replay = ReplayRequest(self.channel, nxt, first - 1)
            break
        return step

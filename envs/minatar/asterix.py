"""Asterix, batched: collect gold and dodge enemies that cross the board, ever faster and more often.

Rules (MinAtar v1.0.15 behaviour; each environment is one 10x10 board):

* The player starts at row 5, column 5 and moves one cell per frame with ``l``/``r`` (columns 0-9)
  and ``u``/``d`` (rows 1-8); ``n``/``f`` do nothing.
* Rows 1-8 each have one *slot* that is empty or holds one entity: an enemy, or gold (probability
  1/3), travelling left or right (equally likely) from the side it entered on (column 0 when it
  travels right, column 9 when it travels left).
* Two countdowns pace the board: when the spawn countdown reads 0 at the start of a frame, an entity
  enters a uniformly chosen empty slot (none if all eight are taken) and the countdown restarts at
  the spawn interval; when the move countdown reads 0 (after the player has moved), every entity
  steps one column along its direction, leaving the board past either side, and the countdown
  restarts at the move interval. Both countdowns drop by one at the end of every frame, so entities
  appear once every ``spawn interval`` frames and move once every ``move interval`` frames (the
  first spawn comes on frame 11, the first move on frame 6).
* Each frame, in order: spawn (if due); the player moves; any entity on the player's cell is
  touched; the entities move (if due) and any entity then on the player's cell is touched.
  Touching gold gives +1 and removes it; touching an enemy terminates the episode.
* Difficulty ramping (when enabled; the intervals start at spawn 10, move 5): the game ramps at
  the end of frames 102, 204, ... (MinAtar counts a ramp timer down from 100 and ramps on the frame
  after it passes below 0). A ramp shortens the spawn interval by one (down to 1) and, on every
  second ramp (the 2nd, 4th, ...), the move interval by one (down to 1); ramping stops once both
  are 1 (after 9 ramps). New intervals take effect when a countdown next restarts.

Observation channels, in MinAtar's order: ``player``, ``enemy``, ``trail`` (the cell an entity
just came from, when on the board, which shows its direction) and ``gold``.

Implementation: the difficulty is a function of the episode's frame count (``frames``), so the
ramp costs no per-frame bookkeeping: one lookup in a table indexed by the (capped) frame count
gives both intervals; ``ramp_index``, ``spawn_interval`` and ``move_interval`` are read-only
properties computed from it. State is stored slot-major (the environment index last), so values
per environment broadcast over the slots along the outer axis and reductions over slots add rows,
both of which vectorise on CPU where the environment-major layout did not: the player's row and
column, the two countdowns and the frame count are one ``(5, N)`` int64 tensor ``ints``; the
entities' columns are an ``(8, N)`` int8 tensor ``slot_x`` and their alive, right and gold flags
one ``(3, 8, N)`` bool tensor ``flags``. The attributes ``player``, ``spawn_timer``, ``move_timer``,
``frames``, ``ent_x``, ``ent_alive``, ``ent_right`` and ``ent_gold`` are environment-major views of
them. Only the slot in the player's row can be touched, so contacts are worked out per environment
on that slot alone (one ``gather``). A spawn writes the flags with bitwise selects (``where`` has no
fast path here). Observations are rendered directly in the requested dtype (one scatter into
zeros). On CPU, the spawn and entity-move work is skipped on frames where no environment spawns or
moves. Entities that are not alive do not move (their column is never read).

Random numbers: ``step`` draws 3 uniforms per environment every frame (side, gold, which empty
slot: the ``floor(u * free)``-th empty slot in row order), whether or not a spawn is due; ``reset``
draws none.
"""

from __future__ import annotations

import torch
from rlreg.envs.minatar.base import BatchedGame, CounterRNG, register_game

__all__ = ["Asterix"]

_RAMP_INTERVAL = 100
_SPAWN_INTERVAL = 10
_MOVE_INTERVAL = 5
_GOLD_PROB = 1.0 / 3.0
# columns of Asterix.ints, and rows of Asterix.flags
_ROW, _COL, _SPAWN, _MOVE, _FRAMES = 0, 1, 2, 3, 4
_ALIVE, _RIGHT, _GOLD = 0, 1, 2
# ramps happen after frames 102, 204, ... until both intervals are 1
_LAST_RAMP = max(_SPAWN_INTERVAL - 1, 2 * (_MOVE_INTERVAL - 1))
_RAMPED_FRAMES = (_RAMP_INTERVAL + 2) * _LAST_RAMP  # from here on the difficulty no longer changes


@register_game
class Asterix(BatchedGame):
    """Batched MinAtar Asterix (see the module docstring for the rules)."""

    name = "asterix"
    channels = ("player", "enemy", "trail", "gold")
    minimal_actions = (0, 1, 2, 3, 4)  # n, l, u, r, d
    step_draws = 3
    reset_draws = 0
    state_axes = {"ints": 1, "slot_x": 1, "flags": 2}

    def __init__(self, num_envs: int, rng: CounterRNG, device: torch.device, ramping: bool = True) -> None:
        super().__init__(num_envs, rng, device, ramping)
        n, dev = num_envs, device
        i64 = dict(dtype=torch.int64, device=dev)
        # player (row, column) displacement per action of the full set n, l, u, r, d, f, as columns
        move = torch.tensor([[0, 0], [0, -1], [-1, 0], [0, 1], [1, 0], [0, 0]], **i64)
        self._player_move = move.T.contiguous()
        self._player_min = torch.tensor([[1], [0]], **i64)
        self._player_max = torch.tensor([[8], [9]], **i64)
        # flat cell of slot i's row, column 0, in the enemy channel (1) and the trail channel (2)
        rows = 10 + 10 * torch.arange(8, dtype=torch.int16, device=dev)[:, None]
        self._enemy_cells, self._trail_cells = rows + 100, rows + 200
        # (spawn interval, move interval) by frames played, capped at _RAMPED_FRAMES, as rows
        frames = torch.arange(_RAMPED_FRAMES + 1, **i64)
        ramp = torch.div(frames, _RAMP_INTERVAL + 2, rounding_mode="floor") if ramping else 0 * frames
        self._ramp_table = ramp
        self._interval_table = torch.stack(
            (
                (_SPAWN_INTERVAL - ramp).clamp(min=1),
                (_MOVE_INTERVAL - torch.div(ramp, 2, rounding_mode="floor")).clamp(min=1),
            )
        )
        self._start = torch.tensor([[5], [5], [_SPAWN_INTERVAL], [_MOVE_INTERVAL], [0]], **i64)

        self.ints = torch.zeros(5, n, **i64)
        self.slot_x = torch.zeros(8, n, dtype=torch.int8, device=dev)  # entity of slot i is on row i + 1
        self.flags = torch.zeros(3, 8, n, dtype=torch.bool, device=dev)
        self.reset(torch.ones(n, dtype=torch.bool, device=dev))

    # environment-major views of the state, by name
    @property
    def player(self) -> torch.Tensor:
        """``(N, 2)`` the player's (row, column)."""
        return self.ints[_ROW : _COL + 1].T

    @property
    def spawn_timer(self) -> torch.Tensor:
        """``(N,)`` the spawn countdown."""
        return self.ints[_SPAWN]

    @property
    def move_timer(self) -> torch.Tensor:
        """``(N,)`` the entity-move countdown."""
        return self.ints[_MOVE]

    @property
    def frames(self) -> torch.Tensor:
        """``(N,)`` frames played this episode (drives the ramp)."""
        return self.ints[_FRAMES]

    @property
    def ent_x(self) -> torch.Tensor:
        """``(N, 8)`` int8 column of slot i's entity (meaningful while it is alive)."""
        return self.slot_x.T

    @property
    def ent_alive(self) -> torch.Tensor:
        """``(N, 8)`` whether slot i holds an entity."""
        return self.flags[_ALIVE].T

    @property
    def ent_right(self) -> torch.Tensor:
        """``(N, 8)`` whether slot i's entity travels right."""
        return self.flags[_RIGHT].T

    @property
    def ent_gold(self) -> torch.Tensor:
        """``(N, 8)`` whether slot i's entity is gold (else an enemy)."""
        return self.flags[_GOLD].T

    # ------------------------------------------------------------------ difficulty (from the frame count)
    @property
    def ramp_index(self) -> torch.Tensor:
        """Ramps so far (MinAtar's ``difficulty_ramp()``): one per 102 frames until both intervals are 1."""
        return self._ramp_table[self.frames.clamp(max=_RAMPED_FRAMES)]

    @property
    def spawn_interval(self) -> torch.Tensor:
        """Frames between spawns: shortened by every ramp, down to 1."""
        return self._interval_table[0, self.frames.clamp(max=_RAMPED_FRAMES)]

    @property
    def move_interval(self) -> torch.Tensor:
        """Frames between entity moves: shortened by every second ramp, down to 1."""
        return self._interval_table[1, self.frames.clamp(max=_RAMPED_FRAMES)]

    def reset(self, mask: torch.Tensor, u: torch.Tensor | None = None) -> None:
        self.ints = torch.where(mask, self._start, self.ints)
        self.flags[_ALIVE].masked_fill_(mask, False)

    def step(self, action: torch.Tensor, u: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        ints, flags, x = self.ints, self.flags, self.slot_x
        timers = ints[_SPAWN : _MOVE + 1]
        due = timers == 0
        spawning, moving = due[0], due[1]
        u = self._draw(u, 3, spawning)  # drawn every frame, used on a spawning frame
        if self._any(spawning):
            # the floor(u * free)-th empty slot, in row order
            free = ~flags[_ALIVE]
            rank = free.cumsum(0, dtype=torch.int8)  # 1-based rank of each empty slot
            pick = ((u[:, 2] * rank[7]).long() + 1).to(torch.int8)
            spawn = (rank == pick) & free & spawning
            right = u[:, 0] < 0.5
            new = torch.stack((spawning, right, u[:, 1] < _GOLD_PROB))[:, None]  # alive, right, gold
            flags = self.flags = (flags & ~spawn) | (new & spawn)
            x.sub_(spawn * (x - 9 * (~right).to(torch.int8)))  # enters at column 0 (right) or 9
        alive, right, gold = flags

        player = ints[_ROW : _COL + 1]
        player.add_(self._player_move[:, action]).clamp_(self._player_min, self._player_max)
        row = (player[0] - 1)[None]  # the slot in the player's row
        col = player[1].to(torch.int8)
        gold_here = gold.gather(0, row)[0]
        touch = alive.gather(0, row)[0] & (x.gather(0, row)[0] == col)
        if self._any(moving):
            going = alive & moving
            x.add_(right & going).sub_((going > right).to(torch.int8))
            alive &= (x >= 0) & (x <= 9)  # off either side: gone
            # anything on the player's cell after the move is touched (a gold touched before the
            # move has moved off it)
            touch |= alive.gather(0, row)[0] & (x.gather(0, row)[0] == col) & moving
        got = touch & gold_here
        alive.scatter_(0, row, alive.gather(0, row) & ~got)

        # countdowns restart at the intervals of the difficulty reached before this frame's ramp
        frames = ints[_FRAMES]
        intervals = self._interval_table[:, frames.clamp(max=_RAMPED_FRAMES)]
        timers.copy_(torch.where(due, intervals, timers) - 1)
        frames += 1
        return got.float(), touch > gold_here

    def render(self, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
        # flat cell indices into (4 channels x 100 cells) per environment: player, entities, trails;
        # empty slots (and trails off the board) write 0 into their own row, where nothing else is
        # drawn. Built slot-major, written environment-major (transposed copies).
        n, flags, x = self.num_envs, self.flags, self.slot_x
        alive, right, gold = flags
        back = x - (right.to(torch.int8) * 2 - 1)  # the cell the entity came from
        back_on = back.clamp(0, 9)
        index = torch.empty(n, 17, dtype=torch.int64, device=self.device)
        index[:, 0] = self.ints[_ROW] * 10 + self.ints[_COL]
        index[:, 1:9].T.copy_(self._enemy_cells + x.clamp(0, 9) + 200 * gold.to(torch.int16))
        index[:, 9:].T.copy_(self._trail_cells + back_on)
        value = torch.empty(n, 17, dtype=dtype, device=self.device)
        value[:, 0] = 1
        value[:, 1:9].T.copy_(alive)
        value[:, 9:].T.copy_(alive & (back_on == back))
        return self._blank(dtype, out).scatter_(1, index, value).view(-1, 4, 10, 10)

    def observation(self) -> torch.Tensor:
        return self.render(torch.bool)

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
ramp costs no per-frame bookkeeping; ``ramp_index``, ``spawn_interval`` and ``move_interval`` are
read-only properties computed from it. Entities are ``(N, 8)`` tensors, one column per slot.

Random numbers: ``step`` draws 3 uniforms per environment every frame (side, gold, which empty
slot: the ``floor(u * free)``-th empty slot in row order), whether or not a spawn is due; ``reset``
draws none.
"""

from __future__ import annotations

import torch

from envs.minatar.base import BatchedGame, CounterRNG, register_game

__all__ = ["Asterix"]

_RAMP_INTERVAL = 100
_SPAWN_INTERVAL = 10
_MOVE_INTERVAL = 5
_GOLD_PROB = 1.0 / 3.0


@register_game
class Asterix(BatchedGame):
    """Batched MinAtar Asterix (see the module docstring for the rules)."""

    name = "asterix"
    channels = ("player", "enemy", "trail", "gold")
    minimal_actions = (0, 1, 2, 3, 4)  # n, l, u, r, d

    def __init__(self, num_envs: int, rng: CounterRNG, device: torch.device, ramping: bool = True) -> None:
        super().__init__(num_envs, rng, device, ramping)
        n, dev = num_envs, device
        i64 = dict(dtype=torch.int64, device=dev)
        # player (row, column) displacement per action of the full set n, l, u, r, d, f
        self._player_move = torch.tensor([[0, 0], [0, -1], [-1, 0], [0, 1], [1, 0], [0, 0]], **i64)
        self._player_min = torch.tensor([1, 0], **i64)
        self._player_max = torch.tensor([8, 9], **i64)
        self._slots = torch.arange(8, **i64)
        # first cell of slot i's row in channel 0: 10 (i + 1)
        self._row_cells = 10 + 10 * self._slots

        self.player = torch.full((n, 2), 5, **i64)  # (row, column)
        self.ent_x = torch.zeros(n, 8, **i64)  # entity of slot i is on row i + 1
        self.ent_alive = torch.zeros(n, 8, dtype=torch.bool, device=dev)
        self.ent_right = torch.zeros(n, 8, dtype=torch.bool, device=dev)
        self.ent_gold = torch.zeros(n, 8, dtype=torch.bool, device=dev)
        self.spawn_timer = torch.full((n,), _SPAWN_INTERVAL, **i64)
        self.move_timer = torch.full((n,), _MOVE_INTERVAL, **i64)
        self.frames = torch.zeros(n, **i64)  # frames played this episode (drives the ramp)
        self.reset(torch.ones(n, dtype=torch.bool, device=dev))

    # ------------------------------------------------------------------ difficulty (from the frame count)
    @property
    def ramp_index(self) -> torch.Tensor:
        """Ramps so far (MinAtar's ``difficulty_ramp()``): one per 102 frames until both intervals are 1."""
        if not self.ramping:
            return torch.zeros_like(self.frames)
        last = max(_SPAWN_INTERVAL - 1, 2 * (_MOVE_INTERVAL - 1))
        return torch.div(self.frames, _RAMP_INTERVAL + 2, rounding_mode="floor").clamp_(max=last)

    @property
    def spawn_interval(self) -> torch.Tensor:
        """Frames between spawns: shortened by every ramp, down to 1."""
        return (_SPAWN_INTERVAL - self.ramp_index).clamp_(min=1)

    @property
    def move_interval(self) -> torch.Tensor:
        """Frames between entity moves: shortened by every second ramp, down to 1."""
        return (_MOVE_INTERVAL - torch.div(self.ramp_index, 2, rounding_mode="floor")).clamp_(min=1)

    def reset(self, mask: torch.Tensor) -> None:
        self.player.masked_fill_(mask[:, None], 5)
        self.ent_alive.masked_fill_(mask[:, None], False)
        self.spawn_timer.masked_fill_(mask, _SPAWN_INTERVAL)
        self.move_timer.masked_fill_(mask, _MOVE_INTERVAL)
        self.frames.masked_fill_(mask, 0)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alive = self.ent_alive
        # spawn: the floor(u * free)-th empty slot, in row order, when the countdown is due
        u = self.rng.uniform(3)
        right, gold = u[:, 0:1] < 0.5, u[:, 1:2] < _GOLD_PROB
        free = ~alive
        rank = free.cumsum(1)  # 1-based rank of each empty slot
        pick = (u[:, 2:3] * rank[:, 7:]).long() + 1
        spawning = self.spawn_timer == 0
        spawn = free & (rank == pick) & spawning[:, None]
        self.ent_x = torch.where(spawn, 9 * ~right, self.ent_x)
        self.ent_right = torch.where(spawn, right, self.ent_right)
        self.ent_gold = torch.where(spawn, gold, self.ent_gold)
        alive |= spawn

        player = torch.clamp(self.player + self._player_move[action], self._player_min, self._player_max)
        self.player = player
        in_row = self._slots == (player[:, 0:1] - 1)
        col = player[:, 1:2]
        touch = alive & in_row & (self.ent_x == col)
        moving = self.move_timer == 0
        self.ent_x += (2 * self.ent_right - 1) * moving[:, None]
        alive &= (self.ent_x >= 0) & (self.ent_x <= 9)
        # a gold touched before the move is gone; anything else on the player's cell now is touched
        alive &= ~(touch & self.ent_gold)
        touch |= alive & in_row & (self.ent_x == col) & moving[:, None]
        got = touch & self.ent_gold
        alive &= ~got

        # countdowns restart at the intervals of the difficulty reached before this frame's ramp
        if self.ramping:
            self.spawn_timer = torch.where(spawning, self.spawn_interval, self.spawn_timer)
            self.move_timer = torch.where(moving, self.move_interval, self.move_timer)
        else:
            self.spawn_timer.masked_fill_(spawning, _SPAWN_INTERVAL)
            self.move_timer.masked_fill_(moving, _MOVE_INTERVAL)
        self.spawn_timer -= 1
        self.move_timer -= 1
        self.frames += 1
        return got.sum(1).float(), (touch & ~self.ent_gold).any(1)

    def observation(self) -> torch.Tensor:
        # flat cell indices into (4 channels x 100 cells): player, entities, trails; empty slots (and
        # trails off the board) write False into their own row, where nothing else is drawn
        alive = self.ent_alive
        x = self.ent_x.clamp(0, 9)
        back = self.ent_x - (2 * self.ent_right - 1)
        on_board = alive & (back >= 0) & (back <= 9)
        entities = self._row_cells + x + torch.where(self.ent_gold, 300, 100)
        trails = self._row_cells + back.clamp(0, 9) + 200
        player = (self.player[:, 0:1] * 10) + self.player[:, 1:2]
        index = torch.cat((player, entities, trails), 1)
        value = torch.cat((torch.ones_like(alive[:, :1]), alive, on_board), 1)
        obs = torch.zeros(self.num_envs, 400, dtype=torch.bool, device=self.device)
        return obs.scatter_(1, index, value).view(-1, 4, 10, 10)

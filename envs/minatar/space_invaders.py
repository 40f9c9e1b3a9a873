"""Batched SpaceInvaders (MinAtar ``space_invaders``) in torch.

Mechanics, one frame per step, in this order (matching MinAtar v1.0.15):

1. **Player.** ``f`` fires when the cannon's cooldown is 0: a friendly bullet appears on row 9 above
   the cannon and the cooldown becomes 5. ``l``/``r`` move the cannon along row 9 (clamped to
   columns 0..9); ``n``, ``u``, ``d`` and a fire action during the cooldown do nothing.
2. **Bullets.** Friendly bullets move up one row (leaving the screen from row 0); enemy bullets move
   down one row (leaving from row 9). An enemy bullet now on the cannon's cell ends the episode.
3. **Aliens.** An alien on the cannon's cell ends the episode. The block moves when its move timer is
   0; the timer then restarts at ``min(aliens left, move interval)``, so a thinned-out block speeds
   up (one alien alone moves every other frame). A block touching the edge it is heading for turns
   round and drops one row instead of moving sideways (ending the episode if it already occupies row
   9; the drop rotates rows, as the reference's ``np.roll`` does); otherwise it moves one column.
   After a move an alien on the cannon's cell ends the episode.
4. **Alien fire.** When the alien shot timer is 0 it restarts at 10 and the alien nearest the cannon
   fires: the nearest non-empty column (ties go to the column left of the cannon), lowest alien in
   it; the bullet appears on that alien's own cell.
5. **Hits.** A friendly bullet sharing a cell with an alien removes both and scores +1.
6. **Timers** count down (cooldown only while positive). A cleared wave is replaced by a fresh
   block on rows 0..3, columns 2..7, keeping its direction and timers; with difficulty ramping the
   move interval drops by one per cleared wave, from 12 to at least 6.

Every environment runs all of these as tensor operations on boolean 10x10 maps; there is no
randomness in the game (only the sticky actions of :class:`~rlreg.envs.minatar.base.MinAtarBatch`).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from rlreg.envs.minatar.base import BatchedGame, CounterRNG, register_game

__all__ = ["SpaceInvaders"]

FIRE_COOLDOWN = 5
ALIEN_MOVE_INTERVAL = 12
MIN_ALIEN_MOVE_INTERVAL = 6
ALIEN_SHOT_INTERVAL = 10


BLOCK_ROW = 0b0011111100  # columns 2..7
_COLS = 10


@register_game
class SpaceInvaders(BatchedGame):
    """MinAtar SpaceInvaders for N environments; see the module docstring for the rules.

    Each 10x10 layer (aliens, friendly bullets, enemy bullets) is stored as ten row bitmasks,
    ``(N, 10)`` int64 with bit ``c`` of entry ``r`` set for cell (row r, column c): vertical moves
    shift entries, sideways moves shift bits, and every operation touches 10 integers per
    environment instead of 100 cells.
    """

    name: ClassVar[str] = "space_invaders"
    channels: ClassVar[tuple[str, ...]] = (
        "cannon",
        "alien",
        "alien_left",
        "alien_right",
        "friendly_bullet",
        "enemy_bullet",
    )
    minimal_actions: ClassVar[tuple[int, ...]] = (0, 1, 3, 5)  # n, l, r, f
    # no random draws; every state tensor has the environment first (lets MinAtarBatch skip or
    # sub-batch resets)
    step_draws: ClassVar[int] = 0
    reset_draws: ClassVar[int] = 0
    state_axes: ClassVar[dict[str, int]] = {
        name: 0
        for name in (
            "pos",
            "aliens",
            "f_bullets",
            "e_bullets",
            "alien_dir",
            "move_interval",
            "move_timer",
            "alien_shot_timer",
            "cooldown",
            "ramp_index",
        )
    }

    def __init__(self, num_envs: int, rng: CounterRNG, device: torch.device, ramping: bool = True) -> None:
        super().__init__(num_envs, rng, device, ramping)
        n = num_envs

        def i64(*shape: int) -> torch.Tensor:
            return torch.zeros(*shape, dtype=torch.int64, device=device)

        self.pos = i64(n)  # cannon column (row 9)
        self.aliens, self.f_bullets, self.e_bullets = i64(n, 10), i64(n, 10), i64(n, 10)  # row bitmasks
        self.alien_dir = i64(n)  # -1 left, +1 right
        self.move_interval, self.move_timer, self.alien_shot_timer = i64(n), i64(n), i64(n)
        self.cooldown, self.ramp_index = i64(n), i64(n)
        # constants
        self._rows = torch.arange(10, dtype=torch.int64, device=device)
        self._popcount = torch.tensor([bin(v).count("1") for v in range(1 << _COLS)], device=device)
        self._block = torch.tensor([BLOCK_ROW] * 4 + [0] * 6, dtype=torch.int64, device=device)
        self._row_cells = ((torch.arange(1 << _COLS, device=device)[:, None] >> self._rows) & 1).bool()
        self._row_cells_as: dict[torch.dtype, torch.Tensor] = {torch.bool: self._row_cells}

    def reset(self, mask: torch.Tensor, u: torch.Tensor | None = None) -> None:
        """Fresh episode where ``mask``: cannon at column 5, full block heading left, interval 12."""
        m1, m2 = mask, mask[:, None]
        self.pos.masked_fill_(m1, 5)
        self.aliens.copy_(torch.where(m2, self._block, self.aliens))
        self.f_bullets.masked_fill_(m2, 0)
        self.e_bullets.masked_fill_(m2, 0)
        self.alien_dir.masked_fill_(m1, -1)
        self.move_interval.masked_fill_(m1, ALIEN_MOVE_INTERVAL)
        self.move_timer.masked_fill_(m1, ALIEN_MOVE_INTERVAL)
        self.alien_shot_timer.masked_fill_(m1, ALIEN_SHOT_INTERVAL)
        self.cooldown.masked_fill_(m1, 0)
        self.ramp_index.masked_fill_(m1, 0)

    def step(self, action: torch.Tensor, u: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance one frame (rules in the module docstring); returns ``(reward, terminal)``."""
        zero = torch.zeros(self.num_envs, 1, dtype=torch.int64, device=self.device)
        # 1. player
        fire = (action == 5) & (self.cooldown == 0)
        self.cooldown.masked_fill_(fire, FIRE_COOLDOWN)
        self.pos.add_((action == 3).long() - (action == 1).long()).clamp_(0, 9)
        cannon = 1 << self.pos  # the cannon's bit in row 9
        # 2. bullets: a shot placed on row 9 moves straight on to row 8 this frame
        f = torch.cat([self.f_bullets[:, 1:9], (cannon * fire)[:, None], zero], dim=1)
        e = torch.cat([zero, self.e_bullets[:, :9]], dim=1)
        a = self.aliens
        terminal = ((e[:, 9] | a[:, 9]) & cannon) != 0
        # 3. aliens
        move = self.move_timer == 0
        count = self._popcount[a].sum(1)
        self.move_timer.copy_(torch.where(move, torch.minimum(count, self.move_interval), self.move_timer))
        occupied = a[:, 0]  # OR of all rows: the columns holding an alien
        for r in range(1, 10):
            occupied = occupied | a[:, r]
        left = self.alien_dir < 0
        at_edge = (occupied & torch.where(left, 1, 1 << 9)) != 0
        drop = move & at_edge
        slide = move & ~at_edge
        terminal |= drop & (a[:, 9] != 0)
        slid = torch.where(left[:, None], a >> 1, a << 1)
        a = torch.where(drop[:, None], a.roll(1, 1), torch.where(slide[:, None], slid, a))
        self.alien_dir.copy_(torch.where(drop, -self.alien_dir, self.alien_dir))
        terminal |= (a[:, 9] & cannon) != 0
        # 4. alien fire from the lowest alien of the column nearest the cannon (sideways moves keep the
        #    set of occupied rows, so only the column mask needs shifting)
        shoot = self.alien_shot_timer == 0
        self.alien_shot_timer.masked_fill_(shoot, ALIEN_SHOT_INTERVAL)
        occupied = torch.where(
            drop, occupied, torch.where(slide, torch.where(left, occupied >> 1, occupied << 1), occupied)
        )
        cols = self._rows
        has = ((occupied[:, None] >> cols) & 1) != 0
        dist = (cols - self.pos[:, None]).abs() * 2 + (cols > self.pos[:, None]).long()
        col = torch.where(has, dist, 100).argmin(1)
        in_col = ((a >> col[:, None]) & 1) != 0
        row = torch.where(in_col, self._rows, -1).amax(1)
        shot = (self._rows == row[:, None]) & (shoot & (occupied != 0))[:, None]
        e |= shot.long() << col[:, None]
        # 5. hits
        hits = a & f
        reward = self._popcount[hits].sum(1).to(torch.float32)
        a = a & ~hits
        f &= ~hits
        # 6. timers, new wave
        self.cooldown.sub_((self.cooldown > 0).long())
        self.move_timer.sub_(1)
        self.alien_shot_timer.sub_(1)
        cleared = a.amax(1) == 0
        if self.ramping:
            ramp = cleared & (self.move_interval > MIN_ALIEN_MOVE_INTERVAL)
            self.move_interval.sub_(ramp.long())
            self.ramp_index.add_(ramp.long())
        self.aliens.copy_(torch.where(cleared[:, None], self._block, a))
        self.f_bullets.copy_(f)
        self.e_bullets.copy_(e)
        return reward, terminal

    def observation(self) -> torch.Tensor:
        """``(N, 6, 10, 10)`` bool: cannon, aliens, aliens by heading (left/right), both bullet kinds."""
        return self.render(torch.bool)

    def render(self, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
        """The observation in ``dtype``: each row bitmask's 10 cells looked up in a (1024, 10) table
        of that dtype, written straight into ``out`` when given."""
        a = self.aliens
        left = (self.alien_dir < 0)[:, None]
        cannon = torch.where(self._rows == 9, 1 << self.pos[:, None], 0)
        rows = torch.stack([cannon, a, a * left, a * ~left, self.f_bullets, self.e_bullets], dim=1)
        table = self._row_cells_as.get(dtype)
        if table is None:
            table = self._row_cells_as[dtype] = self._row_cells.to(dtype)
        if out is None:
            return table.index_select(0, rows.view(-1)).view(self.num_envs, 6, 10, 10)
        return torch.index_select(table, 0, rows.view(-1), out=out.view(-1, 10)).view(
            self.num_envs, 6, 10, 10
        )

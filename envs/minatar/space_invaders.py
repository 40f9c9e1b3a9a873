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
randomness in the game (only the sticky actions of :class:`~envs.minatar.base.MinAtarBatch`).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from envs.minatar.base import BatchedGame, CounterRNG, register_game

__all__ = ["SpaceInvaders"]

FIRE_COOLDOWN = 5
ALIEN_MOVE_INTERVAL = 12
MIN_ALIEN_MOVE_INTERVAL = 6
ALIEN_SHOT_INTERVAL = 10


@register_game
class SpaceInvaders(BatchedGame):
    """MinAtar SpaceInvaders for N environments; see the module docstring for the rules."""

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

    def __init__(self, num_envs: int, rng: CounterRNG, device: torch.device, ramping: bool = True) -> None:
        super().__init__(num_envs, rng, device, ramping)
        n, dev = num_envs, device
        i64 = dict(dtype=torch.int64, device=dev)
        self.pos = torch.zeros(n, **i64)  # cannon column (row 9)
        self.aliens = torch.zeros(n, 10, 10, dtype=torch.bool, device=dev)
        self.f_bullets = torch.zeros(n, 10, 10, dtype=torch.bool, device=dev)
        self.e_bullets = torch.zeros(n, 10, 10, dtype=torch.bool, device=dev)
        self.alien_dir = torch.zeros(n, **i64)  # -1 left, +1 right
        self.move_interval = torch.zeros(n, **i64)
        self.move_timer = torch.zeros(n, **i64)
        self.alien_shot_timer = torch.zeros(n, **i64)
        self.cooldown = torch.zeros(n, **i64)
        self.ramp_index = torch.zeros(n, **i64)
        # constants
        self._cols = torch.arange(10, **i64)
        block = torch.zeros(10, 10, dtype=torch.bool, device=dev)
        block[0:4, 2:8] = True
        self._block = block
        self._arange_n = torch.arange(n, **i64)

    def reset(self, mask: torch.Tensor) -> None:
        """Fresh episode where ``mask``: cannon at column 5, full block heading left, interval 12."""
        m1, m3 = mask, mask[:, None, None]
        self.pos.masked_fill_(m1, 5)
        self.aliens.copy_(torch.where(m3, self._block, self.aliens))
        self.f_bullets.masked_fill_(m3, False)
        self.e_bullets.masked_fill_(m3, False)
        self.alien_dir.masked_fill_(m1, -1)
        self.move_interval.masked_fill_(m1, ALIEN_MOVE_INTERVAL)
        self.move_timer.masked_fill_(m1, ALIEN_MOVE_INTERVAL)
        self.alien_shot_timer.masked_fill_(m1, ALIEN_SHOT_INTERVAL)
        self.cooldown.masked_fill_(m1, 0)
        self.ramp_index.masked_fill_(m1, 0)

    def _at_cannon(self, grid: torch.Tensor) -> torch.Tensor:
        """Whether ``grid`` (N, 10, 10) is set on the cannon's cell (row 9, column ``pos``)."""
        return grid[self._arange_n, 9, self.pos]

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance one frame (rules in the module docstring); returns ``(reward, terminal)``."""
        n = self.num_envs
        # 1. player
        fire = (action == 5) & (self.cooldown == 0)
        self.cooldown.masked_fill_(fire, FIRE_COOLDOWN)
        self.pos.add_((action == 3).long() - (action == 1).long()).clamp_(0, 9)
        new_shot = (self._cols == self.pos[:, None]) & fire[:, None]
        # 2. bullets: a shot placed on row 9 moves straight to row 8 this frame
        empty_row = torch.zeros(n, 1, 10, dtype=torch.bool, device=self.device)
        f = torch.cat([self.f_bullets[:, 1:9], new_shot[:, None], empty_row], dim=1)
        e = torch.cat([empty_row, self.e_bullets[:, :9]], dim=1)
        terminal = self._at_cannon(e) | self._at_cannon(self.aliens)
        # 3. aliens
        a = self.aliens
        move = self.move_timer == 0
        count = a.sum((1, 2))
        self.move_timer.copy_(torch.where(move, torch.minimum(count, self.move_interval), self.move_timer))
        left = self.alien_dir < 0
        at_edge = torch.where(left, a[:, :, 0].any(1), a[:, :, 9].any(1))
        drop = move & at_edge
        slide = move & ~at_edge
        terminal |= drop & a[:, 9].any(1)
        slid = torch.where(left[:, None, None], a.roll(-1, 2), a.roll(1, 2))
        a = torch.where(drop[:, None, None], a.roll(1, 1), torch.where(slide[:, None, None], slid, a))
        self.alien_dir.copy_(torch.where(drop, -self.alien_dir, self.alien_dir))
        terminal |= self._at_cannon(a)
        # 4. alien fire from the lowest alien of the column nearest the cannon
        shoot = self.alien_shot_timer == 0
        self.alien_shot_timer.masked_fill_(shoot, ALIEN_SHOT_INTERVAL)
        occupied = a.any(1)
        dist = (self._cols - self.pos[:, None]).abs() * 2 + (self._cols > self.pos[:, None]).long()
        col = torch.where(occupied, dist, 100).argmin(1)
        rows_in_col = a[self._arange_n, :, col]  # (N, 10)
        row = torch.where(rows_in_col, self._cols, -1).amax(1)
        shoot &= occupied.any(1)
        e[self._arange_n, row.clamp(min=0), col] |= shoot
        # 5. hits
        hits = a & f
        reward = hits.sum((1, 2)).to(torch.float32)
        a &= ~hits
        f &= ~hits
        # 6. timers, new wave
        self.cooldown.sub_((self.cooldown > 0).long())
        self.move_timer.sub_(1)
        self.alien_shot_timer.sub_(1)
        cleared = ~a.any(2).any(1)
        if self.ramping:
            ramp = cleared & (self.move_interval > MIN_ALIEN_MOVE_INTERVAL)
            self.move_interval.sub_(ramp.long())
            self.ramp_index.add_(ramp.long())
        a |= cleared[:, None, None] & self._block
        self.aliens.copy_(a)
        self.f_bullets.copy_(f)
        self.e_bullets.copy_(e)
        return reward, terminal

    def observation(self) -> torch.Tensor:
        """``(N, 6, 10, 10)`` bool: cannon, aliens, aliens by heading (left/right), both bullet kinds."""
        cannon = torch.zeros_like(self.aliens)
        cannon[:, 9] = self._cols == self.pos[:, None]
        left = (self.alien_dir < 0)[:, None, None]
        return torch.stack(
            [cannon, self.aliens, self.aliens & left, self.aliens & ~left, self.f_bullets, self.e_bullets],
            dim=1,
        )

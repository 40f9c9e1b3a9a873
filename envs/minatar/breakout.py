"""Breakout, batched: a paddle on the bottom row keeps a diagonally moving ball in play.

Rules (MinAtar v1.0.15 behaviour; each environment is one 10x10 board):

* The paddle lives on row 9 and moves one cell per frame with ``l``/``r`` (clamped to the board);
  the other actions leave it where it is. It moves before the ball does.
* The ball always travels diagonally, one cell per frame in each axis. An episode starts with the
  ball on row 3, at column 0 heading down-right or at column 9 heading down-left (equally likely),
  the paddle in column 4 and rows 1-3 full of bricks.
* Each frame the ball's next cell is the current one plus its velocity, then:

  1. a next column off the board is clamped back onto it and the horizontal velocity reverses
     (so at a side wall the ball only moves vertically that frame);
  2. a next row above the board is clamped to row 0 and the vertical velocity reverses;
  3. otherwise, if the next cell holds a brick and the previous frame was not a brick contact
     (the *strike* flag), the brick disappears for +1, the ball keeps its old row (moving only
     sideways) and its vertical velocity reverses. If the previous frame *was* a brick contact,
     the ball enters the brick's cell without breaking it. The strike flag is set on every frame
     whose next cell holds a brick and cleared on every other frame;
  4. otherwise, if the next row is 9 (the paddle's row): when no bricks are left, rows 1-3 are
     refilled. Then, if the paddle is under the ball's *current* column, the ball bounces straight
     back up (vertical velocity reverses, row kept); else if the paddle is under the *next* column
     the ball is sent back the way it came (both velocities reverse, row kept, column advanced);
     else the ball drops onto row 9 and the episode terminates.

Observation channels, in MinAtar's order: ``paddle``, ``ball``, ``trail`` (the ball's previous
cell, which shows its direction) and ``brick``. There is no difficulty ramping in this game.

Implementation: everything but the bricks is one ``(9, N)`` int64 tensor ``kin``, stored
slot-major (environment index last, so per-environment values are contiguous rows and small
constants broadcast along the outer axis, which vectorises on CPU) with rows ball row and column,
trail row and column, velocity row and column, paddle column, brick count and strike flag
(``ball``, ``last``, ``vel``, ``paddle``, ``brick_count`` and ``strike`` are environment-major views
of it). A reset is one ``where`` against the two possible start columns, and a step rewrites the
moving parts with one copy. The bricks are a flattened ``(N, 100)`` bool board read and written
with ``gather``/``scatter``; the per-environment brick count makes the refill test need no
board-wide reduction. One uniform per environment is drawn per ``reset`` call (the start side);
``step`` draws nothing. Observations are rendered directly in the requested dtype (one scatter of
the paddle, ball and trail cells into zeros, plus a copy of the brick board).
"""

from __future__ import annotations

import torch
from rlreg.envs.minatar.base import BatchedGame, CounterRNG, register_game

__all__ = ["Breakout"]


# rows of Breakout.kin
_BALL, _LAST, _VEL, _PADDLE, _COUNT, _STRIKE = slice(0, 2), slice(2, 4), slice(4, 6), 6, 7, 8


@register_game
class Breakout(BatchedGame):
    """Batched MinAtar Breakout (see the module docstring for the rules)."""

    name = "breakout"
    channels = ("paddle", "ball", "trail", "brick")
    minimal_actions = (0, 1, 3)  # n, l, r
    step_draws = 0
    reset_draws = 1
    state_axes = {"kin": 1, "bricks": 0}

    def __init__(self, num_envs: int, rng: CounterRNG, device: torch.device, ramping: bool = True) -> None:
        super().__init__(num_envs, rng, device, ramping)
        n, dev = num_envs, device
        i64 = dict(dtype=torch.int64, device=dev)
        # paddle displacement per action of the full set n, l, u, r, d, f
        self._paddle_move = torch.tensor([0, -1, 0, 1, 0, 0], **i64)
        # observation channel offsets of the ball and the trail cells
        self._ball_trail_offsets = torch.tensor([[100], [200]], **i64)
        # the two possible starts, columns for kin: from the left wall heading down-right, from the
        # right wall heading down-left; paddle in column 4, 30 bricks, no strike
        starts = torch.tensor([[3, 0, 3, 0, 1, 1, 4, 30, 0], [3, 9, 3, 9, 1, -1, 4, 30, 0]], **i64)
        self._start = starts.T[:, :, None]  # (9, 2, 1)

        self.kin = torch.zeros(9, n, **i64)
        self.bricks = torch.zeros(n, 100, dtype=torch.bool, device=dev)  # row-major 10x10
        self.reset(torch.ones(n, dtype=torch.bool, device=dev))

    # environment-major views of kin, by name
    @property
    def ball(self) -> torch.Tensor:
        """``(N, 2)`` (row, column) of the ball."""
        return self.kin[_BALL].T

    @property
    def last(self) -> torch.Tensor:
        """``(N, 2)`` the ball's cell one frame earlier (the trail)."""
        return self.kin[_LAST].T

    @property
    def vel(self) -> torch.Tensor:
        """``(N, 2)`` the ball's velocity, each +-1."""
        return self.kin[_VEL].T

    @property
    def paddle(self) -> torch.Tensor:
        """``(N,)`` the paddle's column."""
        return self.kin[_PADDLE]

    @property
    def brick_count(self) -> torch.Tensor:
        """``(N,)`` bricks left on the board."""
        return self.kin[_COUNT]

    @property
    def strike(self) -> torch.Tensor:
        """``(N,)`` 1 when the previous frame was a brick contact, else 0."""
        return self.kin[_STRIKE]

    def reset(self, mask: torch.Tensor, u: torch.Tensor | None = None) -> None:
        # from the left wall when the uniform is below 1/2, else from the right
        right = self._draw(u, 1, mask)[:, 0] >= 0.5
        self.kin = torch.where(mask, torch.where(right, self._start[:, 1], self._start[:, 0]), self.kin)
        self.bricks[:, 10:40] |= mask[:, None]  # bricks only ever occupy rows 1-3

    def step(self, action: torch.Tensor, u: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        kin, bricks = self.kin, self.bricks
        paddle = kin[_PADDLE]
        paddle.add_(self._paddle_move[action]).clamp_(0, 9)
        prev, vel = kin[_BALL], kin[_VEL]
        target = prev + vel
        ball = target.clamp(0, 9)
        # off the side or the top: that axis's velocity reverses (ball clamped onto the board)
        vel = target.sub_(ball).mul_(-2).add_(vel)
        cell = (ball[0] * 10 + ball[1])[:, None]
        brick = bricks.gather(1, cell)[:, 0]  # row 0 never holds a brick
        strike = kin[_STRIKE]
        hit = brick > strike  # a brick, and no strike last frame
        bricks.scatter_(1, cell, (brick > hit)[:, None])  # broken where hit
        strike.copy_(brick)
        count = kin[_COUNT]
        count.sub_(hit.long())
        bottom = ball[0] == 9  # a brick contact never reaches row 9
        refill = bottom & (count == 0)
        if self._any(refill):
            bricks[:, 10:40] |= refill[:, None]
            count.masked_fill_(refill, 30)
        under_prev = prev[1] == paddle
        under_next = ball[1] == paddle
        straight = bottom & under_prev
        corner = (under_next > under_prev) & bottom
        caught = straight | corner
        # a hit or a catch keeps the row and reverses the vertical velocity; a corner also the horizontal
        keep_row = hit | caught
        ball[0] += keep_row * (prev[0] - ball[0])
        vel *= 1 - 2 * torch.stack((keep_row, corner))
        kin[: _VEL.stop] = torch.cat((ball, prev, vel))
        return hit.float(), bottom > caught

    def render(self, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
        kin = self.kin
        cells = kin[0:4:2] * 10 + kin[1:4:2] + self._ball_trail_offsets  # ball, trail
        index = torch.stack((kin[_PADDLE] + 90, cells[0], cells[1]), 1)
        obs = self._blank(dtype, out, 300)
        obs.scatter_(1, index, self._ones(3, dtype))
        obs[:, 300:] = self.bricks if dtype == torch.bool else self.bricks.view(torch.uint8)
        return obs.view(-1, 4, 10, 10)

    def observation(self) -> torch.Tensor:
        return self.render(torch.bool)

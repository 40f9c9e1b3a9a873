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

Implementation: the ball's cell and velocity are ``(N, 2)`` int64 tensors in ``(row, column)``
order, so a move is one addition and one clamp for both axes; the bricks are a flattened ``(N, 100)``
bool board read and written with ``gather``/``scatter``, with a per-environment brick count so the
refill test needs no board-wide reduction. One uniform per environment is drawn per
``reset`` call (the start side); ``step`` draws nothing.
"""

from __future__ import annotations

import torch

from envs.minatar.base import BatchedGame, CounterRNG, register_game

__all__ = ["Breakout"]


@register_game
class Breakout(BatchedGame):
    """Batched MinAtar Breakout (see the module docstring for the rules)."""

    name = "breakout"
    channels = ("paddle", "ball", "trail", "brick")
    minimal_actions = (0, 1, 3)  # n, l, r

    def __init__(self, num_envs: int, rng: CounterRNG, device: torch.device, ramping: bool = True) -> None:
        super().__init__(num_envs, rng, device, ramping)
        n, dev = num_envs, device
        i64 = dict(dtype=torch.int64, device=dev)
        # paddle displacement per action of the full set n, l, u, r, d, f
        self._paddle_move = torch.tensor([0, -1, 0, 1, 0, 0], **i64)
        self._row_weights = torch.tensor([10, 1], **i64)
        self._eye100 = torch.eye(100, dtype=torch.bool, device=dev)
        self._eye10 = torch.eye(10, dtype=torch.bool, device=dev)
        # the two possible starts: (row, column) and (row velocity, column velocity)
        self._start_ball = torch.tensor([[3, 0], [3, 9]], **i64)
        self._start_vel = torch.tensor([[1, 1], [1, -1]], **i64)

        self.paddle = torch.full((n,), 4, **i64)
        self.ball = torch.zeros(n, 2, **i64)  # (row, column)
        self.last = torch.zeros(n, 2, **i64)  # the ball's cell one frame earlier (the trail)
        self.vel = torch.zeros(n, 2, **i64)  # each +-1
        self.strike = torch.zeros(n, dtype=torch.bool, device=dev)
        self.bricks = torch.zeros(n, 100, dtype=torch.bool, device=dev)  # row-major 10x10
        self.brick_count = torch.zeros(n, **i64)
        self.reset(torch.ones(n, dtype=torch.bool, device=dev))

    def reset(self, mask: torch.Tensor) -> None:
        side = (self.rng.uniform(1)[:, 0] >= 0.5).long()  # 0: from the left wall, 1: from the right
        m = mask[:, None]
        start = self._start_ball[side]
        self.ball = torch.where(m, start, self.ball)
        self.last = torch.where(m, start, self.last)
        self.vel = torch.where(m, self._start_vel[side], self.vel)
        self.paddle.masked_fill_(mask, 4)
        self.strike.masked_fill_(mask, False)
        self.bricks[:, 10:40] |= m  # bricks only ever occupy rows 1-3
        self.brick_count.masked_fill_(mask, 30)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        paddle = self.paddle.add_(self._paddle_move[action]).clamp_(0, 9)
        self.last, prev = self.ball, self.ball
        target = prev + self.vel
        ball = target.clamp(0, 9)
        # off the side or the top: that axis's velocity reverses (ball clamped onto the board)
        vel = self.vel.mul_(1 - 2 * (target != ball).long())
        cell = (ball * self._row_weights).sum(1, keepdim=True)
        brick = self.bricks.gather(1, cell).squeeze(1)  # row 0 never holds a brick
        hit = brick & ~self.strike
        self.bricks.scatter_(1, cell, (brick & self.strike)[:, None])
        bottom = ball[:, 0] == 9  # a brick contact never reaches row 9
        self.brick_count -= hit.long()
        refill = bottom & (self.brick_count == 0)
        self.bricks[:, 10:40] |= refill[:, None]
        self.brick_count += 30 * refill
        straight = bottom & (prev[:, 1] == paddle)
        corner = bottom & ~straight & (ball[:, 1] == paddle)
        caught = straight | corner
        keep_row = hit | caught
        ball[:, 0] = torch.where(keep_row, prev[:, 0], ball[:, 0])
        vel[:, 0] *= 1 - 2 * keep_row.long()
        vel[:, 1] *= 1 - 2 * corner.long()
        self.ball = ball
        self.strike = brick
        return hit.float(), bottom & ~caught

    def observation(self) -> torch.Tensor:
        n = self.num_envs
        obs = torch.zeros(n, 4, 100, dtype=torch.bool, device=self.device)
        obs[:, 0, 90:] = self._eye10[self.paddle]
        obs[:, 1] = self._eye100[(self.ball * self._row_weights).sum(1)]
        obs[:, 2] = self._eye100[(self.last * self._row_weights).sum(1)]
        obs[:, 3] = self.bricks
        return obs.view(n, 4, 10, 10)

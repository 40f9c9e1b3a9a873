"""Freeway, batched: a chicken crosses eight lanes of wrapping traffic, as often as it can in 2500 frames.

Rules (MinAtar v1.0.15 behaviour; each environment is one 10x10 board):

* The chicken stays in column 4 and starts on row 9. ``u``/``d`` move it one row (clamped to rows
  0-9), but only when its move cooldown is 0; a ``u``/``d`` taken then restarts the cooldown at 3
  even if the chicken is already against the edge. The cooldown drops by one at the end of every
  frame, so the chicken can move at most once every three frames.
* Reaching row 0 gives +1 in that frame: the chicken goes straight back to row 9 (it is never seen on
  row 0) and every car gets a new random speed and direction (positions are kept).
* Lane ``i`` (rows 1-8) holds one car. A car has a speed ``s`` in 1..5 and a direction (left or
  right, equally likely); its timer counts down one per frame and, on a frame it reads 0, the car
  moves one column (wrapping around the board's sides) and the timer restarts at ``s``: a speed-``s``
  car moves once every ``s + 1`` frames. New episodes put every car in column 0 with a fresh random
  speed and direction and its timer at ``s``.
* Each frame: the chicken moves, then scores if on row 0, then the cars move. If the chicken's lane
  car is on the chicken's cell before or after its move, the chicken is sent back to row 9.
* The episode terminates on frame 2501 (the frame counter starts at 2500 and the episode ends when
  it goes below 0).

Observation channels, in MinAtar's order: ``chicken``, ``car`` and ``speed1``..``speed5``: a car's
trail (the cell behind it, wrapping) is drawn in the channel of its speed, so the trail shows both
direction and speed. There is no difficulty ramping in this game.

Random numbers: one uniform ``u`` per car gives both its speed and direction: ``k = floor(10 u)``,
speed ``k mod 5 + 1``, moving right when ``k >= 5`` (``u >= 1/2``), else left; that is uniform
over the 10 combinations, as in MinAtar. ``reset`` and ``step`` each draw 8 uniforms per
environment (``step`` needs them only on a scoring frame, but always draws them).

Implementation: the chicken's row, move cooldown and frames left are one ``(N, 3)`` tensor
``chick``; the cars one ``(N, 8, 4)`` tensor ``cars`` holding each car's column, speed, direction
(+-1) and timer (``chicken``, ``cooldown``, ``time_left``, ``car_x``, ``car_speed``, ``car_dir`` and
``car_timer`` are views of them). A car's speed, direction and restarted timer come from ``k`` by
one lookup in a 10-row table, so a reset is two ``where`` calls and a re-roll one.
"""

from __future__ import annotations

import torch
from rlreg.envs.minatar.base import BatchedGame, CounterRNG, register_game

__all__ = ["Freeway"]

_MOVE_COOLDOWN = 3
_TIME_LIMIT = 2500
_CHICKEN_COLUMN = 4
# columns of Freeway.chick and of the last axis of Freeway.cars
_ROW, _COOL, _LEFT = 0, 1, 2
_X, _SPEED, _DIR, _TIMER = 0, 1, 2, 3


@register_game
class Freeway(BatchedGame):
    """Batched MinAtar Freeway (see the module docstring for the rules)."""

    name = "freeway"
    channels = ("chicken", "car", "speed1", "speed2", "speed3", "speed4", "speed5")
    minimal_actions = (0, 2, 4)  # n, u, d
    step_draws = 8
    reset_draws = 8
    state_axes = {"chick": 0, "cars": 0}

    def __init__(self, num_envs: int, rng: CounterRNG, device: torch.device, ramping: bool = True) -> None:
        super().__init__(num_envs, rng, device, ramping)
        n, dev = num_envs, device
        i64 = dict(dtype=torch.int64, device=dev)
        # chicken displacement per action of the full set n, l, u, r, d, f
        self._chicken_move = torch.tensor([0, 0, -1, 0, 1, 0], **i64)
        # first cell of lane i's row in the car channel (1): 100 + 10 (i + 1)
        self._lane_cells = 110 + 10 * torch.arange(8, **i64)
        # a new car from k = floor(10 u): column 0, speed k mod 5 + 1, right when k >= 5, timer = speed
        k = torch.arange(10, **i64)
        self._car_table = torch.stack((0 * k, k % 5 + 1, torch.where(k >= 5, 1, -1), k % 5 + 1), 1)
        self._reroll = torch.tensor([False, True, True, True], device=dev)  # a re-roll keeps the column
        self._chick_start = torch.tensor([9, _MOVE_COOLDOWN, _TIME_LIMIT], **i64)

        self.chick = torch.zeros(n, 3, **i64)
        self.cars = torch.zeros(n, 8, 4, **i64)  # car of lane i is on row i + 1
        self.reset(torch.ones(n, dtype=torch.bool, device=dev))

    # views of chick and cars, by name
    @property
    def chicken(self) -> torch.Tensor:
        """``(N,)`` the chicken's row."""
        return self.chick[:, _ROW]

    @property
    def cooldown(self) -> torch.Tensor:
        """``(N,)`` frames until the chicken may move again."""
        return self.chick[:, _COOL]

    @property
    def time_left(self) -> torch.Tensor:
        """``(N,)`` MinAtar's frame counter (the episode ends when it goes below 0)."""
        return self.chick[:, _LEFT]

    @property
    def car_x(self) -> torch.Tensor:
        """``(N, 8)`` each car's column."""
        return self.cars[:, :, _X]

    @property
    def car_speed(self) -> torch.Tensor:
        """``(N, 8)`` each car's speed, 1..5."""
        return self.cars[:, :, _SPEED]

    @property
    def car_dir(self) -> torch.Tensor:
        """``(N, 8)`` each car's direction, +1 right, -1 left."""
        return self.cars[:, :, _DIR]

    @property
    def car_timer(self) -> torch.Tensor:
        """``(N, 8)`` each car's timer (it moves on a frame the timer reads 0)."""
        return self.cars[:, :, _TIMER]

    def _new_cars(self, u: torch.Tensor) -> torch.Tensor:
        """``(N, 8, 4)`` fresh cars (column 0) from eight uniforms per environment."""
        return self._car_table[(u * 10).long().clamp_(max=9)]

    def reset(self, mask: torch.Tensor, u: torch.Tensor | None = None) -> None:
        new = self._new_cars(self._draw(u, 8, mask))
        self.cars = torch.where(mask[:, None, None], new, self.cars)
        self.chick = torch.where(mask[:, None], self._chick_start, self.chick)

    def step(self, action: torch.Tensor, u: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        chick, cars = self.chick, self.cars
        row, cool = chick[:, _ROW], chick[:, _COOL]
        move = self._chicken_move[action] * (cool == 0)
        row.add_(move).clamp_(0, 9)
        cool.masked_fill_(move != 0, _MOVE_COOLDOWN)

        scored = row == 0
        u = self._draw(u, 8, scored)  # drawn every frame, used on a scoring frame
        if self._any(scored):  # new speeds and directions, timers restarted; columns kept
            cars = self.cars = torch.where(scored[:, None, None] & self._reroll, self._new_cars(u), cars)
            row.masked_fill_(scored, 9)

        x, timer = cars[:, :, _X], cars[:, :, _TIMER]
        lane = (row - 1).clamp_(max=7)[:, None]  # chicken on rows 1-9 here; row 9 has no car
        hit = x.gather(1, lane) == _CHICKEN_COLUMN
        moves = timer == 0
        x.add_(cars[:, :, _DIR] * moves).remainder_(10)
        timer.copy_(torch.where(moves, cars[:, :, _SPEED], timer - 1))
        hit |= x.gather(1, lane) == _CHICKEN_COLUMN
        row.masked_fill_(hit.squeeze(1) & (row <= 8), 9)

        cool.sub_(1).clamp_(min=0)
        left = chick[:, _LEFT].sub_(1)
        return scored.float(), left < 0

    def render(self, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
        # flat cell indices into (7 channels x 100 cells): the chicken, 8 cars, 8 trails
        cars = self.cars
        x = cars[:, :, _X]
        trails = (x - cars[:, :, _DIR]).remainder_(10).add_(self._lane_cells).add_(100 * cars[:, :, _SPEED])
        index = torch.cat(
            (self.chick[:, _ROW : _ROW + 1] * 10 + _CHICKEN_COLUMN, x + self._lane_cells, trails), 1
        )
        obs = self._blank(dtype, out)
        return obs.scatter_(1, index, self._ones(17, dtype)).view(-1, 7, 10, 10)

    def observation(self) -> torch.Tensor:
        return self.render(torch.bool)

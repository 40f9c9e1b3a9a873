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
"""

from __future__ import annotations

import torch

from envs.minatar.base import BatchedGame, CounterRNG, register_game

__all__ = ["Freeway"]

_MOVE_COOLDOWN = 3
_TIME_LIMIT = 2500
_CHICKEN_COLUMN = 4


@register_game
class Freeway(BatchedGame):
    """Batched MinAtar Freeway (see the module docstring for the rules)."""

    name = "freeway"
    channels = ("chicken", "car", "speed1", "speed2", "speed3", "speed4", "speed5")
    minimal_actions = (0, 2, 4)  # n, u, d

    def __init__(self, num_envs: int, rng: CounterRNG, device: torch.device, ramping: bool = True) -> None:
        super().__init__(num_envs, rng, device, ramping)
        n, dev = num_envs, device
        i64 = dict(dtype=torch.int64, device=dev)
        # chicken displacement per action of the full set n, l, u, r, d, f
        self._chicken_move = torch.tensor([0, 0, -1, 0, 1, 0], **i64)
        # first cell of lane i's row in the car channel (1): 100 + 10 (i + 1)
        self._lane_cells = 110 + 10 * torch.arange(8, **i64)

        self.chicken = torch.full((n,), 9, **i64)  # row
        self.cooldown = torch.full((n,), _MOVE_COOLDOWN, **i64)
        self.time_left = torch.full((n,), _TIME_LIMIT, **i64)
        self.car_x = torch.zeros(n, 8, **i64)  # car of lane i is on row i + 1
        self.car_speed = torch.ones(n, 8, **i64)  # 1..5
        self.car_dir = torch.ones(n, 8, **i64)  # +1 right, -1 left
        self.car_timer = torch.ones(n, 8, **i64)
        self.reset(torch.ones(n, dtype=torch.bool, device=dev))

    def _draw_cars(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eight random (speed, direction) pairs per environment, from one uniform each."""
        k = (self.rng.uniform(8) * 10).long().clamp_(max=9)
        return k % 5 + 1, (k >= 5).long() * 2 - 1

    def reset(self, mask: torch.Tensor) -> None:
        speed, direction = self._draw_cars()
        m = mask[:, None]
        self.car_speed = torch.where(m, speed, self.car_speed)
        self.car_dir = torch.where(m, direction, self.car_dir)
        self.car_timer = torch.where(m, speed, self.car_timer)
        self.car_x.masked_fill_(m, 0)
        self.chicken.masked_fill_(mask, 9)
        self.cooldown.masked_fill_(mask, _MOVE_COOLDOWN)
        self.time_left.masked_fill_(mask, _TIME_LIMIT)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        step = self._chicken_move[action] * (self.cooldown == 0)
        chicken = self.chicken.add_(step).clamp_(0, 9)
        self.cooldown.masked_fill_(step != 0, _MOVE_COOLDOWN)

        scored = chicken == 0
        speed, direction = self._draw_cars()
        s = scored[:, None]
        self.car_speed = torch.where(s, speed, self.car_speed)
        self.car_dir = torch.where(s, direction, self.car_dir)
        timer = torch.where(s, speed, self.car_timer)
        chicken.masked_fill_(scored, 9)

        lane = (chicken - 1).clamp_(max=7)[:, None]  # chicken on rows 1-9 here; row 9 has no car
        on_road = chicken <= 8
        hit = self.car_x.gather(1, lane).squeeze(1) == _CHICKEN_COLUMN
        moves = timer == 0
        self.car_x = (self.car_x + self.car_dir * moves) % 10
        self.car_timer = torch.where(moves, self.car_speed, timer - 1)
        hit |= self.car_x.gather(1, lane).squeeze(1) == _CHICKEN_COLUMN
        chicken.masked_fill_(hit & on_road, 9)

        self.cooldown.sub_(1).clamp_(min=0)
        self.time_left -= 1
        return scored.float(), self.time_left < 0

    def observation(self) -> torch.Tensor:
        # flat cell indices into (7 channels x 100 cells): the chicken, 8 cars, 8 trails
        cars = self._lane_cells + self.car_x
        trails = self._lane_cells + (self.car_x - self.car_dir) % 10 + 100 * self.car_speed
        index = torch.cat((self.chicken[:, None] * 10 + _CHICKEN_COLUMN, cars, trails), 1)
        obs = torch.zeros(self.num_envs, 700, dtype=torch.bool, device=self.device)
        return obs.scatter_(1, index, True).view(-1, 7, 10, 10)

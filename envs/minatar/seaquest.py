"""Batched Seaquest (MinAtar ``seaquest``) in torch.

The player steers a two-cell submarine (front cell and a back cell showing its heading) over rows
0..8; row 0 is the surface. Enemies (fish, and subs that shoot) and divers cross the rows 1..8
horizontally; every moving thing keeps its heading, and an enemy or diver leaves a *trail* on the
cell behind it in the observation.

Mechanics, one frame per step, in this order (matching MinAtar v1.0.15):

1. **Spawns.** When the enemy spawn timer is 0 it restarts at the current spawn interval and an
   enemy is proposed: heading right (entering at column 0) or left (column 9) with probability 1/2,
   a sub with probability 1/3 (else a fish), on a uniform row 1..8. The proposal is dropped when an
   enemy heading the other way already occupies that row (so all enemies in a row share a heading).
   When the diver spawn timer is 0 it restarts at 30 and a diver appears the same way (heading 1/2,
   row 1..8). New enemies start with their move timer at the current move interval (subs with their
   shot timer at 10); divers with their move timer at 5.
2. **Player.** ``f`` fires when the cooldown is 0 (a bullet on the sub's cell with the sub's heading;
   cooldown 5); otherwise ``l``/``r`` move one column and set the heading, ``u``/``d`` move one row
   (rows 0..8). Fire during the cooldown does nothing.
3. **Friendly bullets** move one column along their heading (leaving the screen past 0 or 9). A bullet
   landing on an enemy removes both and scores +1: the oldest fish on that cell, else the oldest
   sub.
4. **Divers**, newest first: a diver on the sub's cell is picked up while fewer than 6 are aboard.
   Otherwise a diver whose move timer is 0 moves one column (timer back to 5; leaving the screen
   removes it) and is picked up if it lands on the sub (same cap); else its timer counts down.
5. **Enemy subs**, newest first: one on the player's cell ends the episode. One whose move timer is
   0 moves (timer back to the move interval) and is removed if it leaves the screen; landing on the
   player ends the episode; otherwise landing on a friendly bullet removes both (+1, newest sub
   first when several land on one bullet). Then, whether or not the sub was just removed, its shot
   timer is checked: at 0 it restarts at 10 and an enemy bullet appears on the sub's cell with its
   heading (a bullet off the screen is dropped at once); otherwise it counts down.
6. **Enemy bullets**: one on the player ends the episode; it moves one column along its heading
   (leaving the screen removes it) and ends the episode if it lands on the player.
7. **Enemy fish**: as subs in 5, without shooting.
8. **Timers and oxygen.** Spawn timers and the cooldown count down while positive. Oxygen at or below
   0 ends the episode. Below the surface oxygen drops by 1 per frame. Reaching the surface after
   having been below it ("surfacing") ends the episode if exactly 0 divers are aboard; otherwise:
   with 6 aboard the reward is ``oxygen * 10 // 200`` and the count is set to 0; then the count drops
   by one (**reference quirk, kept:** after a 6-diver surfacing the count is -1, later surfacings take
   it to -2, -3, ...; such counts never equal 0, so surfacing with them never ends the episode, the
   6-diver cap still allows pick-ups, and the diver gauge shows nothing), oxygen refills to 200 and,
   with difficulty ramping, while the spawn interval is above 1 or the move interval above 2, the
   spawn interval drops by 1 and on every second ramp (odd ramp index) the move interval by 1 (from
   20 and 5).

An ended episode still finishes the frame: rewards of the same frame count.

**Batched representation.** Enemies (fish and subs together, with a kind flag), divers and friendly
bullets live in fixed-capacity slot tensors with a validity mask. Each kind fills its slots as a
ring buffer (the k-th spawn of an episode takes slot ``k mod capacity``), so the distance of a slot
behind the ring's head is the entity's age: this gives the reference's list order (oldest first)
wherever it matters: which of several enemies sharing a cell a bullet hits, which of several
enemies landing on one bullet dies, and which divers are picked up when the cap binds. Each slot
tensor has one extra, always-empty scratch slot that receives the writes of environments that spawn
nothing this frame, so spawning is a single indexed write without branches. Slot tensors are
indexed ``(env, slot)`` but stored slot-major (``torch.zeros(slots, N).t()``) with small integer
dtypes, so that per-slot operations and reductions over slots vectorise across environments on the
CPU. Enemy bullets never interact with each other and bullets of one heading in one cell behave
identically, so they are kept as two boolean 10x10 maps (one per heading, flattened) that shift a
column per frame.

**Capacities.** Friendly bullets: 2 (a bullet lives at most 9 frames and shots are at least 5
frames apart, so a slot is always free again when the ring comes back to it). Divers: 2 (a diver
lives at most 59 frames and one spawns every 30). Enemies: :attr:`Seaquest.enemy_slots` = 32: at
most one enemy spawns per frame and it lives at most ``10 * (move interval + 1)`` frames; the move
interval reaches its minimum 2 (lifetime at most 30 frames) at ramp 6 while the spawn interval is
still 14, so 32 spawns always take longer than the oldest occupant lives (in lockstep runs at full
ramping the reference held at most 23 enemies). Were the ring ever to come back to a live enemy,
the new one would replace it; this is counted per environment in ``overflow`` (never reset) so
tests can check that it does not happen.

**Known differences** (none seen in lockstep tests against the reference): the reference removes
list entries by value (``list.remove``), so two entities with identical fields (same cell, heading
and timers) can alias each other in its loops; we always act on the entity being processed. A sub
that leaves the screen on the frame its shot timer reaches 0 "fires" a bullet off-screen in the
reference, which vanishes without effect; we never create it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from rlreg.envs.minatar.base import BatchedGame, CounterRNG, register_game

__all__ = ["Seaquest"]

MAX_OXYGEN = 200
INIT_SPAWN_INTERVAL = 20
DIVER_SPAWN_INTERVAL = 30
INIT_MOVE_INTERVAL = 5
FIRE_COOLDOWN = 5
ENEMY_SHOT_INTERVAL = 10
DIVER_MOVE_INTERVAL = 5
MAX_DIVERS = 6
_TRASH_CELL = 400  # channel 4 (enemy bullets), overwritten whole after the entities are drawn

_I8, _I16 = torch.int8, torch.int16


def _slots(n: int, s: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An ``(n, s)`` zero tensor stored slot-major (column-major)."""
    return torch.zeros(s, n, dtype=dtype, device=device).t()


def _i8(m: torch.Tensor) -> torch.Tensor:
    """A bool tensor as 0/1 int8 (a free reinterpretation)."""
    return m.view(_I8)


def _u8(m: torch.Tensor) -> torch.Tensor:
    """A bool tensor as 0/1 uint8 (a free reinterpretation)."""
    return m.view(torch.uint8)


@register_game
class Seaquest(BatchedGame):
    """MinAtar Seaquest for N environments; see the module docstring for rules and representation."""

    name: ClassVar[str] = "seaquest"
    channels: ClassVar[tuple[str, ...]] = (
        "sub_front",
        "sub_back",
        "friendly_bullet",
        "trail",
        "enemy_bullet",
        "enemy_fish",
        "enemy_sub",
        "oxygen_guage",
        "diver_guage",
        "diver",
    )
    minimal_actions: ClassVar[tuple[int, ...]] = (0, 1, 2, 3, 4, 5)
    enemy_slots: ClassVar[int] = 32  # ring capacities: powers of two
    diver_slots: ClassVar[int] = 2
    bullet_slots: ClassVar[int] = 2
    # 5 uniforms per step (used by environments whose spawn timers are due), none per reset; every
    # state tensor has the environment first (lets MinAtarBatch draw lazily and sub-batch resets)
    step_draws: ClassVar[int] = 5
    reset_draws: ClassVar[int] = 0
    row_constants: ClassVar[tuple[str, ...]] = ("_arange_n", "_zero8", "_nine8", "_en_slot")
    dense_render: ClassVar[bool] = False
    """Render enemies and place their shots through all their slots on CPU too (as on CUDA, where
    finding the live ones would synchronise with the host); both paths give the same results."""
    reset_writes: ClassVar[tuple[str, ...]] = (
        *("sub_x", "sub_y", "oxygen", "divers", "sub_right", "surface", "cooldown", "ramp_index"),
        *("enemy_timer", "diver_timer", "spawn_interval", "move_interval", "en_head", "dv_head"),
        *("fb_head", "en_on", "dv_on", "fb_on", "eb"),
    )
    state_axes: ClassVar[dict[str, int]] = {
        name: 0
        for name in (
            "sub_x",
            "sub_y",
            "oxygen",
            "divers",
            "sub_right",
            "surface",
            "cooldown",
            "ramp_index",
            "enemy_timer",
            "diver_timer",
            "spawn_interval",
            "move_interval",
            "en_head",
            "dv_head",
            "fb_head",
            "en_on",
            "en_sub",
            "en_right",
            "en_x",
            "en_y",
            "en_timer",
            "en_shot",
            "dv_on",
            "dv_right",
            "dv_x",
            "dv_y",
            "dv_timer",
            "fb_on",
            "fb_right",
            "fb_x",
            "fb_y",
            "eb",
        )
    }

    def __init__(self, num_envs: int, rng: CounterRNG, device: torch.device, ramping: bool = True) -> None:
        super().__init__(num_envs, rng, device, ramping)
        n, dev = num_envs, device
        k, d, b = self.enemy_slots + 1, self.diver_slots + 1, self.bullet_slots + 1  # + scratch slot

        def i64() -> torch.Tensor:
            return torch.zeros(n, dtype=torch.int64, device=dev)

        # player and per-environment counters
        self.sub_x, self.sub_y, self.oxygen, self.divers = i64(), i64(), i64(), i64()
        self.sub_right = torch.zeros(n, dtype=torch.bool, device=dev)
        self.surface = torch.zeros(n, dtype=torch.bool, device=dev)
        self.cooldown, self.ramp_index = i64(), i64()
        self.enemy_timer, self.diver_timer = i64(), i64()  # spawn timers
        self.spawn_interval, self.move_interval = i64(), i64()
        self.en_head, self.dv_head, self.fb_head = i64(), i64(), i64()  # ring positions of the next spawn
        self.overflow = i64()  # live enemies replaced by a spawn (diagnostic; not reset)
        # enemies (fish and subs): flags and small integers
        self.en_on, self.en_sub, self.en_right = (_slots(n, k, torch.bool, dev) for _ in range(3))
        self.en_x, self.en_y, self.en_timer, self.en_shot = (_slots(n, k, _I8, dev) for _ in range(4))
        # divers
        self.dv_on, self.dv_right = (_slots(n, d, torch.bool, dev) for _ in range(2))
        self.dv_x, self.dv_y, self.dv_timer = (_slots(n, d, _I8, dev) for _ in range(3))
        # friendly bullets
        self.fb_on, self.fb_right = (_slots(n, b, torch.bool, dev) for _ in range(2))
        self.fb_x, self.fb_y = (_slots(n, b, _I8, dev) for _ in range(2))
        # enemy bullets: flat (heading, row, column) maps, heading 0 = left, 1 = right
        self.eb = torch.zeros(n, 200, dtype=torch.bool, device=dev)
        # constants (per-environment columns compare fast against slot-major tensors)
        self._arange_n = torch.arange(n, dtype=torch.int64, device=dev)
        self._zero8 = torch.zeros(n, 1, dtype=_I8, device=dev)
        self._nine8 = torch.full((n, 1), 9, dtype=_I8, device=dev)
        self._en_slot = _slots(n, k, _I8, dev).add_(torch.arange(k, dtype=_I8, device=dev))
        self._dv_slot = torch.arange(d, dtype=_I8, device=dev)
        self._cols = torch.arange(10, dtype=torch.int64, device=dev)
        self._trash_cell = torch.tensor(_TRASH_CELL, device=dev)
        cells = torch.arange(200, device=dev)
        # after shifting the flat maps by one cell: column 9 of the left map and column 0 of the right
        # map received a neighbouring row's bullet, which is off the screen instead
        self._eb_keep = torch.where(cells < 100, cells % 10 != 9, cells % 10 != 0)

    # ------------------------------------------------------------------ reset

    def reset(self, mask: torch.Tensor, u: torch.Tensor | None = None) -> None:
        """Fresh episode where ``mask``: sub at (x 5, row 0) facing left, on the surface, 200 oxygen,
        no divers or entities, timers and difficulty at their starting values. (Slots are emptied by
        their validity flags; the other fields of empty slots are never read.)"""
        m = mask
        for t, v in (
            (self.sub_x, 5),
            (self.sub_y, 0),
            (self.oxygen, MAX_OXYGEN),
            (self.divers, 0),
            (self.cooldown, 0),
            (self.ramp_index, 0),
            (self.enemy_timer, INIT_SPAWN_INTERVAL),
            (self.diver_timer, DIVER_SPAWN_INTERVAL),
            (self.spawn_interval, INIT_SPAWN_INTERVAL),
            (self.move_interval, INIT_MOVE_INTERVAL),
            (self.en_head, 0),
            (self.dv_head, 0),
            (self.fb_head, 0),
        ):
            t.masked_fill_(m, v)
        self.sub_right &= ~m
        self.surface |= m
        keep = ~m[:, None]
        for t in (self.en_on, self.dv_on, self.fb_on, self.eb):
            t &= keep

    # ------------------------------------------------------------------ step

    def _spawn(self, u: torch.Tensor) -> None:
        """Enemy and diver spawns (step 1) from the frame's uniforms ``u`` (N, 5)."""
        ar, k = self._arange_n, self.enemy_slots
        # enemy
        due = self.enemy_timer == 0
        self.enemy_timer.copy_(torch.where(due, self.spawn_interval, self.enemy_timer))
        right, is_sub = u[:, 0] < 0.5, u[:, 1] < 1 / 3
        row = 1 + (u[:, 2] * 8).long().clamp_(max=7)
        row8 = row.to(_I8)
        blocked = (
            _i8(self.en_on & (self.en_y == row8[:, None]) & (self.en_right != right[:, None])).amax(1) > 0
        )
        spawn = due & ~blocked
        at = (ar, torch.where(spawn, self.en_head, k))  # k: the scratch slot
        self.overflow.add_((self.en_on[at] & spawn).long())
        self.en_on[at] = spawn
        self.en_sub[at] = is_sub
        self.en_right[at] = right
        self.en_x[at] = torch.where(right, 0, 9).to(_I8)
        self.en_y[at] = row8
        self.en_timer[at] = self.move_interval.to(_I8)
        self.en_shot[at] = ENEMY_SHOT_INTERVAL
        self.en_head.add_(spawn.long()).bitwise_and_(k - 1)
        # diver
        due = self.diver_timer == 0
        self.diver_timer.masked_fill_(due, DIVER_SPAWN_INTERVAL)
        right = u[:, 3] < 0.5
        row = 1 + (u[:, 4] * 8).long().clamp_(max=7)
        at = (ar, torch.where(due, self.dv_head, self.diver_slots))
        self.dv_on[at] = due
        self.dv_right[at] = right
        self.dv_x[at] = torch.where(right, 0, 9).to(_I8)
        self.dv_y[at] = row.to(_I8)
        self.dv_timer[at] = DIVER_MOVE_INTERVAL
        self.dv_head.add_(due.long()).bitwise_and_(self.diver_slots - 1)

    def _player(self, action: torch.Tensor) -> None:
        """Fire or move (step 2)."""
        fire = (action == 5) & (self.cooldown == 0)
        self.cooldown.masked_fill_(fire, FIRE_COOLDOWN)
        at = (self._arange_n, torch.where(fire, self.fb_head, self.bullet_slots))
        self.fb_on[at] = fire
        self.fb_right[at] = self.sub_right
        self.fb_x[at] = self.sub_x.to(_I8)
        self.fb_y[at] = self.sub_y.to(_I8)
        self.fb_head.add_(fire.long()).bitwise_and_(self.bullet_slots - 1)
        left, right = action == 1, action == 3
        self.sub_x.add_(right.long() - left.long()).clamp_(0, 9)
        self.sub_right.copy_((self.sub_right | right) & ~left)
        self.sub_y.add_((action == 4).long() - (action == 2).long()).clamp_(0, 8)

    def _bullet(self, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Friendly bullet slot ``b``: its column, row (``(N, 1)`` int8) and validity (``(N, 1)``)."""
        return self.fb_x[:, b : b + 1], self.fb_y[:, b : b + 1], self.fb_on[:, b : b + 1]

    def _enemies(self, sx: torch.Tensor, sy: torch.Tensor, newness: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Steps 5 and 7 (movement, contacts, bullet hits) for subs and fish in one pass.

        The reference updates all subs, then enemy bullets, then all fish; enemies of one kind do
        not affect each other except through the friendly bullets they land on, and enemy bullets
        affect neither, so one pass over both kinds is the same provided a bullet landed on by a sub
        and a fish goes to the sub (subs come first), and among landers of one kind to the newest.
        Returns ``(terminal (N,), left_screen (N, K+1), kills (N,))``.
        """
        active = self.en_on
        same_row = self.en_y == sy
        terminal = _i8(active & same_row & (self.en_x == sx)).amax(1) > 0
        moving = active & (self.en_timer == self._zero8)
        mv = _i8(moving)
        self.en_x += (_i8(self.en_right) * 2 - 1) * mv
        self.en_timer += mv * (self.move_interval.to(_I8)[:, None] + 1) - _i8(active)
        out = moving & ((self.en_x < self._zero8) | (self.en_x > self._nine8))
        landed = moving & ~out
        on_player = landed & same_row & (self.en_x == sx)
        terminal |= _i8(on_player).amax(1) > 0
        landed &= ~on_player
        priority = newness + _i8(self.en_sub) * self.enemy_slots  # subs above fish, newer above older
        kills = torch.zeros_like(self.sub_x)
        for b in range(self.bullet_slots):
            bx, by, bon = self._bullet(b)
            lands = landed & (self.en_x == bx) & (self.en_y == by) & bon
            best = (priority * _i8(lands)).amax(1, keepdim=True)
            hit = best[:, 0] > 0
            self.en_on &= ~(lands & (priority == best))
            self.fb_on[:, b] &= ~hit
            kills += hit
        self.en_on &= ~out
        return terminal, out, kills

    def step(self, action: torch.Tensor, u: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance one frame (rules in the module docstring); returns ``(reward, terminal)``.

        Draws exactly 5 uniforms per environment per frame (enemy heading, kind, row; diver heading,
        row), used or not.
        """
        k = self.enemy_slots
        due = (self.enemy_timer == 0) | (self.diver_timer == 0)
        self._spawn(self._draw(u, 5, due))
        self._player(action)
        sx, sy = self.sub_x.to(_I8)[:, None], self.sub_y.to(_I8)[:, None]
        # ring age: 1 (oldest possible) .. k (newest), per enemy slot
        newness = ((self._en_slot - self.en_head.to(_I8)[:, None]) & (k - 1)) + 1
        reward = self._friendly_bullets(newness)
        self._move_divers(sx, sy)
        terminal = self._enemies_and_shots(sx, sy, newness, reward)
        self._enemy_bullets(terminal)
        self._timers_and_oxygen(reward, terminal)
        return reward.to(torch.float32), terminal

    def _friendly_bullets(self, newness: torch.Tensor) -> torch.Tensor:
        """Step 3: friendly bullets move and hit; returns the frame's reward so far (N,) int64."""
        k = self.enemy_slots
        # 3. friendly bullets move; each hits the oldest fish on its new cell, else the oldest sub
        self.fb_x += (_i8(self.fb_right) * 2 - 1) * _i8(self.fb_on)
        self.fb_on &= (self.fb_x >= 0) & (self.fb_x <= 9)
        priority = (k + 1 - newness) + _i8(~self.en_sub) * k  # fish above subs, older above newer
        reward = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        for b in range(self.bullet_slots):
            bx, by, bon = self._bullet(b)
            match = self.en_on & (self.en_x == bx) & (self.en_y == by) & bon
            best = (priority * _i8(match)).amax(1, keepdim=True)
            hit = best[:, 0] > 0
            self.en_on &= ~(match & (priority == best))
            self.fb_on[:, b] &= ~hit
            reward += hit.long()
        return reward

    def _move_divers(self, sx: torch.Tensor, sy: torch.Tensor) -> None:
        """Step 4: diver pick-ups and drift (``sx``, ``sy``: the sub's cell, ``(N, 1)`` int8)."""
        # 4. divers: pick-ups (newest first, while fewer than 6 are aboard), else drift
        on = self.dv_on
        at_sub = on & (self.dv_x == sx) & (self.dv_y == sy)
        moving = on & (self.dv_timer == 0)
        self.dv_x += (_i8(self.dv_right) * 2 - 1) * _i8(moving)
        out = moving & ((self.dv_x < 0) | (self.dv_x > 9))
        lands = moving & ~out & (self.dv_x == sx) & (self.dv_y == sy)
        wants = at_sub | lands
        age = (self._dv_slot - self.dv_head.to(_I8)[:, None]) & (self.diver_slots - 1)  # larger = newer
        ahead = torch.zeros_like(age)  # how many newer divers want to be picked up
        for j in range(self.diver_slots):
            ahead += _i8(wants[:, j : j + 1] & (age[:, j : j + 1] > age))
        picked = wants & (ahead < (MAX_DIVERS - self.divers).clamp(max=127).to(_I8)[:, None])
        self.divers += _i8(picked).sum(1)
        self.dv_timer += _i8(moving) * (DIVER_MOVE_INTERVAL + 1) - _i8(on)
        self.dv_on &= ~(out | picked)

    def _enemies_and_shots(
        self, sx: torch.Tensor, sy: torch.Tensor, newness: torch.Tensor, reward: torch.Tensor
    ) -> torch.Tensor:
        """Steps 5 and 7 (:meth:`_enemies`, kills added to ``reward`` in place) and the subs' shots;
        returns the frame's terminal flags so far (N,)."""
        # 5 + 7. enemy subs and fish; subs' shots (subs removed this frame still shoot; shots off the
        # screen vanish)
        subs = self.en_on & self.en_sub
        terminal, out, kills = self._enemies(sx, sy, newness)
        reward += kills
        shoot = subs & (self.en_shot == self._zero8)
        self.en_shot += _i8(shoot) * (ENEMY_SHOT_INTERVAL + 1) - _i8(subs)
        fired = shoot & ~out  # a shot from a sub that just left the screen is dropped
        if self._compact:  # the few shooters, found on the host
            slot, env = fired.t().nonzero(as_tuple=True)  # slot-major storage: read in order
            cell = self.en_y[env, slot].long() * 10 + self.en_x[env, slot].long()
            self.eb.view(-1)[env * 200 + cell + 100 * self.en_right[env, slot].long()] = True
        else:  # an off-screen sub's shot lands on a neighbouring row's cell with value 0: no effect
            cell = (self.en_y * 10 + self.en_x).long() + self.en_right.long() * 100
            self.eb.view(torch.uint8).scatter_reduce_(1, cell, _u8(fired), "amax")
        return terminal

    def _enemy_bullets(self, terminal: torch.Tensor) -> None:
        """Step 6: enemy bullets hit the player (``terminal`` updated in place) and move."""
        # 6. enemy bullets
        sub_cell = (self.sub_y * 10 + self.sub_x)[:, None]
        player = torch.cat([sub_cell, sub_cell + 100], 1)
        terminal |= self.eb.gather(1, player).any(1)
        moved = torch.zeros_like(self.eb)
        moved[:, :99] = self.eb[:, 1:100]  # heading left
        moved[:, 101:] = self.eb[:, 100:199]  # heading right
        self.eb.copy_(moved & self._eb_keep)
        terminal |= self.eb.gather(1, player).any(1)

    def _timers_and_oxygen(self, reward: torch.Tensor, terminal: torch.Tensor) -> None:
        """Step 8: timers, oxygen, surfacing and difficulty ramping (``reward``, ``terminal`` in place)."""
        # 8. timers, oxygen, surfacing
        self.enemy_timer.sub_((self.enemy_timer > 0).long())
        self.diver_timer.sub_((self.diver_timer > 0).long())
        self.cooldown.sub_((self.cooldown > 0).long())
        terminal |= self.oxygen <= 0
        below = self.sub_y > 0
        self.oxygen.sub_(below.long())
        surfacing = ~below & ~self.surface
        self.surface &= ~below
        terminal |= surfacing & (self.divers == 0)
        ok = surfacing & (self.divers != 0)
        full = ok & (self.divers == MAX_DIVERS)
        reward += torch.where(full, self.oxygen * 10 // MAX_OXYGEN, 0)
        self.divers.masked_fill_(full, 0).sub_(ok.long())
        self.oxygen.masked_fill_(ok, MAX_OXYGEN)
        self.surface |= ok
        if self.ramping:
            ramp = ok & ((self.spawn_interval > 1) | (self.move_interval > 2))
            self.move_interval.sub_((ramp & (self.move_interval > 2) & (self.ramp_index % 2 == 1)).long())
            self.spawn_interval.sub_((ramp & (self.spawn_interval > 1)).long())
            self.ramp_index.add_(ramp.long())

    @property
    def _compact(self) -> bool:
        """Handle enemies through their live slots only (found with a host ``nonzero``): CPU only."""
        return self.device.type == "cpu" and not self.dense_render

    # ------------------------------------------------------------------ observation

    def observation(self) -> torch.Tensor:
        """``(N, 10, 10, 10)`` bool in :attr:`channels` order (see :meth:`render`)."""
        return self.render(torch.bool)

    def render(self, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
        """The observation as ``(N, 10, 10, 10)`` 0/1 values of ``dtype`` (in ``out`` when given).

        Gauges are on row 9: oxygen fills ``max(0, oxygen) * 10 // 200`` cells from the left; the
        diver gauge fills ``divers`` cells ending at column 8 (nothing for 0 or negative counts).
        Entities are one scatter of ones at their cells; entities not drawn (empty slots, trails off
        the screen) are sent to a cell of the enemy-bullet channel, which is written whole after.
        """
        n = self.num_envs
        zero, nine = self._zero8, self._nine8
        sx, sy = self.sub_x.to(_I8)[:, None], self.sub_y.to(_I8)[:, None]
        back = sx + 1 - _i8(self.sub_right[:, None]) * 2
        dv_back = self.dv_x + 1 - _i8(self.dv_right) * 2
        # (channel, column, row, drawn?) per group of entities
        groups = [
            (0, sx, sy, None),
            (1, back, sy, (back >= zero) & (back <= nine)),
            (2, self.fb_x, self.fb_y, self.fb_on),
            (3, dv_back, self.dv_y, self.dv_on & (dv_back >= zero) & (dv_back <= nine)),
            (9, self.dv_x, self.dv_y, self.dv_on),
        ]
        compact = self._compact
        if not compact:  # enemies through their slots (no host synchronisation)
            en_back = self.en_x + 1 - _i8(self.en_right) * 2
            groups += [
                (3, en_back, self.en_y, self.en_on & (en_back >= zero) & (en_back <= nine)),
                (5, self.en_x, self.en_y, self.en_on & ~self.en_sub),
                (6, self.en_x, self.en_y, self.en_on & self.en_sub),
            ]
        # built slot-major like the slot tensors (contiguous writes), scattered environment-major
        index = torch.empty(sum(g[1].shape[1] for g in groups), n, dtype=torch.int64, device=self.device)
        row = 0
        for channel, x, y, on in groups:
            part = index[row : row + x.shape[1]]
            row += x.shape[1]
            cell = (y * 10 + x).t()  # int8: at most 100
            if on is None:
                part.copy_(cell).add_(100 * channel)
            else:
                torch.where(on.t(), cell.long().add_(100 * channel), self._trash_cell, out=part)
        flat = self._blank(dtype, out)
        flat.scatter_(1, index.t(), 1)
        if compact:  # enemies: only the live ones (a few of the 33 slots), found on the host
            slot, env = self.en_on.t().nonzero(as_tuple=True)  # slot-major storage: read in order
            ex, ey = self.en_x[env, slot].long(), self.en_y[env, slot].long()
            base = env * 1000 + ey * 10
            body = base + ex + 500 + 100 * self.en_sub[env, slot].long()  # fish: 5, subs: 6
            eb = ex + 1 - 2 * self.en_right[env, slot].long()
            trail = torch.where((eb >= 0) & (eb <= 9), base + eb + 300, env * 1000 + _TRASH_CELL)
            flat.view(-1)[torch.cat((body, trail))] = 1
        obs = flat.view(n, 10, 10, 10)
        left, right = self.eb.view(n, 2, 10, 10).unbind(1)
        obs[:, 4] = left | right
        obs[:, 7, 9] = self._cols < (self.oxygen.clamp(min=0) * 10 // MAX_OXYGEN)[:, None]
        obs[:, 8, 9] = (self._cols >= 9 - self.divers[:, None]) & (self._cols < 9)
        return obs

"""Shared machinery of the batched MinAtar games: the game interface, device-independent random
numbers, sticky actions and automatic reset.

A game (:class:`BatchedGame` subclass) holds the state of N environments as tensors on one device
and advances all of them with tensor operations; it never loops over environments in Python.
:class:`MinAtarBatch` wraps a game with the parts every game shares (MinAtar semantics):

* the full 6-action set ``n, l, u, r, d, f`` by default (``minimal_actions=True`` maps a game's
  minimal set onto it);
* sticky actions: with probability ``sticky_action_prob`` (0.1) the environment repeats its
  *previously executed* action instead of the chosen one; that last action starts at 0 (no-op) and
  is **not** reset between episodes;
* automatic reset: an environment whose episode ended starts a new one within the same ``step``
  (Gymnasium's ``SAME_STEP`` autoreset); its final observation is returned separately;
* an optional ``max_episode_steps`` truncation (MinAtar has none; DVW's runs used 10 000).

Random numbers come from :class:`CounterRNG`, a counter-based hash (murmur3's 32-bit finaliser over
the seed, the environment index and a per-environment draw counter) computed with int64 tensor
arithmetic, so CPU and CUDA produce identical trajectories for the same seed, and environment i's
stream does not depend on how many environments run beside it.

Speed (CPU, one thread; the cost of a step is mostly the number of tensor operations at small N and
memory traffic at large N): :class:`MinAtarBatch` makes one random draw per step for stickiness and
the game together, renders each observation once, directly in ``obs_dtype`` into an output tensor
reused from an earlier step when the caller no longer holds it, skips the reset when no episode
ended and, for large batches, resets only the environments that ended (on a sub-batch) and
computes only the random values in use. Games store per-environment state in few, packed tensors,
mostly with the environment index last, so that per-environment values broadcast along the outer
axis (which vectorises; broadcasting along the inner axis does not, nor does ``torch.where``).
None of this changes a trajectory: every path gives bit-identical results.
"""

from __future__ import annotations

import sys
from typing import ClassVar

import torch

from rlreg.errors import RlregError, check

__all__ = ["ACTIONS", "BatchedGame", "CounterRNG", "MinAtarBatch", "Uniforms", "bool_to", "resolve_device"]

ACTIONS = ("n", "l", "u", "r", "d", "f")
"""MinAtar's full action set, in its order: no-op, left, up, right, down, fire."""

_M32 = 0xFFFFFFFF


def _fmix32(h: torch.Tensor) -> torch.Tensor:
    """murmur3's 32-bit finaliser on int64 tensors holding values in [0, 2^32)."""
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & _M32  # int64 products wrap modulo 2^64; the low 32 bits are exact
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


class CounterRNG:
    """Per-environment random streams that are identical on every device.

    Draw ``j`` of environment ``i`` is ``fmix32(fmix32(fmix32(seed) ^ i) ^ counter_i)``, turned into
    a float32 in [0, 1) from its top 24 bits. Each call advances the drawing environments' counters
    by the number of values drawn.
    """

    def __init__(self, num_envs: int, seed: int, device: torch.device) -> None:
        self.device = device
        key = _fmix32(torch.tensor(int(seed) & _M32, dtype=torch.int64, device=device))
        self.key = _fmix32(key ^ torch.arange(num_envs, dtype=torch.int64, device=device))
        self.counter = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self._offsets: dict[int, torch.Tensor] = {}  # arange(n), one per draw size

    def uniform(self, n: int) -> torch.Tensor:
        """``(N, n)`` float32 uniforms in [0, 1), one row per environment."""
        u = self._values(self.key, self.counter, n)
        self.counter += n
        return u

    def defer(self, n: int) -> Uniforms:
        """Advance every counter by ``n`` as :meth:`uniform` would, but compute the values only when
        (and for the rows) asked: see :class:`Uniforms`."""
        u = Uniforms(n, rng=self, start=self.counter.clone())
        self.counter += n
        return u

    def _values(self, key: torch.Tensor, counter: torch.Tensor, n: int) -> torch.Tensor:
        """The ``n`` draws from ``counter`` on of the environments whose keys are ``key``."""
        offsets = self._offsets.get(n)
        if offsets is None:
            offsets = self._offsets[n] = torch.arange(n, dtype=torch.int64, device=self.device)
        c = (counter[:, None] + offsets) & _M32
        h = _fmix32(_fmix32(key[:, None] ^ c))
        return (h >> 8).to(torch.float32).mul_(1.0 / (1 << 24))

    def integers(self, high: int, n: int = 1) -> torch.Tensor:
        """``(N, n)`` int64 uniform on ``[0, high)``."""
        return (self.uniform(n) * high).long().clamp_(max=high - 1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"key": self.key.clone(), "counter": self.counter.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.key.copy_(state["key"])
        self.counter.copy_(state["counter"])


class Uniforms:
    """``n`` uniforms per environment, drawn (counters advanced) but computed on demand.

    The draws are counter-based, so any subset of environments can be computed alone and gives the
    values a full draw would: :meth:`rows` computes the given environments' draws, :meth:`masked`
    a full ``(N, n)`` tensor correct on the rows of a mask (on CPU only those rows are computed;
    elsewhere all are, which needs no device synchronisation). Built from a tensor (``values``),
    it just hands that out.
    """

    def __init__(
        self,
        n: int,
        rng: CounterRNG | None = None,
        start: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> None:
        self.n, self.rng, self.start, self.values = n, rng, start, values

    def all(self) -> torch.Tensor:
        """``(N, n)``: every environment's draws."""
        if self.values is None:
            self.values = self.rng._values(self.rng.key, self.start, self.n)
        return self.values

    def rows(self, rows: torch.Tensor) -> torch.Tensor:
        """``(len(rows), n)``: the draws of the environments ``rows``."""
        if self.values is not None:
            return self.values[rows]
        return self.rng._values(self.rng.key[rows], self.start[rows], self.n)

    def masked(self, mask: torch.Tensor) -> torch.Tensor:
        """``(N, n)``, equal to :meth:`all` on the rows where ``mask`` is True (others arbitrary)."""
        if self.values is not None or mask.device.type != "cpu":
            return self.all()
        rows = mask.nonzero().squeeze(1)
        out = torch.zeros(mask.shape[0], self.n, dtype=torch.float32, device=mask.device)
        if rows.numel():
            out[rows] = self.rows(rows)
        return out


class BatchedGame:
    """One MinAtar game for N environments, state as tensors (subclasses implement the rules).

    Subclasses set ``name``, ``channels`` (observation channel names, in MinAtar's order) and
    ``minimal_actions`` (indices into :data:`ACTIONS`), and implement:

    * ``reset(mask)``: put the environments where ``mask`` is True into a fresh episode (all
      their state, including difficulty ramping; not the sticky last action, which is not theirs);
      the other environments' state must stay exactly as it was;
    * ``step(action)``: advance every environment by one frame with ``action`` (``(N,)`` int64 in
      the full set, after stickiness) and return ``(reward (N,) float32, terminal (N,) bool)``;
    * ``observation()``: ``(N, C, 10, 10)`` bool, channels first.

    Randomness comes only from ``self.rng`` (draw a fixed number of values per step for every
    environment, whether needed or not, so streams stay aligned and shapes static).

    Optional, for speed: a game that declares ``step_draws`` and ``reset_draws`` (the uniforms per
    environment that one ``step`` and one ``reset`` call draw) accepts them pre-drawn as
    ``step(action, u)`` and ``reset(mask, u)`` (``u``: ``(N, k)``, the values its own ``rng.uniform(k)``
    call would have returned), so :class:`MinAtarBatch` makes one draw per step for stickiness, step
    and reset together; and ``render(dtype, out)`` may write the observation in another dtype
    directly (into ``out`` when given, whose contents are arbitrary before the call).
    """

    name: ClassVar[str] = ""
    channels: ClassVar[tuple[str, ...]] = ()
    minimal_actions: ClassVar[tuple[int, ...]] = tuple(range(6))
    step_draws: ClassVar[int | None] = None
    reset_draws: ClassVar[int | None] = None
    state_axes: ClassVar[dict[str, int]] = {}
    """The state tensors (attribute names) with their environment axis, all of them; lets
    :meth:`reset_rows` reset a few environments on a sub-batch (empty: it falls back to ``reset``)."""
    reset_writes: ClassVar[tuple[str, ...] | None] = None
    """The state tensors ``reset`` writes (None: all of ``state_axes``); :meth:`reset_rows` copies
    only these back."""
    row_constants: ClassVar[tuple[str, ...]] = ()
    """Constant tensors with one identical row per environment (axis 0), e.g. ``arange(N)`` or a
    column of zeros; a sub-batch takes their first rows."""

    def __init__(self, num_envs: int, rng: CounterRNG, device: torch.device, ramping: bool = True) -> None:
        self.num_envs, self.rng, self.device, self.ramping = num_envs, rng, device, ramping

    def reset(self, mask: torch.Tensor) -> None:
        raise NotImplementedError

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def observation(self) -> torch.Tensor:
        raise NotImplementedError

    def render(self, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
        """The observation as ``(N, C, 10, 10)`` 0/1 values of ``dtype``, in ``out`` when given (its
        contents before the call do not matter) else in a new tensor."""
        obs = self.observation()
        if out is None:
            return bool_to(obs, dtype)
        return out.copy_(obs if dtype == torch.bool else obs.view(torch.uint8))  # converts on the way

    def _blank(self, dtype: torch.dtype, out: torch.Tensor | None, cells: int | None = None) -> torch.Tensor:
        """``out`` (or a new tensor) as ``(N, C * 100)``, its first ``cells`` cells per environment
        (default: all) zeroed."""
        size = (self.num_envs, len(self.channels) * 100)
        if out is None:
            out = torch.empty(size, dtype=dtype, device=self.device)
        out = out.view(size)
        (out if cells is None else out[:, :cells]).zero_()
        return out

    def reset_rows(self, rows: torch.Tensor, u: torch.Tensor | None = None) -> BatchedGame | None:
        """``reset`` for the environments ``rows`` (distinct indices; ``u``: their pre-drawn uniforms,
        required when ``reset_draws`` > 0), costing work in proportion to ``len(rows)``, not N.

        Runs ``reset`` on a sub-batch game holding only those rows of the state tensors (sharing the
        constants), then writes the rows back, so it does exactly what ``reset`` with the mask of
        ``rows`` does, without operations over every environment. Returns that sub-batch game (its
        ``render`` gives the new observations of ``rows``), or None when the game has no
        ``state_axes`` and the whole batch was reset through the mask.
        """
        if not self.state_axes:
            mask = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
            self.reset(mask.index_fill_(0, rows, True), u)
            return None
        sub = object.__new__(type(self))
        sub.__dict__.update(self.__dict__)
        sub.__dict__.pop("_ones_cache", None)
        m = sub.num_envs = int(rows.numel())
        for name in self.row_constants:
            setattr(sub, name, getattr(self, name)[:m])
        for name, axis in self.state_axes.items():
            setattr(sub, name, getattr(self, name).index_select(axis, rows))
        sub.reset(torch.ones(m, dtype=torch.bool, device=self.device), u)
        for name in self.state_axes if self.reset_writes is None else self.reset_writes:
            getattr(self, name).index_copy_(self.state_axes[name], rows, getattr(sub, name))
        return sub

    def _draw(
        self, u: torch.Tensor | Uniforms | None, n: int, needed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """This step's (or reset's) ``n`` uniforms per environment: drawn here when ``u`` is None,
        else the pre-drawn ``u``; of :class:`Uniforms`, only the rows where ``needed`` (default all)
        are guaranteed (on CPU only those are computed)."""
        if u is None:
            return self.rng.uniform(n)
        if isinstance(u, Uniforms):
            return u.all() if needed is None else u.masked(needed)
        return u

    def _ones(self, k: int, dtype: torch.dtype) -> torch.Tensor:
        """A cached ``(N, k)`` tensor of ones (a stride-0 view), the values rendering scatters."""
        cache = self.__dict__.setdefault("_ones_cache", {})
        ones = cache.get((k, dtype))
        if ones is None:
            ones = torch.ones(1, k, dtype=dtype, device=self.device).expand(self.num_envs, k)
            cache[k, dtype] = ones
        return ones

    def _any(self, mask: torch.Tensor) -> bool:
        """False only when ``mask`` is known to hold no True: on CPU (where reading it is free), so
        work for rare events can be skipped; elsewhere always True (no device synchronisation)."""
        return self.device.type != "cpu" or bool(mask.any())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every state tensor (attributes that are tensors), for exact save/restore."""
        return {k: v.clone() for k, v in vars(self).items() if isinstance(v, torch.Tensor)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        mine = self.state_dict()
        check(
            set(state) == set(mine) and all(state[k].shape == mine[k].shape for k in mine),
            f"saved {self.name} state does not fit this version's {self.name} (state layout "
            f"{sorted(state)} vs {sorted(mine)}): it was written by another rlreg version",
            "restart the run, or resume it with the rlreg version that saved it",
        )
        for k, v in state.items():
            getattr(self, k).copy_(v)


def bool_to(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool tensor as ``dtype`` (0/1). Via a uint8 view: on CPU, bool to float has no vectorised
    path and is several times slower than uint8 to float."""
    if dtype == torch.bool:
        return x
    return x.view(torch.uint8).to(dtype)


def _unshared(pool: list[torch.Tensor], i: int) -> tuple[int, int, int]:
    """Reference counts of ``pool[i]``: its Python object, its tensor and its memory (storage)."""
    t = pool[i]
    return sys.getrefcount(t), t._use_count(), torch._C._storage_Use_Count(t.untyped_storage()._cdata)


def _reference_counts_work() -> tuple[int, int, int] | None:
    """The counts :func:`_unshared` gives a tensor only a pool holds, if a Python reference, a view
    and a numpy alias each change them (else None: buffers are then never reused)."""
    try:
        pool = [torch.zeros(2)]
        alone = _unshared(pool, 0)
        ref = pool[0]
        seen = _unshared(pool, 0) != alone
        del ref
        view = pool[0][1:]
        seen &= _unshared(pool, 0) != alone
        del view
        array = pool[0].numpy()
        seen &= _unshared(pool, 0) != alone
        del array
        return alone if seen and _unshared(pool, 0) == alone else None
    except (AttributeError, RuntimeError, TypeError):  # private APIs gone: no reuse
        return None


_UNSHARED_COUNTS = _reference_counts_work()
_REUSE_BYTES = 1 << 18  # outputs below this come from the heap cheaply anyway
_allocator_warmed = False


def _warm_allocator() -> None:
    """Once per process: allocate and free (without touching) one block just under 32 MiB.

    glibc's malloc maps each block over its mmap threshold (128 KiB at first) fresh from the system
    and unmaps it when freed, so every step's temporaries of a large batch would fault their pages
    in again (a fault per 4 KiB, more than the rest of a step costs). Freeing a mapped block raises
    that threshold to the block's size (up to 32 MiB) and the heap's trim threshold to twice it:
    from then on such blocks are reused from the heap. Other allocators just see one allocation.
    """
    global _allocator_warmed
    if not _allocator_warmed:
        _allocator_warmed = True
        block = torch.empty(31 << 20, dtype=torch.uint8)
        del block


GAMES: dict[str, type[BatchedGame]] = {}


def resolve_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device``; a clear :class:`RlregError` if it is not one, or names CUDA
    on a machine without it (instead of torch's raw "Torch not compiled with CUDA enabled")."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise RlregError(
            f"device {device!r} is not a torch device", "use device='cpu' or device='cuda'"
        ) from None
    if dev.type == "cuda":
        check(
            torch.cuda.is_available(),
            f"device {str(device)!r} requested but CUDA is not available",
            "use device='cpu', or install a CUDA build of torch on a GPU machine",
        )
        count = torch.cuda.device_count()
        check(
            dev.index is None or dev.index < count,
            f"device {str(device)!r} requested but this machine has {count} CUDA device(s)",
            f"use device='cuda' or an index below {count}",
        )
    return dev


def register_game(cls: type[BatchedGame]) -> type[BatchedGame]:
    GAMES[cls.name] = cls
    return cls


class MinAtarBatch:
    """N environments of one game, stepped together on ``device`` (tensors in, tensors out).

    ``step(actions)`` returns ``(obs, reward, terminated, truncated, final_obs)``: ``obs`` is the
    observation after the step, already the first observation of a new episode where the episode
    ended; ``final_obs`` is the observation the ended episodes ended on (rows of the others are
    their ``obs``). Observations are ``(N, C, 10, 10)`` in ``obs_dtype`` (float32 by default), two
    distinct tensors each step. On CPU their memory may be that of observations returned by earlier
    steps which the caller no longer references (no Python reference, view or numpy alias left);
    tensors the caller keeps are never written again.
    """

    sparse_reset_min_envs: int = 256
    """On CPU, from this many environments on, a step whose ended episodes are at most a quarter
    of them resets those on a sub-batch (:meth:`BatchedGame.reset_rows`), fewer use the mask; and
    the game's random draws are computed only for the environments that use them (:class:`Uniforms`)
    instead of all at once. Either way the results are the same."""

    def __init__(
        self,
        game: str,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        sticky_action_prob: float = 0.1,
        difficulty_ramping: bool = True,
        minimal_actions: bool = False,
        max_episode_steps: int | None = None,
        obs_dtype: torch.dtype = torch.float32,
    ) -> None:
        from rlreg.envs import minatar as _games  # noqa: F401  (registers the games)

        check(game in GAMES, f"unknown MinAtar game {game!r}", f"choose one of: {', '.join(sorted(GAMES))}")
        check(
            isinstance(num_envs, int) and num_envs >= 1,
            f"num_envs must be an integer >= 1, got {num_envs!r}",
            "use e.g. num_envs=64",
        )
        check(
            0.0 <= sticky_action_prob < 1.0,
            f"sticky_action_prob must be in [0, 1), got {sticky_action_prob!r}",
            "use 0.1 (MinAtar's default) or 0 for none",
        )
        check(
            max_episode_steps is None or (isinstance(max_episode_steps, int) and max_episode_steps >= 1),
            f"max_episode_steps must be None or an integer >= 1, got {max_episode_steps!r}",
            "use None (MinAtar has no limit) or e.g. 10000 (DVW's runs)",
        )
        self.device = resolve_device(device)
        self.num_envs, self.seed = num_envs, seed
        self.sticky_action_prob = float(sticky_action_prob)
        self.max_episode_steps = max_episode_steps
        self.obs_dtype = obs_dtype
        self.rng = CounterRNG(num_envs, seed, self.device)
        self.game = GAMES[game](num_envs, self.rng, self.device, ramping=difficulty_ramping)
        self.action_map = torch.tensor(
            self.game.minimal_actions if minimal_actions else range(len(ACTIONS)),
            dtype=torch.int64,
            device=self.device,
        )
        self.num_actions = int(self.action_map.shape[0])
        self.obs_shape = (len(self.game.channels), 10, 10)
        self.last_action = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self.episode_steps = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._identity_actions = not minimal_actions
        # one draw per step for stickiness, the game's step and its reset (same values, same order,
        # as separate draws) when the game takes its uniforms pre-drawn
        self._fused = self.game.step_draws is not None and self.game.reset_draws is not None
        # output tensors handed out lately, reused once nothing else references them (see _buffer)
        self._pool: list[torch.Tensor] = []
        obs_bytes = num_envs * len(self.game.channels) * 100 * torch.empty((), dtype=obs_dtype).element_size()
        self._reuse = self.device.type == "cpu" and _UNSHARED_COUNTS is not None and obs_bytes >= _REUSE_BYTES
        if self.device.type == "cpu" and obs_bytes >= _REUSE_BYTES:
            _warm_allocator()
        self._lazy = self.device.type == "cpu" and num_envs >= self.sparse_reset_min_envs
        self.game.reset(torch.ones(num_envs, dtype=torch.bool, device=self.device))

    def _buffer(self) -> torch.Tensor:
        """A tensor for an observation output (contents arbitrary).

        Each step returns two fresh observation tensors. On CPU, allocating them anew each step
        makes the C allocator hand memory back to the system and fault it in again (page faults
        cost more than the rest of a step at large N), so a tensor returned earlier is reused once
        no Python reference, view or alias of it is left outside this pool; else a new one is made.
        """
        pool = self._pool
        for i in range(len(pool)):
            if _unshared(pool, i) == _UNSHARED_COUNTS:
                t = pool.pop(i)
                pool.append(t)
                return t
        t = torch.empty((self.num_envs, *self.obs_shape), dtype=self.obs_dtype, device=self.device)
        if self._reuse:
            pool.append(t)
            if len(pool) > 6:  # the caller keeps them all: stop tracking the oldest
                del pool[0]
        return t

    def observation(self) -> torch.Tensor:
        return self.game.render(self.obs_dtype, self._buffer())

    def reset(self) -> torch.Tensor:
        """Start a new episode in every environment (the sticky last action persists)."""
        self.game.reset(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        self.episode_steps.zero_()
        return self.observation()

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        actions = torch.as_tensor(actions, device=self.device)
        check(
            actions.shape == (self.num_envs,),
            f"actions have shape {tuple(actions.shape)}, expected ({self.num_envs},)",
            "pass one action index per environment",
        )
        game = self.game
        chosen = actions.long() if self._identity_actions else self.action_map[actions.long()]
        sticky = self.sticky_action_prob > 0
        u_step = u_reset = None
        if self._fused and self._lazy:
            # many environments: compute the game's draws only for the rows that use them
            u_stick = self.rng.uniform(1)[:, 0] if sticky else None
            u_step = self.rng.defer(game.step_draws) if game.step_draws else None
            u_reset = self.rng.defer(game.reset_draws) if game.reset_draws else None
        elif self._fused:
            # one draw for all (same values as the separate draws)
            k, ks = int(sticky), game.step_draws
            total = k + ks + game.reset_draws
            u = self.rng.uniform(total) if total else None
            u_stick = u[:, 0] if sticky else None
            u_step = Uniforms(ks, values=u[:, k : k + ks]) if ks else None
            u_reset = Uniforms(game.reset_draws, values=u[:, k + ks :]) if game.reset_draws else None
        elif sticky:
            u_stick = self.rng.uniform(1)[:, 0]
        if sticky:
            chosen = torch.where(u_stick < self.sticky_action_prob, self.last_action, chosen)
        self.last_action = chosen
        reward, terminated = game.step(chosen, u_step) if self._fused else game.step(chosen)
        self.episode_steps += 1
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
            done = terminated
        else:
            truncated = (self.episode_steps >= self.max_episode_steps) & ~terminated
            done = terminated | truncated
        final = game.render(self.obs_dtype, self._buffer())
        if self._fused and self.device.type == "cpu":
            # on CPU (where reading ``done`` costs no device synchronisation), reset only the
            # environments that ended: none (their draws are taken either way), or a few of many
            # on a sub-batch, else with the mask
            rows = done.nonzero().squeeze(1)
            if rows.numel() == 0:
                return self._buffer().copy_(final), reward, terminated, truncated, final
            if rows.numel() * 4 <= self.num_envs and self.num_envs >= self.sparse_reset_min_envs:
                sub = game.reset_rows(rows, None if u_reset is None else u_reset.rows(rows))
                if sub is not None:
                    # only the reset rows change: copy final, render those rows alone
                    self.episode_steps.index_fill_(0, rows, 0)
                    obs = self._buffer().copy_(final)
                    obs.index_copy_(0, rows, sub.render(self.obs_dtype))
                    return obs, reward, terminated, truncated, final
            else:
                game.reset(done, u_reset)
        elif self._fused:
            game.reset(done, u_reset)
        else:
            game.reset(done)
        self.episode_steps.masked_fill_(done, 0)
        # environments that did not end are untouched by reset: their rows of obs equal final's
        return game.render(self.obs_dtype, self._buffer()), reward, terminated, truncated, final

    def state_dict(self) -> dict[str, dict[str, torch.Tensor] | torch.Tensor]:
        return {
            "game": self.game.state_dict(),
            "rng": self.rng.state_dict(),
            "last_action": self.last_action.clone(),
            "episode_steps": self.episode_steps.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.game.load_state_dict(state["game"])
        self.rng.load_state_dict(state["rng"])
        self.last_action.copy_(state["last_action"])
        self.episode_steps.copy_(state["episode_steps"])

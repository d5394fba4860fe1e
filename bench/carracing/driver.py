"""A driver for CarRacing-v3 that reads the track geometry the env exposes (no learning).

Steering is pure pursuit: aim at the centre-line point ``lookahead`` tiles ahead of the nearest
one, steering proportionally to the heading error. Speed follows a braking curve: every bend in
the next 24 tiles gets its own speed (lower the more the track turns between here and there,
lower again for hairpins), and the car may go as fast as it can while still braking down to each
of them in time; gas and brake are bang-bang around that limit (full gas spins the rear wheels, so
gas is capped at 0.5). A car that has lost the road (large heading error or lateral offset) crawls
back at low speed and gas: at speed its wheels spin on the grass and it circles for ever.

The driver lives *inside* the env process as a wrapper (``DriverActionWrapper``) that puts the
action it would take next into ``info["driver_action"]``: data collection can then run CarRacing in
worker processes (the privileged car and track state never has to cross a process boundary) and
the collecting policy just reads the infos.

Levels (``DRIVER_LEVELS``): ``expert`` drives at target speed 90 with exact actions (mean return
908.9 over seeds 0-19, laps finished in 670-1,000 steps); ``medium`` degrades it the documented
way, a lower target speed (40) and Gaussian action noise (std 0.2 on each action dimension,
clipped to the action box): it rarely finishes the lap in 1,000 steps and lands at about 570, two
thirds of the expert. The reference card measures both on seeds disjoint from the datasets'.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class DriverParams:
    lookahead: int = 5  # tiles ahead of the nearest centre-line point to aim at
    target_speed: float = 90.0  # Box2D units (the hull's linear velocity norm)
    steer_gain: float = 2.0  # steering per radian of heading error
    slowdown: float = 0.6  # fraction of target speed shed before the sharpest bends
    gas: float = 0.5
    brake: float = 0.6
    bend_horizon: int = 24  # tiles (3.5 units each) scanned for bends
    braking: float = 25.0  # units/s² assumed when planning (full brakes manage about 130)
    hairpin_bend: float = 2.6  # radians; sharper bends ahead than this are hairpins ...
    hairpin_factor: float = 0.6  # ... taken at this fraction of the bend speed
    recover_heading: float = 0.8  # |heading error| (radians) beyond which the car is lost ...
    recover_offset: float = 7.0  # ... or |lateral offset| (the road's half-width is 6.7)
    recover_speed: float = 15.0  # a lost car crawls back: spinning wheels on grass never recover
    recover_gas: float = 0.2
    action_noise: float = 0.0  # std of Gaussian noise added to every action dimension


DRIVER_LEVELS: dict[str, DriverParams] = {
    "expert": DriverParams(),
    "medium": DriverParams(target_speed=40.0, action_noise=0.2),
}


def _wrap_angle(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def track_points(env: gym.Env) -> np.ndarray:
    """The centre line's points (N, 2); fixed for an episode once the env is reset."""
    return np.asarray([(t[2], t[3]) for t in env.unwrapped.track])


def driving_state(env: gym.Env, track: np.ndarray | None = None) -> dict[str, float]:
    """Privileged quantities of the car relative to the track: speed, heading error to the
    centre line's direction, signed lateral offset from it, and the bend ahead (radians).
    ``track``: the episode's ``track_points`` if the caller has them."""
    u = env.unwrapped
    track = track_points(env) if track is None else track
    hull = u.car.hull
    pos = np.asarray(hull.position)
    nearest = int(np.argmin(((track - pos) ** 2).sum(1)))
    n = len(track)
    direction = track[(nearest + 1) % n] - track[nearest]
    track_heading = math.atan2(direction[1], direction[0])
    # The car's forward axis is its local +y.
    heading = math.atan2(math.cos(hull.angle), -math.sin(hull.angle))
    offset = pos - track[nearest]
    lateral = (direction[0] * offset[1] - direction[1] * offset[0]) / (np.linalg.norm(direction) + 1e-9)
    bend = 0.0
    for j in range(3, 25, 3):
        ahead = track[(nearest + j + 1) % n] - track[(nearest + j) % n]
        bend = max(bend, abs(_wrap_angle(math.atan2(ahead[1], ahead[0]) - track_heading)))
    return {"speed": float(np.linalg.norm(np.asarray(hull.linearVelocity))),
            "heading_error": _wrap_angle(track_heading - heading), "lateral_offset": float(lateral),
            "bend_ahead": bend, "nearest_tile": nearest}


class TrackDriver:
    """The controller; ``rng`` drives its action noise (seeded per episode by the wrapper)."""

    def __init__(self, params: DriverParams) -> None:
        self.params = params

    def speed_limit(self, track: np.ndarray, nearest: int) -> float:
        """The fastest speed from which every bend in the next ``bend_horizon`` tiles can still be
        taken at its own speed by braking at ``braking`` (a braking curve v² = v_bend² + 2·a·d).
        A bend's speed falls with the heading change from here to it (``slowdown``), and again
        for hairpins."""
        p = self.params
        n = len(track)
        idx = (nearest + np.arange(p.bend_horizon + 2)) % n
        seg = np.diff(track[idx], axis=0)
        headings = np.arctan2(seg[:, 1], seg[:, 0])
        turn = np.abs((headings[1:] - headings[0] + np.pi) % (2 * np.pi) - np.pi)
        bend_speed = p.target_speed * (1.0 - p.slowdown * np.minimum(turn / 1.2, 1.0))
        bend_speed = np.where(turn > p.hairpin_bend, bend_speed * p.hairpin_factor, bend_speed)
        distance = np.cumsum(np.linalg.norm(seg[1:], axis=1))
        return float(np.min(np.sqrt(bend_speed ** 2 + 2.0 * p.braking * distance)))

    def action(self, env: gym.Env, rng: np.random.Generator, track: np.ndarray | None = None,
               state: dict[str, float] | None = None) -> np.ndarray:
        """The driver's action now (``track`` and ``state``: this step's ``track_points`` and
        ``driving_state``, computed here if not given)."""
        p = self.params
        track = track_points(env) if track is None else track
        state = driving_state(env, track) if state is None else state
        hull = env.unwrapped.car.hull
        nearest = state["nearest_tile"]
        target = track[(nearest + p.lookahead) % len(track)] - np.asarray(hull.position)
        heading = math.atan2(math.cos(hull.angle), -math.sin(hull.angle))
        error = _wrap_angle(math.atan2(target[1], target[0]) - heading)
        limit = self.speed_limit(track, nearest)
        lost = (abs(state["heading_error"]) > p.recover_heading
                or abs(state["lateral_offset"]) > p.recover_offset)
        gas = p.gas
        if lost:
            limit, gas = min(limit, p.recover_speed), p.recover_gas
        speed = state["speed"]
        act = np.array([np.clip(-p.steer_gain * error, -1.0, 1.0),
                        gas if speed < limit else 0.0,
                        p.brake if speed > limit + 8.0 else 0.0], dtype=np.float32)
        if p.action_noise > 0:
            act = act + rng.normal(0.0, p.action_noise, 3).astype(np.float32)
        return np.clip(act, env.action_space.low, env.action_space.high).astype(np.float32)


class DriverActionWrapper(gym.Wrapper):
    """Adds ``info["driver_action"]`` (what the driver would do now) and ``info["driving"]``
    (``driving_state``) after every reset and step. The noise generator is reseeded from the
    reset seed, so an episode's driver actions are reproducible from it."""

    def __init__(self, env: gym.Env, params: DriverParams) -> None:
        super().__init__(env)
        self.driver = TrackDriver(params)
        self.rng = np.random.default_rng(0)
        self.track = np.zeros((0, 2))

    def _annotate(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        state = driving_state(self.env, self.track)
        info["driver_action"] = self.driver.action(self.env, self.rng, self.track, state)
        info["driving"] = np.array([state[k] for k in DRIVING_FIELDS], dtype=np.float32)
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng([seed, 0x5EED])
        obs, info = self.env.reset(seed=seed, options=options)
        self.track = track_points(self.env)  # the track is drawn at reset and fixed after
        return obs, self._annotate(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._annotate(info)


DRIVING_FIELDS = ("speed", "heading_error", "lateral_offset", "bend_ahead")


def driver_card(level: str) -> dict[str, Any]:
    return {"level": level, **asdict(DRIVER_LEVELS[level])}

"""A driver for CarRacing-v3 that reads the track geometry the env exposes (no learning).

Steering is pure pursuit: aim at the centre-line point ``lookahead`` tiles ahead of the nearest
one, steering proportionally to the heading error. Speed control looks at the sharpest heading
change over the next ~24 tiles and lowers the target speed before bends; gas and brake are
bang-bang around that target (full gas spins the rear wheels, so gas is capped at 0.5).

The driver lives *inside* the env process as a wrapper (``DriverActionWrapper``) that puts the
action it would take next into ``info["driver_action"]``: data collection can then run CarRacing in
worker processes (the privileged car and track state never has to cross a process boundary) and
the collecting policy just reads the infos.

Levels (``DRIVER_LEVELS``): ``expert`` drives at target speed 120 with exact actions; ``medium``
degrades it the documented way, a lower target speed (70) and Gaussian action noise (std 0.1
on each action dimension, clipped to the action box), which lands at roughly half to two thirds of
the expert's return.
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
    target_speed: float = 120.0  # Box2D units (the hull's linear velocity norm)
    steer_gain: float = 2.0  # steering per radian of heading error
    slowdown: float = 0.6  # fraction of target speed shed before the sharpest bends
    gas: float = 0.5
    brake: float = 0.6
    action_noise: float = 0.0  # std of Gaussian noise added to every action dimension


DRIVER_LEVELS: dict[str, DriverParams] = {
    "expert": DriverParams(),
    "medium": DriverParams(target_speed=70.0, action_noise=0.1),
}


def _wrap_angle(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def driving_state(env: gym.Env) -> dict[str, float]:
    """Privileged quantities of the car relative to the track: speed, heading error to the
    centre line's direction, signed lateral offset from it, and the bend ahead (radians)."""
    u = env.unwrapped
    track = np.asarray([(t[2], t[3]) for t in u.track])
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

    def action(self, env: gym.Env, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        u = env.unwrapped
        track = np.asarray([(t[2], t[3]) for t in u.track])
        hull = u.car.hull
        pos = np.asarray(hull.position)
        nearest = int(np.argmin(((track - pos) ** 2).sum(1)))
        target = track[(nearest + p.lookahead) % len(track)] - pos
        heading = math.atan2(math.cos(hull.angle), -math.sin(hull.angle))
        error = _wrap_angle(math.atan2(target[1], target[0]) - heading)
        state = driving_state(env)
        limit = p.target_speed * (1.0 - p.slowdown * min(state["bend_ahead"] / 1.2, 1.0))
        speed = state["speed"]
        act = np.array([np.clip(-p.steer_gain * error, -1.0, 1.0),
                        p.gas if speed < limit else 0.0,
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

    def _annotate(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        info["driver_action"] = self.driver.action(self.env, self.rng)
        info["driving"] = np.array([v for k, v in driving_state(self.env).items()
                                    if k != "nearest_tile"], dtype=np.float32)
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng([seed, 0x5EED])
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, self._annotate(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._annotate(info)


DRIVING_FIELDS = ("speed", "heading_error", "lateral_offset", "bend_ahead")


def driver_card(level: str) -> dict[str, Any]:
    return {"level": level, **asdict(DRIVER_LEVELS[level])}

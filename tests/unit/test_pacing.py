"""Pacer maths without an event loop: the shared gate and the AIMD rate."""

from __future__ import annotations

import pytest

from mparticle_dest._delivery.pacing import Pacer, PacingPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pacer(**policy: float) -> tuple[Pacer, Clock]:
    clock = Clock()
    return Pacer(PacingPolicy(**policy), clock=clock), clock


def _send(pacer: Pacer, batches: int, times: int = 1) -> None:
    for _ in range(times):
        assert pacer.reserve(batches) == 0.0


def _load(pacer: Pacer, clock: Clock, per_second: int) -> None:
    """Send at ``per_second`` batches per second (half a second's worth, half a second ago)."""
    _send(pacer, per_second // 2)
    clock.now += 0.5
    assert pacer.observed_rate() == pytest.approx(per_second)


def test_unpaced_by_default_never_waits() -> None:
    pacer, _clock = _pacer()
    for _ in range(1000):
        assert pacer.reserve(100) == 0.0
    pacer.on_response(202, {})
    assert pacer.rate is None


def test_429_closes_the_gate_for_every_sender_for_retry_after() -> None:
    pacer, clock = _pacer()
    pacer.on_response(429, {"retry-after": "2"})
    assert pacer.reserve(1) == pytest.approx(2.0)
    assert pacer.gate_remaining() == pytest.approx(2.0)
    clock.now += 1.5
    assert pacer.gate_remaining() == pytest.approx(0.5)
    clock.now += 0.5
    assert pacer.gate_remaining() == 0.0


def test_429_without_retry_after_pauses_for_throttle_pause() -> None:
    pacer, _ = _pacer(throttle_pause=0.75)
    pacer.on_response(429, {})
    assert pacer.gate_remaining() == pytest.approx(0.75)


def test_retry_after_zero_keeps_the_gate_open() -> None:
    pacer, _ = _pacer()
    pacer.on_response(429, {"retry-after": "0"})
    assert pacer.gate_remaining() == 0.0


def test_gate_is_capped_and_never_shortened() -> None:
    pacer, _ = _pacer(max_pause=5.0)
    pacer.on_response(429, {"retry-after": "3600"})
    assert pacer.gate_remaining() == pytest.approx(5.0)
    pacer.on_response(429, {"retry-after": "1"})
    assert pacer.gate_remaining() == pytest.approx(5.0)


def test_503_with_retry_after_gates_without_slowing_the_rate() -> None:
    pacer, _ = _pacer()
    pacer.on_response(503, {"retry-after": "1"})
    assert pacer.gate_remaining() == pytest.approx(1.0)
    assert pacer.rate is None
    pacer.on_response(500, {})
    assert pacer.rate is None


def test_first_429_paces_at_half_the_observed_rate() -> None:
    pacer, clock = _pacer(throttle_factor=0.5, throttle_pause=0.0)
    _load(pacer, clock, 300)  # 300 batches within the last second
    pacer.on_response(429, {})
    assert pacer.rate == pytest.approx(150.0)
    # Sends are now spaced: 150 batches take one second.
    assert pacer.reserve(150) == 0.0
    assert pacer.reserve(1) == pytest.approx(1.0)


def test_observed_rate_only_counts_the_last_second() -> None:
    pacer, clock = _pacer()
    _load(pacer, clock, 300)
    clock.now += 1.5
    _load(pacer, clock, 40)
    assert pacer.observed_rate() == pytest.approx(40.0)


def test_a_burst_of_429s_decreases_once_per_interval() -> None:
    pacer, clock = _pacer(throttle_factor=0.5, decrease_interval=1.0, throttle_pause=0.0)
    _load(pacer, clock, 400)
    for _ in range(5):  # answers to requests that were already in flight
        pacer.on_response(429, {})
    assert pacer.rate == pytest.approx(200.0)
    clock.now += 1.0
    pacer.on_response(429, {})
    assert pacer.rate == pytest.approx(100.0)


def test_rate_never_drops_below_min_rate() -> None:
    pacer, clock = _pacer(min_rate=20.0, min_fraction=0.1, decrease_interval=0.0)
    _load(pacer, clock, 100)
    for _ in range(20):
        clock.now += 0.01
        pacer.on_response(429, {})
    assert pacer.rate == 20.0


def test_rate_never_drops_below_a_fraction_of_the_starting_rate() -> None:
    pacer, clock = _pacer(min_rate=10.0, min_fraction=0.25, decrease_interval=0.0)
    _load(pacer, clock, 400)  # 400 batches/s when the trouble starts
    for _ in range(20):
        pacer.on_response(429, {})
        clock.now += 0.01
    assert pacer.rate == 100.0


def test_high_usage_header_decreases_gently() -> None:
    pacer, clock = _pacer(high_usage=80.0, usage_factor=0.8)
    _load(pacer, clock, 200)
    pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "85"})
    assert pacer.rate == pytest.approx(160.0)
    assert pacer.gate_remaining() == 0.0  # a warning, not a refusal: nobody pauses


def test_usage_header_accepts_a_percent_sign_and_ignores_garbage() -> None:
    pacer, clock = _pacer(high_usage=80.0)
    _load(pacer, clock, 100)
    pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "lots"})
    assert pacer.rate is None
    pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "90%"})
    assert pacer.rate is not None


def test_recovery_is_additive_then_pacing_switches_off() -> None:
    pacer, clock = _pacer(throttle_factor=0.5, recovery=0.1, throttle_pause=0.0)
    _load(pacer, clock, 200)  # 200 batches/s observed
    pacer.on_response(429, {})
    assert pacer.rate == pytest.approx(100.0)
    # +10% of the starting rate (20 batches/s) per second without pressure
    clock.now += 1.0
    pacer.on_response(202, {})
    assert pacer.rate == pytest.approx(120.0)
    clock.now += 2.0
    pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "10"})
    assert pacer.rate == pytest.approx(160.0)
    clock.now += 2.0
    pacer.on_response(202, {})
    assert pacer.rate is None  # back at the starting rate: fast path again
    assert pacer.reserve(1000) == 0.0


def test_usage_in_the_hold_band_stops_the_recovery() -> None:
    pacer, clock = _pacer(hold_usage=60.0, high_usage=80.0, recovery=0.1, throttle_pause=0.0)
    _load(pacer, clock, 200)
    pacer.on_response(429, {})
    clock.now += 3.0
    pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "70"})
    assert pacer.rate == pytest.approx(100.0)
    clock.now += 1.0
    pacer.on_response(202, {})
    assert pacer.rate == pytest.approx(120.0)  # only the second since the hold counts


def test_spacing_follows_the_cost_of_each_send() -> None:
    pacer, clock = _pacer(min_rate=10.0, throttle_pause=0.0)
    _load(pacer, clock, 10)
    pacer.on_response(429, {})
    assert pacer.rate == 10.0
    assert pacer.reserve(5) == 0.0
    assert pacer.reserve(20) == pytest.approx(0.5)
    assert pacer.reserve(1) == pytest.approx(2.5)
    clock.now += 10.0
    assert pacer.reserve(1) == 0.0


def test_gate_and_rate_combine_after_a_pause() -> None:
    pacer, clock = _pacer(min_rate=10.0)
    _load(pacer, clock, 40)
    pacer.on_response(429, {"retry-after": "1"})
    assert pacer.rate == 20.0
    # Everyone waits for the gate, then restarts spaced instead of all at once.
    assert pacer.reserve(10) == pytest.approx(1.0)
    assert pacer.reserve(10) == pytest.approx(1.5)


def test_repr_shows_state_only() -> None:
    pacer, _ = _pacer()
    assert repr(pacer) == "<Pacer unpaced gate=0.00s>"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"throttle_factor": 0.0},
        {"usage_factor": 1.5},
        {"min_rate": 0.0},
        {"min_fraction": 0.0},
        {"hold_usage": 90.0, "high_usage": 80.0},
        {"recovery": 0.0},
    ],
)
def test_invalid_pacing_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PacingPolicy(**kwargs)


def test_observed_rate_right_after_a_start_is_not_diluted_over_the_window() -> None:
    pacer, clock = _pacer()
    _send(pacer, 30)
    clock.now += 0.2
    _send(pacer, 30)
    # 60 batches in 0.2 s is 300 batches/s, not 60: the window is not full yet.
    assert pacer.observed_rate() == pytest.approx(300.0)
    assert Pacer().observed_rate() == 0.0

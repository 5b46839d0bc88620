"""Pacer maths without an event loop: the shared gate, the batch token bucket, AIMD."""

from __future__ import annotations

import pytest

from mparticle_dest._delivery.pacing import Pacer, PacingPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pacer(bps: float | None = None, **policy: float) -> tuple[Pacer, Clock]:
    clock = Clock()
    return Pacer(PacingPolicy(**policy), batches_per_second=bps, clock=clock), clock


def _accepted(pacer: Pacer, clock: Clock, per_second: int) -> None:
    """mParticle accepted ``per_second`` batches over the last second (ten requests)."""
    for _ in range(10):
        assert pacer.delay() == 0.0
        pacer.charge(per_second // 10)
        pacer.on_response(202, {}, per_second // 10)
        clock.now += 0.09


def test_unpaced_by_default_never_waits() -> None:
    pacer, _ = _pacer()
    for _ in range(1000):
        assert pacer.delay() == 0.0
        pacer.charge(100)
    assert pacer.rate is None and pacer.request_budget() is None


def test_429_closes_the_gate_for_every_sender_for_retry_after() -> None:
    pacer, clock = _pacer()
    pacer.on_response(429, {"retry-after": "2"})
    assert pacer.delay() == pytest.approx(2.0)
    clock.now += 1.5
    assert pacer.delay() == pytest.approx(0.5)
    clock.now += 0.5
    assert pacer.gate_remaining() == 0.0


def test_429_without_retry_after_pauses_for_throttle_pause_and_the_gate_is_capped() -> None:
    pacer, _ = _pacer(throttle_pause=0.7, max_pause=5.0)
    pacer.on_response(429, {})
    assert pacer.gate_remaining() == pytest.approx(0.7)
    pacer.on_response(429, {"retry-after": "3600"})
    assert pacer.gate_remaining() == pytest.approx(5.0)
    pacer.on_response(429, {"retry-after": "1"})  # never shortened
    assert pacer.gate_remaining() == pytest.approx(5.0)


def test_503_with_retry_after_gates_without_slowing_the_rate() -> None:
    pacer, _ = _pacer()
    pacer.on_response(503, {"retry-after": "1"})
    assert pacer.gate_remaining() == pytest.approx(1.0)
    assert pacer.rate is None


def test_the_first_429_paces_at_what_mparticle_accepted_over_the_last_second() -> None:
    pacer, clock = _pacer()
    _accepted(pacer, clock, 300)
    pacer.on_response(429, {"retry-after": "1"})
    # This process's share, as the server showed it; no floor far above it.
    assert pacer.rate == pytest.approx(300.0)
    clock.now += 1.0
    pacer.on_response(429, {"retry-after": "1"})
    assert pacer.rate == pytest.approx(150.0)  # throttle_factor 0.5


def test_a_first_429_with_nothing_accepted_starts_at_that_requests_size() -> None:
    pacer, clock = _pacer()
    for _ in range(10):  # unpaced: ten requests of 100 batches within 0.1 s
        pacer.charge(100)
        clock.now += 0.01
    pacer.on_response(429, {"retry-after": "1"}, 100)
    # Not half of the 10,000 batches/s this process sent (far above its share, which
    # it would take many seconds to come back to), but the quota would not take these
    # 100 batches at once: half of that per second.
    assert pacer.rate == pytest.approx(50.0)


def test_a_burst_of_429s_decreases_once_per_interval() -> None:
    pacer, clock = _pacer(bps=200.0)
    for _ in range(4):  # answers to requests that were already in flight
        pacer.on_response(429, {"retry-after": "0"})
    assert pacer.rate == pytest.approx(100.0)
    clock.now += 0.25
    pacer.on_response(429, {"retry-after": "0"})
    assert pacer.rate == pytest.approx(50.0)


def test_rate_never_drops_below_min_rate() -> None:
    pacer, clock = _pacer(bps=4.0, min_rate=3.0)
    for _ in range(5):
        pacer.on_response(429, {"retry-after": "0"})
        clock.now += 1.0
    assert pacer.rate == pytest.approx(3.0)


def _learned(rate: int) -> tuple[Pacer, Clock]:
    """A pacer that learned ``rate`` batches/s from a 429 (no declared quota)."""
    pacer, clock = _pacer()
    _accepted(pacer, clock, rate)
    pacer.on_response(429, {"retry-after": "0"})
    assert pacer.rate == pytest.approx(rate)
    return pacer, clock


def test_high_usage_decreases_in_proportion_to_the_time_it_stays_high() -> None:
    pacer, clock = _learned(100)
    clock.now += 0.25  # one decrease_interval since the last answer
    pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "95%"}, 10)
    assert pacer.rate == pytest.approx(60.0)  # usage_factor 0.6
    for _ in range(5):  # five answers within the next interval: the same time, the same factor
        clock.now += 0.05
        pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "95"}, 10)
    assert pacer.rate == pytest.approx(36.0)
    clock.now += 1.0
    for garbage in ("lots", "nan", ""):
        pacer.on_response(202, {"x-mp-rate-limit-percentage-used": garbage}, 10)
    assert pacer.rate == pytest.approx(36.0)  # nothing held back: no increase either


def test_after_a_lull_high_usage_counts_from_the_request_not_from_the_last_answer() -> None:
    pacer, clock = _learned(100)
    pacer.charge(10)
    clock.now += 0.05
    pacer.on_response(202, {}, 10)
    clock.now += 10.0  # nothing sent for 10 s (a hold, a quiet night)
    pacer.charge(10)
    clock.now += 0.05  # its answer, 50 ms later, says usage is high
    pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "95"}, 10)
    # 50 ms of high usage: a fifth of a decrease_interval, not a full one for the lull.
    assert pacer.rate == pytest.approx(100.0 * 0.6 ** (0.05 / 0.25))


def test_the_rate_is_a_token_bucket_in_batches_that_may_go_into_debt() -> None:
    pacer, clock = _pacer(bps=50.0, burst=0.1)
    assert pacer.delay() == 0.0
    pacer.charge(100)  # a full request is never split: the bucket goes into debt
    assert pacer.delay() == pytest.approx(2.0)
    clock.now += 1.5
    assert pacer.delay() == pytest.approx(0.5)
    clock.now += 10.0  # a lull refills at most `burst` seconds of the rate
    assert pacer.delay() == 0.0
    pacer.charge(12)
    pacer.charge(12)
    assert pacer.delay() == pytest.approx((24 - 50 * 0.1) / 50)


def test_slow_start_then_additive_increase_only_while_the_rate_holds_requests_back() -> None:
    pacer, clock = _pacer(bps=None, increase=10.0)  # batches/s gained per second
    _accepted(pacer, clock, 100)
    pacer.on_response(429, {"retry-after": "0"})
    assert pacer.rate == pytest.approx(100.0)
    clock.now += 0.5
    pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "10"}, 1)
    assert pacer.rate == pytest.approx(100.0)  # idle: nothing was held back, no growth
    pacer.charge(400)
    assert pacer.delay() > 0  # now the rate holds requests back
    clock.now += 0.5
    pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "10"}, 1)
    # Slow start: until the first decrease, the rate doubles per second (the first
    # estimate may be far below this process's share).
    assert pacer.rate == pytest.approx(150.0)
    clock.now += 0.25
    pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "95"}, 1)
    assert pacer.rate == pytest.approx(90.0)  # the first decrease ends the slow start
    for _ in range(2):
        assert pacer.delay() > 0
        clock.now += 1.0
        pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "10"}, 1)
    assert pacer.rate == pytest.approx(110.0)  # + 10 batches/s per second, for 2 s


def test_a_declared_quota_starts_paced_and_is_never_exceeded() -> None:
    pacer, clock = _pacer(bps=270.0)
    assert pacer.rate == 270.0
    assert pacer.request_budget() == int(270 * PacingPolicy().burst)
    pacer.charge(500)
    assert pacer.delay() > 0
    assert pacer.limited()  # the quota, not the network, holds requests back (stats)
    clock.now += 0.5
    pacer.on_response(202, {}, 100)
    assert pacer.rate == 270.0


def _at_declared_rate(pacer: Pacer, clock: Clock, bps: int, usage: str = "100") -> None:
    """One second of backlog at the declared rate, all of it accepted, at this usage
    (but the first answer's is low: the workspace's bucket filled up before)."""
    for i in range(20):
        pacer.charge(bps // 20)
        assert pacer.delay() > 0  # the declared rate holds requests back
        clock.now += 0.05
        pacer.on_response(202, {"x-mp-rate-limit-percentage-used": usage if i else "10"}, bps // 20)


def test_under_a_declared_quota_a_high_usage_at_the_declared_rate_is_expected() -> None:
    pacer, clock = _pacer(bps=200.0)
    _at_declared_rate(pacer, clock, 200)
    # This process alone fills the workspace's bucket: no reason to slow down.
    assert pacer.rate == 200.0


def test_under_a_declared_quota_a_429_costs_a_small_step_regained_fast() -> None:
    pacer, clock = _pacer(bps=200.0)
    _at_declared_rate(pacer, clock, 200)
    pacer.on_response(429, {"retry-after": "1"})
    # A momentary shortage: pause as asked, then resume just under the declared rate.
    assert pacer.gate_remaining() == pytest.approx(1.0)
    assert pacer.rate == pytest.approx(200.0 * 0.9)  # declared_factor
    clock.now += 1.0
    # For a second after a pause the answers since could be anyone's share, so the
    # pacer grows as for a learned quota (the bucket filled up during the pause)...
    _at_declared_rate(pacer, clock, 180, usage="50")
    # ...and is back at the declared rate, where a high usage does not lower it.
    _at_declared_rate(pacer, clock, 200)
    assert pacer.rate == 200.0


def test_a_declared_quota_that_mparticle_does_not_grant_is_paced_as_a_learned_one() -> None:
    # E.g. each of four processes declared the whole workspace: each gets a quarter.
    pacer, clock = _pacer(bps=200.0)
    _accepted(pacer, clock, 50)
    pacer.charge(200)
    assert pacer.delay() > 0
    pacer.on_response(429, {"retry-after": "0"})
    assert pacer.rate == pytest.approx(100.0)  # throttle_factor 0.5, not declared_factor
    clock.now += 0.25
    pacer.on_response(202, {"x-mp-rate-limit-percentage-used": "95"}, 5)
    assert pacer.rate == pytest.approx(60.0)  # and a high usage lowers it (usage_factor)


def test_request_budget_follows_the_rate() -> None:
    pacer, _ = _pacer(bps=2.0)
    assert pacer.request_budget() == 1  # a small share sends small requests often


def test_repr_shows_state_only() -> None:
    assert repr(_pacer()[0]) == "<Pacer unpaced gate=0.00s>"
    assert repr(_pacer(bps=10.0)[0]) == "<Pacer 10.0 batches/s gate=0.00s>"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"throttle_factor": 0.0},
        {"usage_factor": 1.5},
        {"min_rate": 0.0},
        {"increase": 0.0},
        {"burst": 0.0},
        {"hold_usage": 95.0, "high_usage": 80.0},
    ],
)
def test_invalid_pacing_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PacingPolicy(**kwargs)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_an_invalid_declared_quota_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="batches_per_second"):
        Pacer(batches_per_second=bad)


def test_observed_rate_right_after_a_start_is_not_diluted_over_the_window() -> None:
    pacer, clock = _pacer()
    pacer.charge(30)
    clock.now += 0.2
    pacer.charge(30)
    # 60 batches in 0.2 s is 300 batches/s, not 60: the window is not full yet.
    assert pacer.observed_rate() == pytest.approx(300.0)
    assert Pacer().observed_rate() == 0.0

import time

from switchboard.llm import CircuitBreaker, CircuitState


def test_opens_after_threshold_and_closes_after_a_good_trial() -> None:
    breaker = CircuitBreaker(threshold=2, reset_after=0.05)
    assert breaker.try_acquire()
    breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert not breaker.try_acquire()
    time.sleep(0.06)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.try_acquire()
    assert not breaker.try_acquire(), "only one trial call while half-open"
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.try_acquire()


def test_a_failed_trial_opens_it_again() -> None:
    breaker = CircuitBreaker(threshold=1, reset_after=0.05)
    breaker.record_failure()
    time.sleep(0.06)
    assert breaker.try_acquire()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert not breaker.try_acquire()


def test_success_resets_the_count() -> None:
    breaker = CircuitBreaker(threshold=2, reset_after=10)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED

"""Background jobs: waited for by owner, drained at shutdown, failures logged not raised."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.background import BackgroundJobs, JobOwner


async def _finish(event: asyncio.Event, done: list[str], name: str) -> None:
    await event.wait()
    done.append(name)


async def test_waiting_for_a_user_waits_for_their_jobs_only() -> None:
    jobs, done = BackgroundJobs(), []
    ada, bob = asyncio.Event(), asyncio.Event()
    jobs.start(JobOwner("t", "ada", "th-1"), _finish(ada, done, "ada"), name="ada")
    jobs.start(JobOwner("t", "bob", "th-2"), _finish(bob, done, "bob"), name="bob")
    waiter = asyncio.create_task(jobs.wait_for("t", user="ada"))
    await asyncio.sleep(0.01)
    assert not waiter.done()  # ada's job is still running
    ada.set()
    await asyncio.wait_for(waiter, 5)  # returns although bob's job never finishes
    assert done == ["ada"]
    assert jobs.pending == 1
    await jobs.wait_for("other-tenant", user="bob")  # nothing of theirs: returns at once
    await jobs.wait_for("t", thread_id="th-1")
    bob.set()
    await jobs.wait_for("t", thread_id="th-2")
    assert done == ["ada", "bob"] and jobs.pending == 0


async def test_a_failing_job_is_logged_and_drain_cancels_what_overruns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fail() -> None:
        raise RuntimeError("extractor exploded")

    jobs = BackgroundJobs()
    never = asyncio.Event()
    jobs.start(JobOwner("t", "u", None), fail(), name="failing")
    jobs.start(JobOwner("t", "u", None), _finish(never, [], "stuck"), name="stuck")
    await jobs.drain(timeout=0.2)
    assert jobs.pending == 0
    assert "background job failing failed" in caplog.text
    assert "extractor exploded" in caplog.text
    assert "1 background jobs cancelled at shutdown" in caplog.text


async def test_a_cancelled_waiter_leaves_the_jobs_running() -> None:
    jobs, done = BackgroundJobs(), []
    release = asyncio.Event()
    jobs.start(JobOwner("t", "u", "th"), _finish(release, done, "job"), name="job")
    waiter = asyncio.create_task(jobs.wait_for("t", user="u"))
    await asyncio.sleep(0.01)
    waiter.cancel()  # e.g. the client of a forget request went away
    await asyncio.gather(waiter, return_exceptions=True)
    assert jobs.pending == 1
    release.set()
    await jobs.wait_for("t", user="u")
    assert done == ["job"]

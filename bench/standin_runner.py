"""A stand-in runner for the night simulation (`bench/night.py`): it answers every cell of a
runner queue at once, as fast as it can read them, with a result published to the results
queue exactly as a real agent publishes it (the same task name, message fields and queue).

    python bench/standin_runner.py --broker URL --queue runner.cpu --cells N [--fail-every 10]

It reads the queue's messages straight from the broker's Redis list (no Celery worker, no
claim keys: nothing runs), and exits after answering N cells. Every `--fail-every`-th cell
fails one test; the others pass.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from celery import Celery  # noqa: E402

from ci_runners.agent.contracts import (  # noqa: E402
    CELL_RESULTS_QUEUE,
    RESULT_TASK,
    CellState,
    Result,
    ResultMessage,
)

COMMIT = "5eed" * 10


def job_of(raw: bytes) -> dict:
    """The `job` keyword argument of a Celery (protocol 2) message as kombu stores it."""
    envelope = json.loads(raw)
    body = envelope["body"]
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    _args, kwargs, _embed = json.loads(body)
    return kwargs["job"]


def result_for(job: dict, *, fail: bool) -> dict:
    counts = {"passed": 9, "failed": 1} if fail else {"passed": 10, "failed": 0}
    return Result(
        state=CellState.FAILED if fail else CellState.PASSED,
        exit_code=1 if fail else 0,
        commit=COMMIT,
        counts=counts,
        failures=[{"test": "tests/test_x.py::test_x", "message": "boom"}] if fail else [],
        tests_collected=10,
        lock=["torch==" + job["torch_version"], "pytest==8.4.1"],
        lock_hash="standin-lock",
        recipe={"hash": "standin-recipe"},
        timings={"total_s": 0.0},
    ).to_dict()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--queue", default="runner.cpu")
    parser.add_argument("--cells", type=int, required=True)
    parser.add_argument("--fail-every", type=int, default=10)
    args = parser.parse_args()

    app = Celery("standin-runner", broker=args.broker, set_as_current=True)
    client = app.connection_for_write().default_channel.client
    answered = 0
    with app.producer_or_acquire() as producer:
        while answered < args.cells:
            raws = client.rpop(args.queue, 500)
            if not raws:
                time.sleep(0.01)
                continue
            for raw in raws:
                job = job_of(raw)
                answered += 1
                message = ResultMessage(
                    cell_id=job["cell_id"],
                    attempt=job["attempt"],
                    runner="standin",
                    result=result_for(job, fail=answered % args.fail_every == 0),
                    log="stand-in runner: nothing ran\n",
                )
                app.send_task(
                    RESULT_TASK,
                    kwargs=message.to_kwargs(),
                    queue=CELL_RESULTS_QUEUE,
                    producer=producer,
                )


if __name__ == "__main__":
    main()

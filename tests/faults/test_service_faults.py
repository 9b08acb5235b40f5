"""Service faults: a real service stopped in the middle of the step that uses it.

SLOW (the slowest module of the suite, several minutes): it starts a PRIVATE stack (Kafka, MinIO,
Elasticsearch and the authenticating esproxy when the stack has one; own STACK_DIR in a fresh
/tmp/ecommerce-faults-stack-* folder, free ports), runs the DAG twice with `airflow dags test`
(which honours retries and waits out the DAG's real retry_delay of 1 minute, twice) and tears
the stack down at the end.
The shared stack is never touched: the `stack` fixture below shadows conftest's.

What is tested, and how the fault is placed:

* **Kafka, in the middle of producing** (the core `produce_run` driven directly: in a DAG run
  producing takes about a second, too short to stop a broker inside it): the producer's progress
  hook stops Kafka once part of the events are acknowledged, Kafka comes back 20 s later. The
  idempotent producer waits (`message.timeout.ms` is 5 min) and delivers everything; reading the
  offset range back gives exactly the staged events, none lost or doubled.
* **one faulted DAG run**, compared with a clean DAG run of the same input (another private
  pipeline env on the same private stack; to save minutes the faulted run starts once the clean
  run's Spark job has read Kafka, so the clean run's last steps overlap the Kafka outage only):
  1. Kafka stopped as the run starts and kept down until produce_events' first attempt fails
     (its metadata request gives up after 30 s), then restarted: the attempt fails naming Kafka
     and its address, the retry (1 min later) delivers every event.
  2. MinIO stopped as Spark logs `stage archive: started` in build_profiles, held down until a
     thread dump of the job's driver shows S3 requests waiting on it, restarted 20 s after the
     stop: S3A's retries (20 SDK attempts x 7 S3A retries) carry the write through; no failure.
  3. Elasticsearch stopped as Spark logs `stage write_elasticsearch: started` (same attempt),
     restarted at once (it needs 20-70 s to be healthy): the attempt fails naming Elasticsearch
     (through the proxy: 502 from localhost:<auth port>), the retry rewrites the same index.
  The run succeeds, and its end state equals the clean run's: the documents behind the alias
  (by _id and content), the archive's rows and the snapshot's rows (as multisets), and every
  count of run_summary.json.

Each run's full output, the faults' timings and the failed attempts' messages are kept under
pytest's tmp dir (`faulted*/observations.json`, `*/dags-test-*.log`, `fault-stack-logs*/`).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.generator import write_events_csv
from ecommerce_profiles.core.producer import produce_run
from tests.support.faults import (
    Attempt,
    DagRun,
    DagRunResult,
    EndState,
    PrivatePipeline,
    PrivateStack,
    end_state,
    java_pids,
    prepare_pipeline,
    threads_in,
)

RUN_DATE = "2020-11-17"
INPUT = "exports/events-2020-11-17.csv"
EVENTS = 3000  # rows of the one-shot file (a few are planted bad rows)
OUTAGE_SECONDS = 20  # how long MinIO, and Kafka in the middle of producing, stay down
# Frames of a JVM thread inside an S3 request (AWS SDK v1 under S3A) or S3A's retry loop.
S3_REQUEST_FRAMES = ("com.amazonaws.http.AmazonHttpClient", "org.apache.hadoop.fs.s3a.Invoker")


def _log(message: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------- fixtures --
@pytest.fixture(scope="module")
def input_csv(tmp_path_factory) -> Path:
    """One file for both DAG runs: two dates, a few bad rows the validator quarantines."""
    path = tmp_path_factory.mktemp("fault-input") / "events.csv"
    stats = write_events_csv(path, EVENTS, seed=11, start="2020-11-16", end=RUN_DATE, bad_rows_per_rule=1)
    assert stats["rows"] == EVENTS
    return path


@dataclass
class Planned:
    stack: PrivateStack
    pipelines: dict[str, Future]  # "clean" / "faulted" -> PrivatePipeline (DB migrated, no bucket yet)


@pytest.fixture(scope="module")
def planned(tmp_path_factory, input_csv):
    """Ports of the private stack, and both pipeline envs prepared in the background (Airflow DB
    migrations need no service, so they run while the stack starts)."""
    # Not under pytest's basetemp: every pytest session that starts (other people's too) chmods
    # /tmp/pytest-of-<user> back to 0700, which locks out the services that run as their own
    # users (Elasticsearch, the esproxy nginx) in the middle of the run.
    private = PrivateStack.with_free_ports(Path(tempfile.mkdtemp(prefix="ecommerce-faults-stack-")))

    def prepare(prefix: str) -> PrivatePipeline:
        pipeline = prepare_pipeline(tmp_path_factory.mktemp(prefix), private, prefix)
        target = pipeline.data_dir / INPUT
        target.parent.mkdir(parents=True)
        target.write_bytes(input_csv.read_bytes())
        return pipeline

    with ThreadPoolExecutor(2) as pool:
        yield Planned(private, {prefix: pool.submit(prepare, prefix) for prefix in ("clean", "faulted")})


@pytest.fixture(scope="module")
def stack(planned, tmp_path_factory):
    """The PRIVATE stack of this module (shadows conftest's shared `stack`, so the tests are
    still marked `integration`); torn down at the end, whatever happened."""
    private, started = planned.stack, time.time()
    try:
        private.up()
        _log(
            f"private stack up in {time.time() - started:.0f}s under {private.root} "
            f"(kafka {private.kafka_address}, minio {private.minio_url}, elasticsearch {private.elasticsearch_url})"
        )
        yield private
    finally:
        private.tear_down()
        # The services' logs stay with the test's other files; the rest goes.
        shutil.copytree(private.root / "logs", tmp_path_factory.mktemp("fault-stack-logs"), dirs_exist_ok=True)
        shutil.rmtree(private.root, ignore_errors=True)


@dataclass
class Run:
    pipeline: PrivatePipeline
    result: DagRunResult
    state: EndState
    notes: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def runs(planned, stack) -> dict[str, Run]:
    """The clean run (the reference) and the faulted run of the same input, each in its own
    pipeline env on the private stack.

    They overlap to save minutes: the faulted run starts once the clean run's Spark job has read
    its offsets from Kafka (the job never goes back to Kafka: the events are cached), so only
    the faulted run's Kafka outage overlaps the rest of the clean run, which has finished
    before MinIO and Elasticsearch are stopped (checked: ``clean_finished_at``).
    """
    clean_pipeline, faulted_pipeline = planned.pipelines["clean"].result(), planned.pipelines["faulted"].result()
    clean_pipeline.create_bucket()
    faulted_pipeline.create_bucket()
    clean = clean_pipeline.dag_run(RUN_DATE, {"input_path": INPUT})
    notes: dict = {}
    faulted = None
    try:
        line = clean.wait_for(r"stage read_kafka: done")
        notes["clean_read_kafka_done_at"] = clean.line_time(line)
        faulted = faulted_pipeline.dag_run(RUN_DATE, {"input_path": INPUT})
        _inject_faults(stack, faulted, clean, notes)
    except BaseException:
        for run in (clean, faulted):
            if run is not None:
                run.kill()
        for service in stack.down_services():  # leave a whole stack for the other tests
            stack.start(service)
        raise
    clean_result, faulted_result = clean.finish(), faulted.finish()
    _log(
        f"clean run: {'succeeded' if clean_result.succeeded else 'FAILED'} in {clean_result.seconds:.0f}s "
        f"({clean_result.log_path})"
    )
    _log(
        f"faulted run: {'succeeded' if faulted_result.succeeded else 'FAILED'} in {faulted_result.seconds:.0f}s "
        f"({faulted_result.log_path})"
    )
    assert clean_result.succeeded, clean_result.log[-6000:]
    out = {
        "clean": Run(clean_pipeline, clean_result, end_state(clean_pipeline)),
        "faulted": Run(faulted_pipeline, faulted_result, end_state(faulted_pipeline), notes),
    }
    _write_observations(out["faulted"], out["clean"])
    return out


@pytest.fixture(scope="module")
def clean_run(runs) -> Run:
    return runs["clean"]


@pytest.fixture(scope="module")
def faulted_run(runs) -> Run:
    return runs["faulted"]


def _inject_faults(stack: PrivateStack, run: DagRun, clean: DagRun, notes: dict) -> None:
    """Kafka, MinIO and Elasticsearch, each stopped at its step of ``run`` (module docstring);
    ``notes`` records when each stop and restart happened."""
    pipeline = run.pipeline
    # 1. Kafka: down before produce_events' first request, until that attempt has failed.
    run.wait_for(r"\[DAG TEST\] starting task_id=plan_run ")
    notes["kafka_stop_seconds"] = stack.stop("kafka")
    notes["kafka_stopped_at"] = time.time()
    _log(f"kafka stopped ({notes['kafka_stop_seconds']:.1f}s)")
    line = run.wait_for(r"\[DAG TEST\] end task task_id=produce_events ")
    notes["produce_attempt_1_ended_at"] = run.line_time(line)
    notes["kafka_restart_seconds"] = stack.start("kafka")
    notes["kafka_up_at"] = time.time()
    _log(f"kafka up again ({notes['kafka_restart_seconds']:.1f}s to healthy)")

    # The clean run must be over before anything else it uses goes down.
    notes["clean_finished_at"] = clean.line_time(clean.wait_for(r"DagRun Finished", timeout=1200))

    # 2. MinIO: down as the archive stage starts, until S3 requests are seen waiting, >= 20 s.
    line = run.wait_for(r"stage archive: started", after=line)
    notes["archive_started_at"] = run.line_time(line)
    notes["minio_stop_seconds"] = stack.stop("minio")
    notes["minio_stopped_at"] = time.time()
    _log(f"minio stopped ({notes['minio_stop_seconds']:.1f}s)")
    notes["s3_threads_while_down"] = _s3_requests_in_driver(pipeline, deadline=time.time() + 90)
    time.sleep(max(0.0, notes["minio_stopped_at"] + OUTAGE_SECONDS - time.time()))
    notes["minio_restart_seconds"] = stack.start("minio")
    notes["minio_up_at"] = time.time()
    _log(
        f"minio up again after {notes['minio_up_at'] - notes['minio_stopped_at']:.0f}s down; "
        f"S3 requests seen waiting in threads {notes['s3_threads_while_down'][:3]}"
    )

    # 3. Elasticsearch: down as the job starts indexing; restarted at once (20-70 s to healthy).
    line = run.wait_for(r"stage write_elasticsearch: started", after=line)
    notes["es_write_started_at"] = run.line_time(line)
    notes["es_stop_seconds"] = stack.stop("elasticsearch")
    notes["es_stopped_at"] = time.time()
    _log(f"elasticsearch stopped ({notes['es_stop_seconds']:.1f}s)")
    notes["es_restart_seconds"] = stack.start("elasticsearch")
    notes["es_up_at"] = time.time()
    _log(f"elasticsearch up again ({notes['es_restart_seconds']:.1f}s to healthy)")


def _s3_requests_in_driver(pipeline: PrivatePipeline, deadline: float) -> list[str]:
    """Threads of the Spark job's driver (the JVM whose command line names this run's bucket)
    that sit in an S3 request or S3A's retry loop: proof the outage hit a request in flight."""
    while time.time() < deadline:
        for pid in java_pids("SparkSubmit", pipeline.bucket):
            threads = threads_in(pid, S3_REQUEST_FRAMES)
            if threads:
                return threads
        time.sleep(1)
    return []


def _write_observations(faulted: Run, clean: Run) -> None:
    """What each fault did, next to the run's log (for docs/hostile-input.md and debugging)."""
    attempts = {
        task: [
            {"failed": a.failed, "seconds": round(a.ended - a.started, 1), "errors": a.error_lines(6)}
            for a in faulted.result.task_attempts(task)
        ]
        for task in ("produce_events", "build_profiles")
    }
    report = {
        "notes": faulted.notes,
        "attempts": attempts,
        "faulted_seconds": round(faulted.result.seconds),
        "clean_seconds": round(clean.result.seconds),
        "counts": faulted.state.counts,
    }
    path = faulted.pipeline.root / "observations.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    _log(f"observations: {path}")


def _attempts(run: Run, task_id: str) -> list[Attempt]:
    attempts = run.result.task_attempts(task_id)
    assert attempts, f"no attempt of {task_id} in {run.result.log_path}"
    return attempts


# ---------------------------------------------------------- Kafka, in the middle of producing --
class _StopKafkaMidway:
    """The producer's progress logger: once some events are acknowledged (waiting a little for
    the first acknowledgements if needed), stop Kafka from inside the producing thread, and
    start it again OUTAGE_SECONDS later from another thread."""

    def __init__(self, stack: PrivateStack, total: int) -> None:
        self.stack, self.total = stack, total
        self.at_stop: dict = {}
        self.restarter: threading.Thread | None = None

    def info(self, message: str, *args) -> None:
        if self.at_stop or not message.startswith("produced "):
            return
        produced, delivered = args[0], args[1]
        if delivered == 0 and produced < self.total // 2:
            time.sleep(0.3)  # let the first acknowledgements arrive: stop with some delivered
            return
        self.at_stop = {"produced": produced, "delivered": delivered, "stop_seconds": self.stack.stop("kafka")}
        stopped_at = time.time()

        def restart() -> None:
            time.sleep(max(0.0, stopped_at + OUTAGE_SECONDS - time.time()))
            self.at_stop["restart_seconds"] = self.stack.start("kafka")
            self.at_stop["up_at"] = time.time()

        self.restarter = threading.Thread(target=restart, daemon=True)
        self.restarter.start()

    def warning(self, message: str, *args) -> None:
        _log("producer: " + message % args)

    error = warning


def test_kafka_stopped_mid_produce_for_20s_loses_and_doubles_nothing(stack, tmp_path):
    total = 20_000
    topic = f"faults_mid_produce_{uuid.uuid4().hex[:8]}"
    staging = tmp_path / "messages.tsv"
    staged = [
        (str(1515915625000000000 + i % 997).encode(), json.dumps({"n": i, "pad": "x" * 200}).encode())
        for i in range(total)
    ]
    staging.write_bytes(b"".join(key + b"\t" + value + b"\n" for key, value in staged))
    hook = _StopKafkaMidway(stack, total)

    started = time.time()
    summary = produce_run(
        lambda settings: Producer({"bootstrap.servers": stack.kafka_address, **settings}),
        AdminClient({"bootstrap.servers": stack.kafka_address}),
        staging,
        topic,
        num_partitions=3,
        progress_every=1000,
        logger=hook,
    )
    returned_at = time.time()
    assert hook.restarter is not None, "Kafka was never stopped"
    hook.restarter.join(timeout=300)
    _log(f"mid-produce outage: stopped at {hook.at_stop}, produce_run returned after {returned_at - started:.0f}s")

    # The stop came in the middle: some events acknowledged, some not yet even produced.
    assert 0 < hook.at_stop["delivered"] < hook.at_stop["produced"] < total
    # The producer waited for the broker (no failure) and returned only once it was back.
    assert returned_at >= hook.at_stop["up_at"] - 1
    assert summary["produced"] == summary["delivered"] == total and summary["failed"] == 0
    # Nothing lost, nothing doubled: the recorded offset range holds exactly the staged events.
    assert Counter(_consume(stack, topic, summary["starting_offsets"], summary["ending_offsets"])) == Counter(staged)


def _consume(stack: PrivateStack, topic: str, starting: str, ending: str) -> list[tuple[bytes, bytes]]:
    start, end = json.loads(starting)[topic], json.loads(ending)[topic]
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_address,
            "group.id": f"faults-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, int(p), int(o)) for p, o in start.items()])
    remaining = {int(p): int(end[p]) - int(o) for p, o in start.items() if int(end[p]) > int(o)}
    messages, deadline = [], time.time() + 120
    try:
        while remaining and time.time() < deadline:
            for message in consumer.consume(num_messages=5000, timeout=1.0):
                if (
                    message.error()
                    or message.partition() not in remaining
                    or message.offset() >= int(end[str(message.partition())])
                ):
                    continue
                messages.append((message.key(), message.value()))
                remaining[message.partition()] -= 1
                if not remaining[message.partition()]:
                    del remaining[message.partition()]
    finally:
        consumer.close()
    assert not remaining, f"could not read back the whole range: {remaining} messages missing"
    return messages


# ---------------------------------------------------------------------- the faulted DAG run --
def test_faulted_run_succeeds_thanks_to_retries(faulted_run):
    assert faulted_run.result.succeeded, faulted_run.result.log[-6000:]
    assert [a.failed for a in _attempts(faulted_run, "produce_events")] == [True, False]
    assert [a.failed for a in _attempts(faulted_run, "build_profiles")] == [True, False]
    for task in ("plan_run", "validate_events", "create_profile_index", "publish_profiles", "summarise_run"):
        assert [a.failed for a in _attempts(faulted_run, task)] == [False], f"{task} should have run once"


def test_kafka_down_fails_produce_events_naming_kafka_and_the_retry_delivers(faulted_run, stack):
    first, retry = _attempts(faulted_run, "produce_events")
    notes = faulted_run.notes
    assert first.failed
    # Kafka was down for the whole first attempt and came back before the retry.
    assert notes["kafka_stopped_at"] < first.started
    assert first.ended <= notes["kafka_up_at"] < retry.started
    assert f"Kafka at {stack.kafka_address}: " in first.text, first.error_lines()
    assert "Failed to get metadata" in first.text
    assert not retry.failed and "Delivered 2" in retry.text  # "Delivered <n>/<n> events"


def test_minio_stopped_during_the_archive_write_is_ridden_out(faulted_run):
    first = _attempts(faulted_run, "build_profiles")[0]
    notes = faulted_run.notes
    # The outage hit requests in flight: the driver had threads inside S3 calls while MinIO was down.
    assert notes["s3_threads_while_down"], "no S3 request was waiting while MinIO was down"
    assert notes["minio_up_at"] - notes["minio_stopped_at"] >= OUTAGE_SECONDS
    # It fell inside the archive stage, and the stage completed once MinIO was back, in the same attempt.
    done = first.first(r"stage archive: done")
    assert done, "the archive stage did not complete in the attempt MinIO was stopped in"
    assert notes["archive_started_at"] <= notes["minio_stopped_at"] < notes["minio_up_at"] <= done[0]
    assert first.first(r"stage write_elasticsearch: started"), "the attempt did not go on past the archive"


def test_elasticsearch_down_fails_build_profiles_naming_it_and_the_retry_completes(faulted_run):
    first, retry = _attempts(faulted_run, "build_profiles")
    notes = faulted_run.notes
    assert first.failed
    failed_at = first.first("Task failed with exception")[0]
    assert notes["es_write_started_at"] <= failed_at
    failing = "".join(line for moment, line in first.lines if moment >= notes["es_write_started_at"])
    # es-hadoop says Elasticsearch could not be used and names the node: the pipeline's
    # Elasticsearch address (the authenticating proxy, which answers 502 while ES is down, when
    # .env routes the pipeline through it).
    assert re.search(r"org\.elasticsearch\.hadoop\.\S*(Exception|Invalid\w*): ", failing), first.error_lines()
    assert (
        f"server[{faulted_run.pipeline.es_address}]" in failing or f"[{faulted_run.pipeline.es_address}]" in failing
    ), first.error_lines()
    assert notes["es_up_at"] < retry.first(r"stage write_elasticsearch: started")[0]
    assert not retry.failed and retry.first(r"stage write_elasticsearch: done")


def test_end_state_equals_a_clean_run(faulted_run, clean_run):
    notes = faulted_run.notes
    # The reference saw no fault: the faulted run stopped Kafka after the clean run's last Kafka
    # read, and MinIO and Elasticsearch only once the clean run was over.
    assert notes["clean_read_kafka_done_at"] < notes["kafka_stopped_at"]
    assert notes["clean_finished_at"] < notes["minio_stopped_at"] < notes["es_stopped_at"]
    faulted, clean = faulted_run.state, clean_run.state
    assert faulted.docs == clean.docs  # ES documents behind the alias, by _id and content
    assert faulted.archive == clean.archive  # raw/events rows, as a multiset
    assert faulted.snapshot == clean.snapshot  # profiles/snapshot_date=... rows
    assert faulted.counts == clean.counts  # every count of run_summary.json
    assert len(faulted.summaries) == len(clean.summaries) == 1
    assert len(faulted.indices) == 1, f"the retry must reuse the run's index: {faulted.indices}"
    # Each run's summary names the index its own alias ended on: its own, the only one it built.
    assert faulted.summaries[-1]["alias_now_on"] == faulted.indices
    assert clean.summaries[-1]["alias_now_on"] == clean.indices


def test_nothing_lost(faulted_run):
    counts, state = faulted_run.state.counts, faulted_run.state
    assert counts["rows_read"] == EVENTS
    assert counts["rows_read"] == counts["rows_accepted"] + counts["rows_quarantined"]
    assert counts["rows_accepted"] == counts["events_produced"]
    assert (
        counts["events_produced"]
        == counts["duplicates_in_run"] + counts["already_archived"] + counts["events_archived"]
    )
    assert sum(state.archive.values()) == counts["events_archived"]
    assert counts["profiles"] == len(state.docs) == sum(state.snapshot.values())

"""The processes `bin/bench ipc` runs: a sender and a receiver, or a pinger and an echoer, for
each system measured (this ring, iceoryx2, pyzmq PUSH/PULL and PAIR over ipc://,
multiprocessing.Queue), and the multi-ring round trip: an echoer that reads MULTI_RINGS input
rings the way services/process.py's Runner does, with one doorbell ("ring-inbox") or, as the
Runner did before, sleeping on each ring in turn for a slice ("ring-slices"). They run under
multiprocessing's spawn context, so each is a fresh interpreter that imports only what its
system needs.

Every system moves the same thing: `size`-byte records, one per message or `block` per message,
sent from a pre-built payload (no per-record construction on either side). The receiver times
from its first record to its last, so process start-up is not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

RING_CAPACITY = 1024  # records; iceoryx2 gets the same buffering
TIMEOUT = 30.0  # seconds any single wait may take before the run is declared failed
STALL = 10.0  # seconds a receiver may go without a record before the run is declared hung
GRACE = 1.0  # seconds without a record, after the sender finished, before the rest is lost
MULTI_RINGS = 4  # input rings of the multi-ring echoer (accounts reads cmd.1, cmd.2, execs.0...)
IDLE_S = 0.05  # the Runner's longest idle sleep (services/defaults.toml wait.sleep_ms)
SLICE_S = 0.001  # the per-ring slice of the Runner before the doorbell existed


@dataclass(frozen=True)
class Job:
    """What one peer does: which system, record size, records per message, how many records."""

    system: str  # "ring-busy", "ring-sleep", "ring-inbox", "ring-slices", "iceoryx2", ...
    size: int
    block: int
    count: int
    name: str  # ring/service/socket name unique to the run
    warmup: int = 0  # round trips before measuring (latency jobs)


def record_dtype(size: int) -> np.dtype:
    """A size-byte record of int64 fields (seq first)."""
    return np.dtype([("seq", "<i8")] + [(f"f{i}", "<i8") for i in range(size // 8 - 1)])


def ring_wait(system: str) -> Any:
    from ipc.ring import WaitConfig

    if system == "ring-busy":
        return WaitConfig.busy_poll(timeout=TIMEOUT)
    if system in MULTI_RING_SYSTEMS:  # the Runner's defaults: spin 5 us, 4 yields, then sleep
        return WaitConfig(sleep_timeout=IDLE_S, timeout=TIMEOUT)
    return WaitConfig.sleeping(timeout=TIMEOUT)


# -- one-way throughput --------------------------------------------------------------------


def receive(job: Job, ready: Any, sent: Any, done: Any, results: Any, queue: Any = None) -> None:
    """Receive job.count records and put {seconds (first to last record), records, lost} on
    results. A system that drops records (iceoryx2 does under load, despite
    RetryUntilDelivered) ends GRACE seconds after its sender finished, with `lost` > 0."""
    receivers: dict[str, Callable[..., tuple[Callable[[], int], Callable[[], None]]]] = {
        "ring-busy": _ring_receiver,
        "ring-sleep": _ring_receiver,
        "iceoryx2": _iceoryx2_receiver,
        "zmq": _zmq_receiver,
        "mpqueue": _queue_receiver,
    }
    take, cleanup = receivers[job.system](job, queue)
    ready.set()
    clock = time.perf_counter
    deadline = clock() + TIMEOUT
    got = 0
    while not got:
        got = take()
        if clock() > deadline:
            raise TimeoutError(f"{job.system}: no record within {TIMEOUT}s")
    first = got
    start = end = clock()
    idle_since = 0.0
    while got < job.count:
        taken = take()
        if taken:
            got += taken
            idle_since = 0.0
            continue
        now = clock()
        if not idle_since:
            idle_since = now
        elif now - idle_since > GRACE and sent.is_set():
            end = idle_since
            break
        elif now - idle_since > STALL:
            raise TimeoutError(f"{job.system}: stuck at {got} of {job.count} records")
    else:
        end = clock()
    done.set()
    cleanup()
    results.put({"seconds": end - start, "records": got - first, "lost": job.count - got})


def send(job: Job, sent: Any, done: Any, queue: Any = None) -> None:
    """Send job.count records as job.count / job.block messages; stay until they are received
    (an iceoryx2 publisher takes its undelivered samples with it)."""
    senders: dict[str, Callable[..., tuple[Callable[[], None], Callable[[], None]]]] = {
        "ring-busy": _ring_sender,
        "ring-sleep": _ring_sender,
        "iceoryx2": _iceoryx2_sender,
        "zmq": _zmq_sender,
        "mpqueue": _queue_sender,
    }
    put, cleanup = senders[job.system](job, queue)
    for _ in range(job.count // job.block):
        put()
    sent.set()
    done.wait(TIMEOUT)
    cleanup()


def _ring_receiver(job: Job, _queue: Any) -> tuple[Callable[[], int], Callable[[], None]]:
    from ipc.ring import Ring

    ring = Ring.attach(job.name, record_dtype(job.size))
    reader = ring.reader("bench", ring_wait(job.system))
    if job.block == 1:
        get = reader.get

        def take() -> int:
            return 0 if get() is None else 1
    else:
        read, release = reader.read, reader.release

        def take() -> int:
            count = len(read(job.block))
            release(count)
            return count

    def cleanup() -> None:
        reader.close()
        ring.close()

    return take, cleanup


def _ring_sender(job: Job, _queue: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    from ipc.ring import Ring

    ring = Ring.attach(job.name, record_dtype(job.size))
    writer = ring.writer(ring_wait(job.system))
    if job.block == 1:
        record = np.zeros(1, ring.dtype)[0]
        put_one = writer.put

        def put() -> None:
            put_one(record)
    else:
        records = np.zeros(job.block, ring.dtype)
        write = writer.write

        def put() -> None:
            write(records)

    def cleanup() -> None:
        writer.close()
        ring.close()

    return put, cleanup


def _iceoryx2_payload(job: Job) -> type:
    import ctypes

    fields = [(f"f{i}", ctypes.c_int64) for i in range(job.size // 8)]
    record = type(f"Record{job.size}", (ctypes.Structure,), {"_fields_": fields})
    if job.block == 1:
        return record
    return type(
        f"Block{job.size}x{job.block}",
        (ctypes.Structure,),
        {"_fields_": [("records", record * job.block)]},
    )


def _iceoryx2_service(name: str, payload: type, depth: int) -> tuple[Any, Any]:
    import iceoryx2 as iox2

    iox2.set_log_level(iox2.LogLevel.Error)
    node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    service = (
        node.service_builder(iox2.ServiceName.new(name))
        .publish_subscribe(payload)
        .enable_safe_overflow(False)
        .subscriber_max_buffer_size(depth)
        .open_or_create()
    )
    return node, service


def _iceoryx2_depth(job: Job) -> int:
    return max(RING_CAPACITY // job.block, 2)


def _iceoryx2_receiver(job: Job, _queue: Any) -> tuple[Callable[[], int], Callable[[], None]]:
    payload = _iceoryx2_payload(job)
    node, service = _iceoryx2_service(job.name, payload, _iceoryx2_depth(job))
    subscriber = service.subscriber_builder().buffer_size(_iceoryx2_depth(job)).create()
    keep = [node, service]  # dropped (and cleaned up by iceoryx2) in cleanup()
    receive_one = subscriber.receive
    block = job.block

    def take() -> int:
        sample = receive_one()
        if sample is None:
            return 0
        sample.delete()
        return block

    def cleanup() -> None:
        subscriber.delete()
        keep.clear()

    return take, cleanup


def _iceoryx2_sender(job: Job, _queue: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    import iceoryx2 as iox2

    payload_type = _iceoryx2_payload(job)
    node, service = _iceoryx2_service(job.name, payload_type, _iceoryx2_depth(job))
    keep = [node, service]
    publisher = (
        service.publisher_builder()
        .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
        .create()
    )
    payload = payload_type()
    send_copy = publisher.send_copy

    def put() -> None:
        send_copy(payload)

    def cleanup() -> None:
        publisher.delete()
        keep.clear()

    return put, cleanup


def _zmq_receiver(job: Job, _queue: Any) -> tuple[Callable[[], int], Callable[[], None]]:
    import zmq

    context = zmq.Context()
    socket = context.socket(zmq.PULL)
    socket.setsockopt(zmq.RCVTIMEO, int(TIMEOUT * 1000))
    socket.bind(job.name)
    recv = socket.recv
    block = job.block

    def take() -> int:
        recv(copy=False)
        return block

    def cleanup() -> None:
        socket.close(linger=0)
        context.term()

    return take, cleanup


def _zmq_sender(job: Job, _queue: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    import zmq

    context = zmq.Context()
    socket = context.socket(zmq.PUSH)
    socket.connect(job.name)
    message = bytes(job.size * job.block)
    send_one = socket.send

    def put() -> None:
        send_one(message)

    def cleanup() -> None:
        socket.close(linger=-1)
        context.term()

    return put, cleanup


def _queue_receiver(job: Job, queue: Any) -> tuple[Callable[[], int], Callable[[], None]]:
    get = queue.get
    block = job.block

    def take() -> int:
        get(timeout=TIMEOUT)
        return block

    return take, lambda: None


def _queue_sender(job: Job, queue: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    message = bytes(job.size * job.block)
    put_one = queue.put

    def put() -> None:
        put_one(message)

    def cleanup() -> None:
        queue.close()
        queue.join_thread()

    return put, cleanup


# -- round trip -------------------------------------------------------------------------------


def echo(job: Job, ready: Any, queues: Any = None) -> None:
    """Send every record straight back, job.warmup + job.count times."""
    exchange, cleanup = _ENDPOINTS[job.system](job, queues, server=True)
    ready.set()
    for _ in range(job.warmup + job.count):
        exchange()
    cleanup()


def ping(job: Job, results: Any, queues: Any = None) -> None:
    """Time job.count round trips (after job.warmup); put the sorted latencies (ns) on results."""
    exchange, cleanup = _ENDPOINTS[job.system](job, queues, server=False)
    clock = time.perf_counter_ns
    for _ in range(job.warmup):
        exchange()
    latencies = []
    for _ in range(job.count):
        start = clock()
        exchange()
        latencies.append(clock() - start)
    cleanup()
    results.put(sorted(latencies))


def _ring_endpoint(job: Job, _queues: Any, server: bool) -> tuple[Callable[[], None], Any]:
    """Client: put on .ping, get from .pong; server: the other way round (one record each)."""
    from ipc.errors import RingTimeout
    from ipc.ring import Ring

    dtype = record_dtype(job.size)
    wait = ring_wait(job.system)
    inbound = Ring.attach(f"{job.name}.{'ping' if server else 'pong'}", dtype)
    outbound = Ring.attach(f"{job.name}.{'pong' if server else 'ping'}", dtype)
    reader = inbound.reader("bench", wait)
    writer = outbound.writer(wait)
    get, put = reader.get, writer.put
    record = np.zeros(1, dtype)[0]

    def receive() -> Any:
        got = get()
        if got is None:
            raise RingTimeout(f"no reply within {TIMEOUT}s")
        return got

    def exchange() -> None:
        if server:
            put(receive())
        else:
            put(record)
            receive()

    def cleanup() -> None:
        reader.close()
        writer.close()
        inbound.close()
        outbound.close()

    return exchange, cleanup


def _iceoryx2_endpoint(job: Job, _queues: Any, server: bool) -> tuple[Callable[[], None], Any]:
    import iceoryx2 as iox2

    payload_type = _iceoryx2_payload(job)
    node, inbound = _iceoryx2_service(f"{job.name}/{'ping' if server else 'pong'}", payload_type, 2)
    other_node, outbound = _iceoryx2_service(
        f"{job.name}/{'pong' if server else 'ping'}", payload_type, 2
    )
    keep = [node, inbound, other_node, outbound]
    subscriber = inbound.subscriber_builder().buffer_size(2).create()
    publisher = (
        outbound.publisher_builder()
        .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
        .create()
    )
    payload = payload_type()
    receive_one, send_copy = subscriber.receive, publisher.send_copy
    deadline_s = TIMEOUT

    def receive() -> None:
        start = time.monotonic()
        while (sample := receive_one()) is None:
            if time.monotonic() - start > deadline_s:
                raise TimeoutError(f"no iceoryx2 reply within {TIMEOUT}s")
        sample.delete()

    def exchange() -> None:
        if server:
            receive()
            send_copy(payload)
        else:
            send_copy(payload)
            receive()

    def cleanup() -> None:
        subscriber.delete()
        publisher.delete()
        keep.clear()

    return exchange, cleanup


def _zmq_endpoint(job: Job, _queues: Any, server: bool) -> tuple[Callable[[], None], Any]:
    import zmq

    context = zmq.Context()
    socket = context.socket(zmq.PAIR)
    socket.setsockopt(zmq.RCVTIMEO, int(TIMEOUT * 1000))
    if server:
        socket.bind(job.name)
    else:
        socket.connect(job.name)
    message = bytes(job.size)
    send_one, recv = socket.send, socket.recv

    def exchange() -> None:
        if server:
            send_one(recv(copy=False), copy=False)
        else:
            send_one(message)
            recv(copy=False)

    def cleanup() -> None:
        socket.close(linger=0)
        context.term()

    return exchange, cleanup


def _queue_endpoint(job: Job, queues: Any, server: bool) -> tuple[Callable[[], None], Any]:
    pings, pongs = queues
    inbound, outbound = (pings, pongs) if server else (pongs, pings)
    message = bytes(job.size)
    get, put = inbound.get, outbound.put

    def exchange() -> None:
        if server:
            put(get(timeout=TIMEOUT))
        else:
            put(message)
            get(timeout=TIMEOUT)

    return exchange, lambda: None


def multi_ring_names(name: str) -> list[str]:
    """The rings of a multi-ring round trip: MULTI_RINGS ping rings, then the pong ring."""
    return [f"{name}.ping{i}" for i in range(MULTI_RINGS)] + [f"{name}.pong"]


def _multi_ring_endpoint(job: Job, _queues: Any, server: bool) -> tuple[Callable[[], None], Any]:
    """Client: put on the next ping ring in turn, wait for the pong; server: one Runner-like
    idle turn after another until a ping arrives on any ring, then answer it on pong."""
    from ipc.errors import RingTimeout
    from ipc.ring import Ring

    if server:
        turn, reply, cleanup = _multi_ring_server(job)

        def answer() -> None:
            started = time.monotonic()
            while not turn():
                if time.monotonic() - started > TIMEOUT:
                    raise RingTimeout(f"no ping within {TIMEOUT}s")
            reply()

        return answer, cleanup
    dtype = record_dtype(job.size)
    wait = ring_wait(job.system)
    *pings, pong = (Ring.attach(name, dtype) for name in multi_ring_names(job.name))
    writers = [ring.writer(wait) for ring in pings]
    answers = pong.reader("bench", wait)
    record = np.zeros(1, dtype)[0]
    sent = [0]

    def exchange() -> None:
        writers[sent[0] % MULTI_RINGS].put(record)
        sent[0] += 1
        if answers.get() is None:
            raise RingTimeout(f"no reply within {TIMEOUT}s")

    def close() -> None:
        answers.close()
        for writer in writers:
            writer.close()
        for ring in (*pings, pong):
            ring.close()

    return exchange, close


def _multi_ring_server(
    job: Job,
) -> tuple[Callable[[], bool], Callable[[], None], Callable[[], None]]:
    """(turn, reply, cleanup): `turn` is one turn of an idle Runner over the ping rings (read
    each; if all are empty wait the Runner's way, then read again); True if it took a ping."""
    from ipc.doorbell import Doorbell, Inbox
    from ipc.ring import Ring

    dtype = record_dtype(job.size)
    wait = ring_wait(job.system)
    *pings, pong = (Ring.attach(name, dtype) for name in multi_ring_names(job.name))
    doorbell = Doorbell.open(f"{job.name}.bell") if job.system == "ring-inbox" else None
    readers = [ring.reader("bench", wait, doorbell) for ring in pings]
    inbox = Inbox(readers, doorbell, wait) if doorbell is not None else None
    writer = pong.writer(wait)
    record = np.zeros(1, dtype)[0]
    share = min(IDLE_S / MULTI_RINGS, SLICE_S)

    def take(timeout: float) -> bool:
        for reader in readers:
            if len(reader.read(1, timeout=timeout)):
                reader.release(1)
                return True
        return False

    def turn() -> bool:
        if take(0.0):
            return True
        if inbox is None:
            return take(share)
        return inbox.wait(IDLE_S) and take(0.0)

    def reply() -> None:
        writer.put(record)

    def cleanup() -> None:
        for reader in readers:
            reader.close()
        writer.close()
        if doorbell is not None:
            doorbell.close()
        for ring in (*pings, pong):
            ring.close()

    return turn, reply, cleanup


def idle_cpu(job: Job, seconds: float, results: Any) -> None:
    """Put the CPU share (CPU seconds per second) of a multi-ring echoer that gets nothing."""
    turn, _reply, cleanup = _multi_ring_server(job)
    wall, cpu = time.monotonic(), time.process_time()
    while time.monotonic() - wall < seconds:
        turn()
    results.put((time.process_time() - cpu) / (time.monotonic() - wall))
    cleanup()


MULTI_RING_SYSTEMS = ("ring-inbox", "ring-slices")

_ENDPOINTS: dict[str, Callable[..., tuple[Callable[[], None], Any]]] = {
    "ring-busy": _ring_endpoint,
    "ring-sleep": _ring_endpoint,
    "ring-inbox": _multi_ring_endpoint,
    "ring-slices": _multi_ring_endpoint,
    "iceoryx2": _iceoryx2_endpoint,
    "zmq": _zmq_endpoint,
    "mpqueue": _queue_endpoint,
}

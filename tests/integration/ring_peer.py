"""A ring writer or reader run as its own process by the integration tests.

    python -m tests.integration.ring_peer write RING COUNT [--block B] [--wait MODE]
    python -m tests.integration.ring_peer read RING READER COUNT [--block B] [--pause-every N]

The reader checks every record (sequence and checksum) and prints one JSON line on success:
{"first": <first sequence seen>, "count": <records read>}. It exits 1 on the first bad record.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from ipc.ring import Ring, WaitConfig
from tests.integration import ring_records

WAITS = {
    "default": WaitConfig(timeout=30.0),
    "busy": WaitConfig.busy_poll(timeout=30.0),
    "sleep": WaitConfig.sleeping(timeout=30.0),
    "sleep-forever": WaitConfig(spin_us=0, yield_count=0, sleep_timeout=3600.0, timeout=math.inf),
}


def write(ring: Ring, count: int, block: int, wait: WaitConfig) -> None:
    """Publish records 0..count-1 after whatever is already there: in blocks, or one by one."""
    writer = ring.writer(wait)
    first = writer.published
    if block == 0:
        for seq in range(first, first + count):
            writer.put(ring_records.make(seq, 1, ring.dtype)[0])
    else:
        seq = first
        while seq < first + count:
            view = writer.reserve(min(block, first + count - seq))
            ring_records.fill(view, seq)
            writer.publish(len(view))
            seq += len(view)
    writer.close()


def read(ring: Ring, name: str, count: int, block: int, pause_every: int, wait: WaitConfig) -> int:
    """Read and check `count` records from the reader's cursor on; returns the exit status."""
    reader = ring.reader(name, wait)
    first = reader.cursor
    seq = first
    print(json.dumps({"started": first}), flush=True)
    while seq < first + count:
        if block == 0:
            record = reader.get()
            if record is None:
                continue
            problem = ring_records.check_one(record, seq)
            taken = 1
        else:
            view = reader.read(min(block, first + count - seq))
            if not len(view):
                continue
            problem = ring_records.check(view, seq)
            taken = len(view)
            reader.release(taken)
        if problem:
            print(json.dumps({"error": problem}), flush=True)
            return 1
        seq += taken
        if pause_every and seq % pause_every == 0:
            time.sleep(0.001)
    reader.close()
    print(json.dumps({"first": first, "count": seq - first}), flush=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    w = sub.add_parser("write")
    w.add_argument("ring")
    w.add_argument("count", type=int)
    r = sub.add_parser("read")
    r.add_argument("ring")
    r.add_argument("reader")
    r.add_argument("count", type=int)
    r.add_argument("--pause-every", type=int, default=0)
    for p in (w, r):
        p.add_argument("--block", type=int, default=64, help="0 = one record at a time")
        p.add_argument("--wait", choices=sorted(WAITS), default="default")
        p.add_argument("--wide", action="store_true", help="128-byte records")
    args = parser.parse_args(argv)
    dtype = ring_records.RECORD_128 if args.wide else ring_records.RECORD
    ring = Ring.attach(args.ring, dtype)
    try:
        if args.role == "write":
            write(ring, args.count, args.block, WAITS[args.wait])
            return 0
        return read(ring, args.reader, args.count, args.block, args.pause_every, WAITS[args.wait])
    finally:
        ring.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Measures a journal export and a journal stream replay of a 10,000-block ledger against
moto's S3 and Kinesis (server mode, on loopback).

    compat-tests/run-all.sh   # once: builds target/release/qldb-local and the venvs
    compat-tests/.venv/bin/python benches/export_10k.py [--blocks 10000]

Writes the blocks with the pinned pyqldb driver from 8 threads (one document per
transaction, so one journal block each), then times ExportJournalToS3 from the request to
COMPLETED (objects and bytes written) in each format, and a StreamJournalToKinesis replay
from the request until every BLOCK_SUMMARY is in the shard. Results go to docs/performance.md.
"""

import argparse
import concurrent.futures
import pathlib
import sys
import time

import boto3

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "compat-tests"))
from moto_harness import MotoServer  # noqa: E402
from qldb_harness import ACCESS_KEY, REGION, SECRET_KEY, Server  # noqa: E402
from pyqldb.driver.qldb_driver import QldbDriver  # noqa: E402

KW = dict(region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def wait(fn, what, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()

    moto = MotoServer().start()
    env = dict(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_REGION=REGION,
               AWS_EC2_METADATA_DISABLED="true")
    server = Server(extra_args=["--auth", "off", "--durability", "relaxed",
                                "--s3-endpoint", moto.endpoint, "--kinesis-endpoint", moto.endpoint],
                    env=env).start()
    try:
        qldb = boto3.client("qldb", endpoint_url=server.endpoint, **KW)
        s3 = boto3.client("s3", endpoint_url=moto.endpoint, **KW)
        kinesis = boto3.client("kinesis", endpoint_url=moto.endpoint, **KW)
        before = time.time() - 5
        qldb.create_ledger(Name="bench", PermissionsMode="STANDARD", DeletionProtection=False)
        drivers = [QldbDriver("bench", endpoint_url=server.endpoint, **KW) for _ in range(args.threads)]
        drivers[0].execute_lambda(lambda t: t.execute_statement("CREATE TABLE Items"))
        t0 = time.perf_counter()

        def work(i):
            d = drivers[i % args.threads]
            d.execute_lambda(lambda t: t.execute_statement("INSERT INTO Items ?", {"n": i, "pad": "x" * 100}))

        with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(work, range(args.blocks - 2)))  # + genesis + CREATE TABLE
        print(f"wrote {args.blocks} blocks in {time.perf_counter() - t0:.1f} s")
        time.sleep(1.1)  # botocore sends whole seconds
        end = time.time()

        for fmt in ["ION_TEXT", "ION_BINARY", "JSON"]:
            bucket = f"bench-{fmt.lower().replace('_', '-')}"
            s3.create_bucket(Bucket=bucket)
            t0 = time.perf_counter()
            eid = qldb.export_journal_to_s3(
                Name="bench", InclusiveStartTime=before, ExclusiveEndTime=end, OutputFormat=fmt,
                RoleArn="arn:aws:iam::123456789012:role/bench",
                S3ExportConfiguration={"Bucket": bucket, "Prefix": "j/",
                                       "EncryptionConfiguration": {"ObjectEncryptionType": "SSE_S3"}})["ExportId"]
            status = wait(lambda: (lambda s: s if s != "IN_PROGRESS" else None)(
                qldb.describe_journal_s3_export(Name="bench", ExportId=eid)["ExportDescription"]["Status"]),
                "the export")
            secs = time.perf_counter() - t0
            objs = [o for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                    for o in p.get("Contents", [])]
            data = [o for o in objs if not o["Key"].endswith(".manifest")]
            print(f"export {fmt}: {status} in {secs:.2f} s; {len(objs)} objects "
                  f"({len(data)} data objects, {sum(o['Size'] for o in data) / 1e6:.1f} MB)")

        kinesis.create_stream(StreamName="bench", ShardCount=1)
        arn = kinesis.describe_stream(StreamName="bench")["StreamDescription"]["StreamARN"]
        t0 = time.perf_counter()
        sid = qldb.stream_journal_to_kinesis(
            LedgerName="bench", StreamName="bench", RoleArn="arn:aws:iam::123456789012:role/bench",
            InclusiveStartTime=before, KinesisConfiguration={"StreamArn": arn})["StreamId"]
        it = kinesis.get_shard_iterator(StreamName="bench", ShardId="shardId-000000000000",
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got = 0
        want = args.blocks  # CREATED + one aggregated record per block with revisions
        deadline = time.monotonic() + 600
        while got < want - 1 and time.monotonic() < deadline:
            r = kinesis.get_records(ShardIterator=it, Limit=10000)
            got += len(r["Records"])
            it = r["NextShardIterator"]
            if not r["Records"]:
                time.sleep(0.05)
        print(f"stream replay: {got} Kinesis records in {time.perf_counter() - t0:.2f} s "
              f"(stream {sid})")
    finally:
        server.close()
        moto.stop()


if __name__ == "__main__":
    main()

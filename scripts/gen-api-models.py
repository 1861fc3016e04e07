#!/usr/bin/env python3
"""Regenerate api-models/ from the pinned botocore wheel.

botocore 1.40.60 is the last release that ships the `qldb` (2019-01-02) and
`qldb-session` (2019-07-11) service models. This script downloads that wheel
with pip (or uses the one given with --wheel), takes each service's
service-2.json and endpoint-rule-set-1.json, removes the documentation
strings, and writes them in botocore's directory layout:

    api-models/<service>/<api-version>/{service-2.json,endpoint-rule-set-1.json}

With AWS_DATA_PATH=<repo>/api-models, botocore releases that dropped QLDB
(boto3 > 1.40.60, AWS CLI v1 > 1.42.60) load these models again.

Usage: python3 scripts/gen-api-models.py [--wheel PATH] [--out DIR]
"""

import argparse
import gzip
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

BOTOCORE_PIN = "1.40.60"
SERVICES = {"qldb": "2019-01-02", "qldb-session": "2019-07-11"}
FILES = ("service-2.json", "endpoint-rule-set-1.json")
DOC_KEYS = {"documentation", "documentationUrl"}


def strip_docs(node):
    if isinstance(node, dict):
        return {k: strip_docs(v) for k, v in node.items() if k not in DOC_KEYS}
    if isinstance(node, list):
        return [strip_docs(v) for v in node]
    return node


def download_wheel(dest: pathlib.Path) -> pathlib.Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         f"botocore=={BOTOCORE_PIN}", "-d", str(dest)],
        check=True,
    )
    return next(dest.glob(f"botocore-{BOTOCORE_PIN}-*.whl"))


def read_member(wheel: zipfile.ZipFile, name: str) -> dict:
    for candidate in (name, name + ".gz"):
        try:
            raw = wheel.read(candidate)
        except KeyError:
            continue
        if candidate.endswith(".gz"):
            raw = gzip.decompress(raw)
        return json.loads(raw)
    raise SystemExit(f"{name} not found in the wheel")


def main() -> None:
    repo = pathlib.Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=pathlib.Path, help="a botocore wheel to read")
    parser.add_argument("--out", type=pathlib.Path, default=repo / "api-models")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        wheel_path = args.wheel or download_wheel(pathlib.Path(tmp))
        with zipfile.ZipFile(wheel_path) as wheel:
            for service, version in SERVICES.items():
                target = args.out / service / version
                target.mkdir(parents=True, exist_ok=True)
                for fname in FILES:
                    model = strip_docs(read_member(wheel, f"botocore/data/{service}/{version}/{fname}"))
                    with open(target / fname, "w", encoding="utf-8") as out:
                        json.dump(model, out, indent=2, ensure_ascii=False)
                        out.write("\n")
                    print(f"wrote {target / fname}")


if __name__ == "__main__":
    main()

"""A smoke test against an already running qldb-local (any deployment: a container, a host).

Reads the endpoint from AWS_ENDPOINT_URL_QLDB like every AWS SDK does, so it runs unchanged
against any qldb-local: create a ledger, describe it, tag it, delete it.
    AWS_ENDPOINT_URL_QLDB=http://127.0.0.1:8901 python compat-tests/smoke.py
"""

import sys
import uuid

import boto3


def main() -> int:
    qldb = boto3.client("qldb")
    name = "smoke-" + uuid.uuid4().hex[:12]
    created = qldb.create_ledger(Name=name, PermissionsMode="STANDARD", DeletionProtection=False)
    assert created["Name"] == name, created
    described = qldb.describe_ledger(Name=name)
    assert described["State"] == "ACTIVE", described
    qldb.tag_resource(ResourceArn=created["Arn"], Tags={"smoke": "yes"})
    assert qldb.list_tags_for_resource(ResourceArn=created["Arn"])["Tags"] == {"smoke": "yes"}
    qldb.delete_ledger(Name=name)
    try:
        qldb.describe_ledger(Name=name)
    except qldb.exceptions.ResourceNotFoundException:
        pass
    else:
        raise AssertionError("the ledger is still there after DeleteLedger")
    print(f"smoke test passed against {qldb.meta.endpoint_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""IAM on moto's server, for the credential chain's tests: a role allowed S3 (`s3_role`), a user
allowed nothing but `sts:AssumeRole` (`assume_only_user`: its keys alone cannot touch S3, so a
sync that works proves the role was assumed), and credentials minted by moto's STS (`mint`).
botocore, in a thread (it blocks)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from support.s3_server import S3Server
from support.waiting import in_thread


async def s3_role(server: S3Server) -> str:
    """A new role allowed every S3 action (and `sts:AssumeRole`), that anyone may assume."""
    iam = server.client("iam")
    name = f"s3sync-{uuid.uuid4().hex[:8]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "*"},  # moto matches principals exactly, or "*"
                "Action": "sts:AssumeRole",
            },
            {
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/eks"},
                "Action": "sts:AssumeRoleWithWebIdentity",
            },
        ],
    }
    s3_only = {  # and the right to assume another such role (a role on top of a role)
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sts:AssumeRole"], "Resource": "*"}],
    }

    def create() -> str:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
        iam.put_role_policy(RoleName=name, PolicyName="s3", PolicyDocument=json.dumps(s3_only))
        return str(arn)

    return await in_thread(create)


async def assume_only_user(server: S3Server) -> dict[str, str]:
    """Keys of a new user allowed only `sts:AssumeRole` (as AWS_* variables)."""
    iam = server.client("iam")
    name = f"assumer-{uuid.uuid4().hex[:8]}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
    }

    def create() -> dict[str, str]:
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="assume", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }

    return await in_thread(create)


async def mint(server: S3Server, role_arn: str) -> dict[str, str]:
    """Fresh credentials of `role_arn` from moto's STS, as an endpoint hands them out."""
    sts = server.client("sts")

    def assume() -> dict[str, Any]:
        return dict(
            sts.assume_role(RoleArn=role_arn, RoleSessionName=uuid.uuid4().hex[:12])["Credentials"]
        )

    creds = await in_thread(assume)
    return {
        "AccessKeyId": creds["AccessKeyId"],
        "SecretAccessKey": creds["SecretAccessKey"],
        "Token": creds["SessionToken"],
    }

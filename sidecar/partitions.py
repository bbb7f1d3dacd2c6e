"""AWS partitions: which one a region belongs to, its DNS suffix, and the S3 host names the
AWS SDKs build from it, with the FIPS and dual-stack variants (`AWS_USE_FIPS_ENDPOINT`,
`AWS_USE_DUALSTACK_ENDPOINT`).

Pure and standard library only. The table is botocore's `endpoints.json` reduced to what S3's
default endpoint needs, for the commercial, China and GovCloud partitions: a region is in the
first partition whose prefix it starts with, else in `aws` (the isolated partitions need
`SYNC_ENDPOINT`). China has no FIPS endpoints (`s3_host` raises ValueError: a setting problem
at start).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    dns_suffix: str
    fips: bool = True  # whether S3 has FIPS endpoints there


AWS = Partition("aws", "amazonaws.com")
PARTITIONS: tuple[tuple[str, Partition], ...] = (
    ("cn-", Partition("aws-cn", "amazonaws.com.cn", fips=False)),
    ("us-gov-", Partition("aws-us-gov", "amazonaws.com")),
)


def partition_of(region: str) -> Partition:
    for prefix, partition in PARTITIONS:
        if region.startswith(prefix):
            return partition
    return AWS


def s3_host(region: str, *, fips: bool = False, dualstack: bool = False) -> str:
    """S3's regional host name, as the SDKs build it: `s3.<region>.<suffix>`, `s3-fips.`,
    `s3.dualstack.`, `s3-fips.dualstack.`. ValueError for FIPS where the partition has none."""
    partition = partition_of(region)
    if fips and not partition.fips:
        raise ValueError(f"the {partition.name} partition has no FIPS endpoints")
    service = "s3-fips" if fips else "s3"
    if dualstack:
        return f"{service}.dualstack.{region}.{partition.dns_suffix}"
    return f"{service}.{region}.{partition.dns_suffix}"


def s3_endpoint(region: str, *, fips: bool = False, dualstack: bool = False) -> str:
    """The default endpoint pattern (virtual-hosted, `{}` for the bucket) for `region`."""
    return "https://{}." + s3_host(region, fips=fips, dualstack=dualstack) + "/"


__all__ = ["PARTITIONS", "Partition", "partition_of", "s3_endpoint", "s3_host"]

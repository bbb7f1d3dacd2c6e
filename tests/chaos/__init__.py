"""The seeded chaos test (issue 9): three sidecars on three folders sharing one prefix, a direct
S3 writer, random faults between each sidecar and S3, kill -9 and SIGTERM restarts, and a
seeded schedule of what apps do to folders. After the schedule, faults are healed and the
world settles; then every folder and the bucket must agree, no write that completed may be
lost unless a later operation saw it and replaced it, and nothing may be written outside the
folders.

- `plan.py`: the schedule, a pure function of the seed.
- `ledger.py`: every completed write (by content) and what later operations saw and replaced.
- `world.py`: moto's server, the fault proxies, the sidecar processes.
- `act.py`: carries out one step, on a folder or on S3, recording it in the ledger.
- `verify.py`: snapshots of the folders and the bucket, and the checks.
- `run.py`: one seed end to end, and the command line (`make chaos`).
"""

"""``abl jobs``: the jobs on a Ray cluster, oldest first, with their status.

abl jobs --address http://HEAD:8265
"""

from __future__ import annotations

import click
from rich.table import Table

from abl.cli._jobs import address_option, connect, job_id, metadata, sorted_jobs, status_of, when
from abl.cli._render import terminal


@click.command("jobs")
@address_option
def command(address: str) -> None:
    """List the jobs of the Ray cluster at --address (submitted by abl or not)."""
    client = connect(address)
    jobs = sorted_jobs(client)
    console = terminal()
    if not jobs:
        console.print(f"no jobs on {address}")
        return
    table = Table("job", "status", "space", "trials", "started", "ended", "message")
    for job in jobs:
        meta = metadata(job)
        message = (job.message or "").splitlines()[0] if job.message else ""
        table.add_row(
            job_id(job),
            status_of(job),
            meta.get("abl_space", ""),
            meta.get("abl_trials", ""),
            when(job.start_time),
            when(job.end_time),
            message[:80],
        )
    console.print(table)

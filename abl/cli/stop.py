"""``abl stop JOB``: stop a job on a Ray cluster (its trials end; results so far are kept).

abl stop abl-quickstart-20260101-120000-ab12 --address http://HEAD:8265
"""

from __future__ import annotations

import click

from abl.cli._jobs import TERMINAL, address_option, connect, job_info, status_of, wait_until_done


@click.command("stop")
@click.argument("job")
@address_option
@click.option(
    "--wait",
    "wait_s",
    default=30.0,
    show_default=True,
    help="Seconds to wait for the job to end; 0 returns at once.",
)
def command(job: str, address: str, wait_s: float) -> None:
    """Stop JOB; what its trials reported so far stays in the run directory and MLflow."""
    client = connect(address)
    status = status_of(job_info(client, job, address))
    if status in TERMINAL:
        click.echo(f"{job}: already {status}")
        return
    client.stop_job(job)
    status = wait_until_done(client, job, wait_s) if wait_s > 0 else "stopping"
    click.echo(f"{job}: {status}")

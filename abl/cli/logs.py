"""``abl logs JOB [--follow]``: the output of a job on a Ray cluster.

abl logs abl-quickstart-20260101-120000-ab12 --follow --address http://HEAD:8265
"""

from __future__ import annotations

import click

from abl.cli._jobs import address_option, connect, follow_logs, job_info, status_of


@click.command("logs")
@click.argument("job")
@address_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job ends.")
def command(job: str, address: str, follow: bool) -> None:
    """Print the logs of JOB (its submission id, as `abl submit` and `abl jobs` show it)."""
    client = connect(address)
    job_info(client, job, address)  # an unknown id is an AblError naming the known ones
    if follow:
        follow_logs(client, job)
        click.echo(f"{job}: {status_of(client.get_job_info(job))}", err=True)
    else:
        click.echo(client.get_job_logs(job), nl=False)

"""What ``abl submit``, ``abl jobs``, ``abl logs`` and ``abl stop`` share: the Ray Jobs API client.

The Jobs API is served by the Ray dashboard of the head node (``http://HEAD:8265``); these
commands talk to it over HTTP with Ray's own ``JobSubmissionClient``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import TYPE_CHECKING, Any

import click

from abl.errors import AblError, did_you_mean, one_of

if TYPE_CHECKING:
    from ray.job_submission import JobDetails, JobSubmissionClient

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")  # JobStatus values after which a job never runs again

address_option = click.option(
    "--address",
    envvar="RAY_API_SERVER_ADDRESS",
    default=DEFAULT_ADDRESS,
    show_default=True,
    help="The head's Ray dashboard, which serves the Jobs API (env RAY_API_SERVER_ADDRESS).",
)


def cluster_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback for ``abl search --address``: the cluster's GCS, never the Jobs API."""
    if value is None or value == "auto" or re.fullmatch(r"(ray://)?[\w.\-]+:\d+", value):
        return value
    hint = "; the dashboard's http:// address is for `abl submit`" if "://" in value else ""
    raise AblError(
        f"--address must be 'auto', ray://HOST:10001 or HOST:6379 (a running Ray cluster); "
        f"got '{value}'{hint}"
    )


def connect(address: str) -> JobSubmissionClient:
    """A Jobs API client for ``address``; a wrong or unreachable address is an AblError."""
    if not address.startswith(("http://", "https://")):
        raise AblError(
            f"--address must be the Ray dashboard of the head, http://HOST:8265 (the Jobs API); "
            f"got '{address}'"
        )
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except AuthenticationError:
        raise AblError(
            f"the Ray head at '{address}' requires its token: set RAY_AUTH_MODE=token and "
            f"RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's token"
        ) from None
    except (ConnectionError, RuntimeError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AblError(
            f"the Ray Jobs API must answer at --address (a head started with "
            f"`ray start --head --dashboard-host=...`); got no answer from '{address}' ({why})"
        ) from None


def job_info(client: JobSubmissionClient, job: str, address: str) -> JobDetails:
    """The job with submission id (or job id) ``job``; an unknown id names the known ones."""
    try:
        return client.get_job_info(job)
    except RuntimeError as exc:
        if "404" not in str(exc) and "does not exist" not in str(exc):
            raise
    known = [j.submission_id or j.job_id or "" for j in sorted_jobs(client)]
    raise AblError(
        f"JOB must be one of the jobs on {address} ({one_of(known[-10:]) or 'none yet'}); "
        f"got '{job}'{did_you_mean(job, known)}"
    )


def sorted_jobs(client: JobSubmissionClient) -> list[JobDetails]:
    """Every job the head knows, oldest first."""
    return sorted(client.list_jobs(), key=lambda j: j.start_time or 0)


def job_id(details: JobDetails) -> str:
    """The id users type: the submission id, else Ray's job id."""
    return details.submission_id or details.job_id or "?"


def status_of(details: JobDetails) -> str:
    """``RUNNING``, ``SUCCEEDED``, ... as a plain string."""
    return str(getattr(details.status, "value", details.status))


def when(ms: int | None) -> str:
    """A Jobs API timestamp (milliseconds) as local ``YYYY-MM-DD HH:MM:SS``."""
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def wait_until_done(
    client: JobSubmissionClient, job: str, timeout_s: float, poll_s: float = 1.0
) -> str:
    """Poll until the job reaches a terminal status or ``timeout_s`` passes; returns the status."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = str(client.get_job_status(job).value)
        if status in TERMINAL or time.monotonic() >= deadline:
            return status
        time.sleep(poll_s)


def follow_logs(client: JobSubmissionClient, job: str) -> None:
    """Print the job's logs as they come, until the job ends."""
    import asyncio

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job):
            click.echo(chunk, nl=False)

    asyncio.run(tail())


def metadata(details: JobDetails) -> dict[str, Any]:
    """The job's metadata (abl puts the space name and trial count there)."""
    return dict(details.metadata or {})

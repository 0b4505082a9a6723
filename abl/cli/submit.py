"""``abl submit SPACE [key=value ...]``: run a sweep on a Ray cluster through the Jobs API.

abl --root /shared/abl-runs submit spaces/quickstart.yaml --address http://HEAD:8265
"""

from __future__ import annotations

import datetime as dt
import secrets
import shlex
from pathlib import Path

import click
from click.core import ParameterSource

from abl.cli import AblContext
from abl.cli._jobs import address_option, connect, follow_logs, status_of
from abl.errors import AblError
from abl.search.dashboard import token_auth, token_hint
from abl.space import count_trials, load_space

# Never uploaded with the working directory: environments, results, history, test output.
EXCLUDES = [".venv", "abl-runs", ".git", "test-artifacts", "__pycache__", "*.egg-info"]


@click.command("submit")
@click.argument("space")
@click.argument("overrides", nargs=-1)
@address_option
@click.option(
    "--working-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Project directory uploaded as the job's working directory (spaces, plugins, data).",
)
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking URI as the cluster sees it [default: sqlite:///ROOT/mlflow.db there].",
)
@click.option(
    "--python",
    "python",
    default="python",
    show_default=True,
    help="The Python on the cluster that has abl installed.",
)
@click.option("--follow", is_flag=True, help="Stream the job's logs until it ends.")
@click.pass_obj
def command(
    obj: AblContext,
    space: str,
    overrides: tuple[str, ...],
    address: str,
    working_dir: Path,
    tracking_uri: str | None,
    python: str,
    follow: bool,
) -> None:
    """Submit SPACE as a Ray job: `abl search SPACE --address auto` runs on the head.

    The space is checked here first. The working directory is uploaded (without .venv,
    abl-runs, .git, test-artifacts). Results go to the cluster's $ABL_ROOT (the configs in
    cluster/ set it to the shared storage), else ~/abl-runs on the head; `abl --root PATH
    submit` overrides it: an absolute PATH as given, a relative one under the home directory.

    \b
    abl --root /mnt/shared/abl-runs submit spaces/quickstart.yaml train.epochs=3 \\
        --address http://HEAD:8265
    """
    loaded = load_space(space, overrides)
    space_arg = _space_on_cluster(space, working_dir)
    client = connect(address)
    explicit = click.get_current_context().find_root().get_parameter_source("root")
    root = _root_on_cluster(obj.root if explicit is ParameterSource.COMMANDLINE else None)
    command_line = [python, "-m", "abl", "--root", root, "search"]
    command_line += [shlex.quote(space_arg), *(shlex.quote(o) for o in overrides)]
    command_line += ["--address", "auto"]
    if tracking_uri:
        command_line += ["--tracking-uri", shlex.quote(tracking_uri)]
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    submission_id = f"abl-{loaded.name}-{stamp}-{secrets.token_hex(2)}"
    n = count_trials(loaded)
    job = client.submit_job(
        entrypoint=" ".join(command_line),
        submission_id=submission_id,
        runtime_env={
            "working_dir": str(working_dir.resolve()),
            "excludes": EXCLUDES,
            "env_vars": {"PYTHONUNBUFFERED": "1"},
        },
        metadata={"abl_space": loaded.name, "abl_trials": str(n), "abl_source": space_arg},
    )
    click.echo(f"submitted {job} to {address}: {n} trials of {loaded.name}")
    click.echo(f"  logs       abl logs {job} --follow --address {address}")
    # The token abl was given for the Jobs API is the cluster's: the dashboard asks for it.
    sign_in = f"  ({token_hint()})" if token_auth() else ""
    click.echo(f"  dashboard  {address.rstrip('/')}/#/jobs/{job}{sign_in}")
    click.echo(f"  stop       abl stop {job} --address {address}")
    if follow:
        follow_logs(client, job)
        click.echo(f"{job}: {status_of(client.get_job_info(job))}", err=True)


def _space_on_cluster(space: str, working_dir: Path) -> str:
    """How the job names the space: a built-in name as is, a file relative to the working dir."""
    path = Path(space)
    if not path.is_file():
        return space  # a built-in space: load_space found it by name
    base = working_dir.resolve()
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        raise AblError(
            f"SPACE must be a built-in space or a file inside the uploaded working directory "
            f"{base}; got '{space}' (pass --working-dir)"
        ) from None


def _root_on_cluster(root: Path | None) -> str:
    """``--root`` for the job, as the head's shell expands it.

    None (no ``--root`` on this command line; a local ``ABL_ROOT`` is about this machine):
    the cluster's ``$ABL_ROOT``, else ``~/abl-runs``. Absolute: as given. Relative: under
    the cluster user's home.
    """
    if root is None:
        return '"${ABL_ROOT:-$HOME/abl-runs}"'
    if root.is_absolute():
        return shlex.quote(str(root))
    return '"$HOME"/' + shlex.quote(root.as_posix())

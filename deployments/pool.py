"""Credentials for the flow runs of the ``fusioncast`` work pool, from Prefect Secret blocks.

Sets the work pool's default environment (its base job template) to references to Secret blocks,
which the worker resolves each time it starts a run: the values live only in the blocks (masked in
the UI and the API) and in the run's process environment, never in a deployment or a log.

    export FUSIONCAST_SECRET_ENV="AWS_ACCESS_KEY_ID=fusioncast-aws-key-id
                                  AWS_SECRET_ACCESS_KEY=fusioncast-aws-secret"
    python deployments/pool.py

Each ``VARIABLE=block-name`` pair makes ``VARIABLE`` the value of the Secret block ``block-name``
(create it in the UI: Blocks > + > Secret, or ``Secret(value=...).save("block-name")``). Run again
to change the list; scripts/deploy.sh runs it when ``FUSIONCAST_SECRET_ENV`` is set.

Not in ``deployments/prefect.yaml``'s ``job_variables``: ``prefect deploy`` resolves block
references there when deploying and stores the values in the deployment, where the UI shows them.
"""

from __future__ import annotations

import os
import re
import sys

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolUpdate

POOL = "fusioncast"
_PAIR = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=([a-z0-9][a-z0-9-]*)$")


def parse(pairs: str) -> dict[str, str]:
    """``"VAR=block-name VAR2=other"`` (spaces or commas) -> {"VAR": "block-name", ...}."""
    parsed = {}
    for pair in re.split(r"[\s,]+", pairs.strip()):
        match = _PAIR.match(pair)
        if match is None:
            # What follows "=" may be a secret value given by mistake: it is never shown.
            name = pair.split("=", 1)[0]
            raise ValueError(
                f"FUSIONCAST_SECRET_ENV: {name!r} is not followed by =secret-block-name "
                "(lower-case letters, digits and dashes; what was given is not shown)"
            )
        parsed[match[1]] = match[2]
    return parsed


def set_secret_env(variables: dict[str, str], pool: str = POOL) -> dict[str, str]:
    """Make each variable of the pool's runs the value of its Secret block; returns the env
    defaults now in the pool (references, not values)."""
    with get_client(sync_client=True) as client:
        template = client.read_work_pool(pool).base_job_template
        env = template["variables"]["properties"]["env"]
        defaults = {
            k: v for k, v in (env.get("default") or {}).items() if "prefect.blocks" not in v
        }
        defaults.update(
            {name: f"{{{{ prefect.blocks.secret.{block} }}}}" for name, block in variables.items()}
        )
        env["default"] = defaults
        client.update_work_pool(pool, WorkPoolUpdate(base_job_template=template))
    return defaults


def main() -> int:
    try:
        variables = parse(os.environ.get("FUSIONCAST_SECRET_ENV", ""))
    except ValueError as error:
        print(f"pool: {error}", file=sys.stderr)
        return 2
    set_secret_env(variables)
    for name, block in variables.items():
        print(f"work pool {POOL!r}: {name} from Secret block {block!r} when each run starts")
    return 0


if __name__ == "__main__":
    sys.exit(main())

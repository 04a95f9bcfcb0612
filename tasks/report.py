"""Task: the closing summary of a run, as a markdown artifact."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact

from fusioncast.tasks import task


@task(name="summarise-run")
def summarise_run(title: str, facts: dict[str, object]) -> None:
    lines = [f"# {title}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in facts.items()]
    create_markdown_artifact(markdown="\n".join(lines), key="run-summary")

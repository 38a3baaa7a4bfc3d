import click


@click.group()
def main() -> None:
    """Hailuo Batch."""

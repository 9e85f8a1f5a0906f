"""dotsctl's commands, one module per command group.

Each module has ``register(root: typer.Typer) -> None``, which adds its
commands (or its sub-command group) to the root command; ``dots_cli.app``
lists the modules in the order ``dotsctl --help`` shows them. A new command
group is one new module here plus one entry in ``dots_cli.app.COMMANDS``.
What the modules share (the client, output helpers, argument types,
duration parsing, completion) is in :mod:`dots_cli.commands.common`.
"""

"""The top floor: what people run. The command line, the demo and the local stack.

May use every floor below; nothing below imports it.
"""

from isales_stats.commands.launch import cli_command

__all__ = ["cli_command"]

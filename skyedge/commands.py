"""One way for the stages to add a subcommand to ``skyedge``: from a text that reads like its ``--help``.

A command's text is its name and one-line help (``name: help``), a blank line, the description (lines kept
as written), a blank line, and the examples (a paragraph starting with ``example``), so each command module
states what the command does in one place instead of repeating argparse's keyword boilerplate.
"""

from __future__ import annotations


def add_command(subparsers, text: str):
    """The subparser described by ``text`` (see the module docstring)."""
    head, _, rest = text.strip("\n").partition("\n\n")
    name, _, summary = head.partition(": ")
    paragraphs = rest.split("\n\n")
    examples = [p for p in paragraphs if p.lstrip().startswith("example")]
    description = "\n\n".join(p for p in paragraphs if p not in examples)
    return subparsers.add_parser(
        name.strip(), help=summary.strip(), description=description, epilog="\n\n".join(examples)
    )

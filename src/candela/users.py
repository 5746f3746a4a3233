"""Platform users: who runs a command, and the name of their workspace bucket.

One home for the rule that turns a login or ``CANDELA_USER`` into a platform user name, used by
the CLI, the S3 server's identities and orders.
"""

from __future__ import annotations

import getpass
import re

from candela_sdk.errors import InputError

_USER = re.compile(r"^[a-z0-9][a-z0-9-]{0,56}$")


def current_user(user: str | None = None) -> str:
    from candela.settings import get_settings

    name = (user or get_settings().user or getpass.getuser()).strip().lower()
    name = name.replace("_", "-").replace(".", "-")
    if not _USER.match(name):
        raise InputError(
            f"user name {name!r} cannot name a workspace: use lowercase letters, digits and '-'"
        )
    return name


def bucket_for(user: str) -> str:
    """The workspace bucket of ``user`` in object-store mode (S3 bucket naming rules)."""
    return f"ws-{current_user(user)}"

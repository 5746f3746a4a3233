from __future__ import annotations

from candela_mine.service import SERVICE
from candela_sdk.contract import run_cli


def main() -> None:
    run_cli(SERVICE)

"""``candela-preprocess`` console script."""

from __future__ import annotations

from candela_preprocess.service import SERVICE
from candela_sdk.contract import run_cli


def main() -> None:
    run_cli(SERVICE)


if __name__ == "__main__":
    main()

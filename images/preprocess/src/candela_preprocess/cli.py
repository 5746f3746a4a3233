"""``candela-preprocess`` console script."""

from __future__ import annotations

from candela_sdk.contract import run_cli

from candela_preprocess.service import SERVICE


def main() -> None:
    run_cli(SERVICE)


if __name__ == "__main__":
    main()

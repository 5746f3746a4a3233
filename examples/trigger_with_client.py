"""Trigger the change-detection pipeline with the official Airflow client and wait for it.

    python examples/trigger_with_client.py http://localhost:8080 admin PASSWORD

(`candela up` prints the URL and the login; the password is also in
`.candela/airflow/passwords.json`.) Exits 0 when the run succeeds.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

import httpx
from airflow_client import client
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.models import TriggerDAGRunPostBody

from candela.workflows import ChangeDetectionConf

# the run configuration, checked by the workflow's own model before anything is sent
CONF = ChangeDetectionConf(
    collection="sentinel-2-l1c",
    bbox=[-0.68, 44.83, -0.56, 44.93],
    start=dt.date(2016, 1, 1),
    end=dt.date(2017, 12, 31),
    tile="T30TXQ",
    model="cva",
    threshold=0.7,
).conf()


def main(url: str, username: str, password: str) -> int:
    token = httpx.post(
        f"{url}/auth/token", json={"username": username, "password": password}
    ).json()["access_token"]
    config = client.Configuration(host=url, access_token=token)
    with client.ApiClient(config) as api_client:
        runs = DagRunApi(api_client)
        run = runs.trigger_dag_run(
            "s2_change_detection", TriggerDAGRunPostBody(conf=CONF, logical_date=None)
        )
        print(f"triggered {run.dag_run_id}")
        while True:
            state = runs.get_dag_run("s2_change_detection", run.dag_run_id).state
            state = getattr(state, "value", state)  # the client returns an enum
            if state in ("success", "failed"):
                print(f"run {run.dag_run_id}: {state}")
                return 0 if state == "success" else 1
            time.sleep(3)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))

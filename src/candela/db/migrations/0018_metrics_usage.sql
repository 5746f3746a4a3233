-- Monitoring and per-user consumption (issue 17).
-- Node samples: 'raw' (every collector pass), downsampled to '5m' then '1h' buckets
-- (candela.metrics.RETENTION says how long each resolution is kept).
CREATE TABLE candela.node_metrics (
    resolution    text NOT NULL CHECK (resolution IN ('raw', '5m', '1h')),
    node          text NOT NULL,
    at            timestamptz NOT NULL,
    cpu_pct       real NOT NULL,
    mem_pct       real NOT NULL,
    disk_free_gib real NOT NULL,
    uptime_s      double precision NOT NULL,
    load1         real,
    PRIMARY KEY (resolution, node, at)
);

-- What each step consumed (the local runner measures its process tree).
CREATE TABLE candela.step_metrics (
    id            bigserial PRIMARY KEY,
    dag_id        text NOT NULL,
    run_id        text NOT NULL,
    task_id       text NOT NULL,
    map_index     integer NOT NULL DEFAULT -1,
    try_number    integer NOT NULL DEFAULT 1,
    service       text NOT NULL,
    username      text,                               -- Airflow's triggering user, if known
    started_at    timestamptz NOT NULL,
    duration_s    double precision NOT NULL,
    cpu_s         double precision NOT NULL,
    peak_rss_mib  double precision NOT NULL,
    gpu_s         double precision NOT NULL DEFAULT 0,
    exit_code     integer NOT NULL,
    UNIQUE (dag_id, run_id, task_id, map_index, try_number)
);
CREATE INDEX step_metrics_started ON candela.step_metrics (started_at);

-- Availability of the critical services: the last state, and every change of state.
CREATE TABLE candela.service_health (
    service     text PRIMARY KEY,
    up          boolean NOT NULL,
    detail      text NOT NULL,
    checked_at  timestamptz NOT NULL,
    changed_at  timestamptz NOT NULL
);
CREATE TABLE candela.service_events (
    id       bigserial PRIMARY KEY,
    service  text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    up       boolean NOT NULL,
    detail   text NOT NULL
);

-- Who started each run (the run guard, at the call) and the per-user quotas it enforces.
CREATE TABLE candela.run_users (
    dag_id      text NOT NULL,
    run_id      text NOT NULL,
    username    text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_id, run_id)
);
CREATE TABLE candela.quotas (
    username            text PRIMARY KEY,             -- '*': everyone without a row of their own
    runs_per_day        integer CHECK (runs_per_day >= 0),
    cpu_hours_per_day   double precision CHECK (cpu_hours_per_day >= 0),
    gpu_hours_per_day   double precision CHECK (gpu_hours_per_day >= 0)
);

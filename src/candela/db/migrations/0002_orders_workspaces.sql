-- User workspaces (a private storage area each) and orders (products + the workflow to run).
CREATE TABLE candela.workspaces (
    username    text PRIMARY KEY,
    root        text NOT NULL UNIQUE,                -- s3://ws-<user>/ or file:///…/workspaces/<user>/
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE candela.orders (
    id          text PRIMARY KEY,                    -- ord-<12 hex>
    username    text NOT NULL,
    workflow    text NOT NULL,                       -- dag id
    products    jsonb NOT NULL,                      -- [{"id", "collection", "datetime", "tile", "bbox", "href"}]
    conf        jsonb NOT NULL DEFAULT '{}'::jsonb,  -- user parameters given with the order
    status      text NOT NULL DEFAULT 'created',     -- created, running, success, failed, partial
    message     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_username ON candela.orders (username, created_at);

CREATE TABLE candela.order_runs (
    order_id    text NOT NULL REFERENCES candela.orders (id) ON DELETE CASCADE,
    run_id      text NOT NULL,                       -- Airflow dag run id
    product_ids jsonb NOT NULL,                      -- the ordered products this run covers
    conf        jsonb NOT NULL,                      -- the conf the run was triggered with
    state       text NOT NULL DEFAULT 'queued',      -- Airflow run state, as last seen
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, run_id)
);

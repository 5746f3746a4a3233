-- Results the platform published. (The products table that this migration created before
-- belongs to the search service: candela_search/migrations/0001_products.sql, IF NOT EXISTS, so
-- a database migrated by the older form of this file is left as it is.)
CREATE TABLE candela.results (
    id          text PRIMARY KEY,                    -- STAC item id of the published result
    workflow    text NOT NULL,                       -- dag id
    run_id      text NOT NULL,
    datetime    timestamptz,
    min_lon     double precision,
    min_lat     double precision,
    max_lon     double precision,
    max_lat     double precision,
    item        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX results_workflow_run ON candela.results (workflow, run_id);

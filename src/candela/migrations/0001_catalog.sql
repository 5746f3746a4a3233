-- Products the platform knows (local catalogue) and results it published.
CREATE TABLE candela.products (
    id                  text PRIMARY KEY,            -- STAC item id
    collection          text NOT NULL,               -- sentinel-2-l1c, sentinel-2-l2a, sentinel-1-grd
    datetime            timestamptz NOT NULL,
    platform            text,
    tile                text,                        -- MGRS tile, e.g. T30TXQ
    cloud_cover         double precision,
    processing_baseline text,
    datatake            text,                        -- same datatake, several baselines: keep the newest
    min_lon             double precision NOT NULL,
    min_lat             double precision NOT NULL,
    max_lon             double precision NOT NULL,
    max_lat             double precision NOT NULL,
    href                text NOT NULL,               -- where the product lives: file://… or s3://…
    item                jsonb NOT NULL,              -- the full STAC item
    added_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_collection_datetime ON candela.products (collection, datetime);
CREATE INDEX products_bbox ON candela.products (min_lon, max_lon, min_lat, max_lat);
CREATE INDEX products_tile ON candela.products (tile);

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

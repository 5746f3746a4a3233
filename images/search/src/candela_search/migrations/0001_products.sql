-- The search service's table: the local catalogue of products (STAC items), in the platform's
-- schema. Applied by `candela up` (candela.db.migrate finds this package through the entry point
-- group `candela.migrations`); IF NOT EXISTS because platform databases migrated before the table
-- moved here already have it.
CREATE SCHEMA IF NOT EXISTS candela;

CREATE TABLE IF NOT EXISTS candela.products (
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
CREATE INDEX IF NOT EXISTS products_collection_datetime ON candela.products (collection, datetime);
CREATE INDEX IF NOT EXISTS products_bbox ON candela.products (min_lon, max_lon, min_lat, max_lat);
CREATE INDEX IF NOT EXISTS products_tile ON candela.products (tile);

-- Search: the product bbox as a core-PostgreSQL box with a GiST index (no PostGIS needed);
-- providers/local.py tests overlap with the same expression.
CREATE INDEX IF NOT EXISTS products_box_gist ON candela.products
    USING gist (box(point(min_lon, min_lat), point(max_lon, max_lat)));

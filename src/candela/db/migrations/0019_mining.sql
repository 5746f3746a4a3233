-- Data mining (issue 19): patches cut from preprocessed stacks, their features, embeddings and
-- quicklooks (written by the datamining service), the views of the SQL mode and its read-only
-- role. Data layer: candela.db.mining.
CREATE TABLE candela.mine_feature_sets (
    feature_set text PRIMARY KEY,
    names       text[] NOT NULL
);

CREATE TABLE candela.mine_patches (
    id            bigserial PRIMARY KEY,
    stack_uri     text NOT NULL,
    product_id    text,
    dataset       text NOT NULL,
    acquired      timestamptz,
    sensors       text[] NOT NULL,                        -- {'s2'} or {'s2','s1'}
    row_off       int NOT NULL,
    col_off       int NOT NULL,
    size          int NOT NULL,
    crs           text NOT NULL,
    west          double precision NOT NULL,
    south         double precision NOT NULL,
    east          double precision NOT NULL,
    north         double precision NOT NULL,              -- WGS 84 bbox
    footprint     jsonb NOT NULL,                         -- GeoJSON Polygon, WGS 84
    valid_share   real NOT NULL,
    feature_set   text NOT NULL REFERENCES candela.mine_feature_sets,
    features      real[] NOT NULL,                        -- in the order of mine_feature_sets.names
    embedding     real[],                                 -- change-detection encoder embedding
    quicklook_uri text NOT NULL,
    truth         text[],                                 -- reference labels where a dataset has them
    mined_by_run  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stack_uri, row_off, col_off, size)
);
CREATE INDEX mine_patches_acquired ON candela.mine_patches (acquired);
CREATE INDEX mine_patches_dataset ON candela.mine_patches (dataset);
CREATE INDEX mine_patches_bbox ON candela.mine_patches (west, east, south, north);

-- A feature by name: candela.mine_feature(feature_names, features, 'ndvi_mean').
CREATE FUNCTION candela.mine_feature(names text[], features real[], name text) RETURNS real
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT $2[array_position($1, $3)] $$;

-- pgvector when the server has it: a vector copy of the embedding, kept by a trigger (the
-- writers only know real[]), for `<->` similarity search. The embedded server has no pgvector:
-- candela.db.mining.similar then searches the real[] arrays exactly.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        CREATE EXTENSION IF NOT EXISTS vector;
        ALTER TABLE candela.mine_patches ADD COLUMN embedding_vec vector;
        CREATE FUNCTION candela.mine_patches_vec() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN
            NEW.embedding_vec := CASE WHEN NEW.embedding IS NULL THEN NULL
                                      ELSE NEW.embedding::vector END;
            RETURN NEW;
        END $f$;
        CREATE TRIGGER mine_patches_vec BEFORE INSERT OR UPDATE OF embedding
            ON candela.mine_patches FOR EACH ROW EXECUTE FUNCTION candela.mine_patches_vec();
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'pgvector not enabled (no privilege): exact search on arrays';
END $$;

-- SQL mode (`candela mine sql`, POST /candela/mine/sql): documented views, read by a NOLOGIN
-- role that may read the views and nothing else.
CREATE VIEW candela.mine_v_patches AS
SELECT p.id, p.stack_uri, p.product_id, p.dataset, p.acquired, p.sensors,
       p.row_off, p.col_off, p.size, p.crs, p.west, p.south, p.east, p.north, p.footprint,
       p.valid_share, p.feature_set, s.names AS feature_names, p.features, p.embedding,
       p.quicklook_uri, p.truth, p.mined_by_run, p.created_at
FROM candela.mine_patches p JOIN candela.mine_feature_sets s USING (feature_set);

CREATE VIEW candela.mine_v_feature_sets AS
SELECT feature_set, names, cardinality(names) AS size FROM candela.mine_feature_sets;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'candela_mine_reader') THEN
        CREATE ROLE candela_mine_reader NOLOGIN;
    END IF;
    -- the platform's user may take the role (SET ROLE) when it is not a superuser
    EXECUTE format('GRANT candela_mine_reader TO %I', current_user);
EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
    RAISE NOTICE 'candela_mine_reader: %', SQLERRM;
END $$;
GRANT USAGE ON SCHEMA candela TO candela_mine_reader;
GRANT SELECT ON candela.mine_v_patches, candela.mine_v_feature_sets TO candela_mine_reader;

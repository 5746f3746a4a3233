-- The model registry's records (the files live under the registry folder / S3 prefix).
CREATE TABLE IF NOT EXISTS candela.models (
    name          text PRIMARY KEY,
    architecture  text NOT NULL,
    description   text NOT NULL DEFAULT '',
    uri           text NOT NULL,
    sha256        char(64) NOT NULL,
    size_bytes    bigint NOT NULL,
    bands         jsonb NOT NULL,
    normalisation text NOT NULL,
    training      jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics       jsonb NOT NULL DEFAULT '{}'::jsonb,
    options       jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata      jsonb NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- 1-minute and 1-hour rollups of good samples, as plain tables maintained by smeltwatch's own
-- refresh job (`smeltwatch db refresh-rollups`), because the Apache edition of TimescaleDB has
-- no continuous aggregates. Same names and columns as the continuous aggregates of the licensed
-- path, so readers do not care which one they get.
--
-- The store writer marks the hours its batches touch in rollup_dirty; the refresh job
-- recomputes exactly those hours, so late data updates its rollups too.

create table samples_1m (
    bucket       timestamptz not null,
    tag_id       integer not null,
    n            bigint not null,            -- good samples in the bucket
    avg_value    double precision,
    min_value    double precision,
    max_value    double precision,
    first_value  double precision,
    last_value   double precision,
    primary key (tag_id, bucket)
);
select create_hypertable('samples_1m', by_range('bucket', interval '7 days'));

create table samples_1h (like samples_1m including all);
select create_hypertable('samples_1h', by_range('bucket', interval '30 days'));

create table rollup_dirty (
    hour  timestamptz primary key
);

-- 1-minute and 1-hour rollups of good samples as continuous aggregates (TimescaleDB with the
-- Timescale licence), refreshed by policies. Same names and columns as the plain tables of the
-- Apache path. rollup_dirty exists too (unused here) so the writer works the same on both.

create materialized view samples_1m with (timescaledb.continuous) as
select time_bucket('1 minute', time) as bucket,
       tag_id,
       count(*)            as n,
       avg(value)          as avg_value,
       min(value)          as min_value,
       max(value)          as max_value,
       first(value, time)  as first_value,
       last(value, time)   as last_value
from samples
where quality = 0
group by 1, 2
with no data;

create materialized view samples_1h with (timescaledb.continuous) as
select time_bucket('1 hour', time) as bucket,
       tag_id,
       count(*)            as n,
       avg(value)          as avg_value,
       min(value)          as min_value,
       max(value)          as max_value,
       first(value, time)  as first_value,
       last(value, time)   as last_value
from samples
where quality = 0
group by 1, 2
with no data;

select add_continuous_aggregate_policy('samples_1m', start_offset => interval '3 days',
       end_offset => interval '1 minute', schedule_interval => interval '1 minute');
select add_continuous_aggregate_policy('samples_1h', start_offset => interval '7 days',
       end_offset => interval '1 hour', schedule_interval => interval '15 minutes');

-- Compress raw samples after a week (segment by tag: queries are per tag).
alter table samples set (timescaledb.compress, timescaledb.compress_segmentby = 'tag_id',
                         timescaledb.compress_orderby = 'time desc');
select add_compression_policy('samples', interval '7 days');

create table rollup_dirty (
    hour  timestamptz primary key
);

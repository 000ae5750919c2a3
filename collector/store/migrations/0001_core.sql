-- Core tables: tag catalogue, samples, conflicts, dead letters, audit log.

create table tags (
    tag_id      integer generated always as identity primary key,
    asset       text not null,               -- ISA-95-like path: site/area/equipment[/sub]
    signal      text not null,               -- catalogue name; the unit is the catalogue's
    unit        text not null,
    kind        text not null check (kind in ('gauge', 'counter', 'state', 'event')),
    created_at  timestamptz not null default now(),
    unique (asset, signal)
);
comment on table tags is 'One row per (asset, signal) ever stored; samples refer to tag_id.';

-- Narrow samples table: one value of one tag at one source instant.
-- quality: 0 good, 1 uncertain, 2 bad (OPC UA severity); status_code keeps the full
-- OPC UA StatusCode (uint32). value is null when a source sent a status without a value.
create table samples (
    time         timestamptz not null,       -- source timestamp (UTC)
    tag_id       integer not null,
    value        double precision,
    quality      smallint not null check (quality between 0 and 2),
    status_code  bigint not null default 0,
    server_time  timestamptz,                -- OPC UA server timestamp, when there is one
    ingest_time  timestamptz not null default now()
);
select create_hypertable('samples', by_range('time', interval '1 day'));
-- Idempotent writes: one value per tag and instant (also the index for per-tag queries).
create unique index samples_tag_time on samples (tag_id, time desc);

-- A different value offered for an existing (tag, time) is kept aside, never overwritten.
create table sample_conflicts (
    conflict_id      bigint generated always as identity primary key,
    time             timestamptz not null,
    tag_id           integer not null references tags (tag_id),
    stored_value     double precision,
    stored_quality   smallint,
    offered_value    double precision,
    offered_quality  smallint not null,
    offered_status   bigint not null,
    origin           text not null default '',
    detected_at      timestamptz not null default now()
);
create index sample_conflicts_tag_time on sample_conflicts (tag_id, time);

-- Anything that could not be stored, with the raw payload and the reason. Never a silent drop.
create table dead_letters (
    dead_letter_id  bigint generated always as identity primary key,
    received_at     timestamptz not null default now(),
    origin          text not null,           -- e.g. mqtt:topic, opcua:endpoint, writer
    reason          text not null,
    payload         bytea,
    detail          jsonb not null default '{}'::jsonb
);
create index dead_letters_received on dead_letters (received_at desc);

-- Who changed what, when: manual entries, acknowledgements, silences, rule changes, restatements.
create table audit_log (
    audit_id    bigint generated always as identity primary key,
    time        timestamptz not null default now(),
    actor       text not null,
    action      text not null,
    entity      text not null,
    entity_id   text,
    before      jsonb,
    after       jsonb,
    reason      text
);
create index audit_log_time on audit_log (time desc);
create index audit_log_entity on audit_log (entity, entity_id);

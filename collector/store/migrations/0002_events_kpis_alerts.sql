-- Production and material events, KPIs, alerts.

-- Idempotency across all time: a hypertable's unique keys must include its time column, so the
-- key registry is a plain table; events (every version) live in the hypertable.
create table event_keys (
    event_key        text primary key,
    current_version  integer not null,
    first_seen       timestamptz not null default now()
);

create table events (
    time         timestamptz not null,       -- when it happened (weighing time), UTC
    event_key    text not null,
    version      integer not null default 1,
    kind         text not null,
    asset        text not null,
    quantity     double precision not null,
    unit         text not null,
    destination  text,                       -- slag_shipped: cement, backfill, stockpile…
    ticket       text,                       -- weighbridge ticket number
    origin       text not null default '',
    recorded_at  timestamptz not null default now(),
    superseded   boolean not null default false
);
select create_hypertable('events', by_range('time', interval '30 days'));
create unique index events_key_version on events (event_key, version, time);
create index events_kind_time on events (kind, time desc);

-- One row per KPI value per period and version; restated periods get a new version.
create table kpis (
    name              text not null,         -- e.g. energy_intensity_tce_per_t
    scope             text not null,         -- plant, area or equipment path
    period_kind       text not null,         -- shift, day, month, ytd, rolling_30d
    period_start      timestamptz not null,
    period_end        timestamptz not null,
    version           integer not null default 1,
    value             double precision,
    unit              text not null,
    numerator         double precision,
    numerator_unit    text,
    denominator       double precision,
    denominator_unit  text,
    coverage          double precision check (coverage between 0 and 1),
    coefficient_set   text,
    verdict           text,                  -- e.g. 'level 2 met', 'level 3 breached'
    flags             text[] not null default '{}',
    reason            text,                  -- why this version exists (late data, correction)
    computed_at       timestamptz not null default now(),
    current           boolean not null default true,
    primary key (name, scope, period_kind, period_start, version)
);
create index kpis_current on kpis (name, scope, period_kind, period_start) where current;

create table alerts (
    alert_id          bigint generated always as identity primary key,
    rule_id           text not null,
    scope             text not null,         -- asset or KPI scope the rule fired for
    state             text not null check (state in
                        ('pending', 'active_unack', 'active_ack', 'cleared_unack', 'closed')),
    severity          text not null,
    labels            jsonb not null default '{}'::jsonb,
    summary           text not null default '',
    value             double precision,
    threshold         double precision,
    norm_source       text,
    pending_since     timestamptz,
    active_since      timestamptz,
    acknowledged_at   timestamptz,
    acknowledged_by   text,
    cleared_at        timestamptz,
    shelved_until     timestamptz,
    suppressed        boolean not null default false,
    last_notified_at  timestamptz,
    updated_at        timestamptz not null default now()
);
-- One alert per rule and scope that is not closed.
create unique index alerts_one_open on alerts (rule_id, scope) where state <> 'closed';
create index alerts_state on alerts (state);

create table alert_history (
    alert_id    bigint not null references alerts (alert_id),
    time        timestamptz not null default now(),
    from_state  text,
    to_state    text not null,
    actor       text not null default 'rules',
    comment     text,
    value       double precision
);
create index alert_history_alert on alert_history (alert_id, time);

-- Replays (an MQTT redelivery, a spool drain after a write that committed but timed out) must
-- not duplicate the side tables either: an identical dead letter or conflict is stored once.

alter table dead_letters add column fingerprint bytea;
update dead_letters set fingerprint = sha256(convert_to(origin || E'\x1f' || reason, 'UTF8')
                                             || coalesce(payload, '') || convert_to(detail::text, 'UTF8'));
alter table dead_letters alter column fingerprint set not null;
-- keep the first of any identical rows stored before this migration
delete from dead_letters d using dead_letters e
where d.fingerprint = e.fingerprint and d.dead_letter_id > e.dead_letter_id;
create unique index dead_letters_fingerprint on dead_letters (fingerprint);

delete from sample_conflicts c using sample_conflicts k
where c.tag_id = k.tag_id and c.time = k.time
  and c.offered_value is not distinct from k.offered_value
  and c.offered_quality = k.offered_quality and c.offered_status = k.offered_status
  and c.conflict_id > k.conflict_id;
create unique index sample_conflicts_offer on sample_conflicts
    (tag_id, time, offered_value, offered_quality, offered_status) nulls not distinct;

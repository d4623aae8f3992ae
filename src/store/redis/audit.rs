//! The audit log (streams: global, per user, per action) and the per-minute stats.

use super::*;

impl RedisStore {
    pub async fn record(
        &self,
        entry: &AuditEntry,
        stat: Option<(Stat, u64)>,
    ) -> Result<(), StoreError> {
        let fields = [
            ("at", entry.at.to_string()),
            ("action", entry.action.clone()),
            ("actor", entry.actor.clone()),
            ("target", entry.target.clone()),
            ("detail", entry.detail.clone()),
            ("ip", entry.ip.clone()),
        ];
        // Each stream and counter is a key of its own (its own slot on a cluster).
        let mut groups = Vec::new();
        let mut append = |key: String, cap: usize| {
            let mut add = redis::cmd("XADD");
            add.arg(key)
                .arg("MAXLEN")
                .arg("~")
                .arg(cap)
                .arg("*")
                .arg(&fields);
            groups.push(vec![add]);
        };
        append(self.keys.audit(None), AUDIT_CAP);
        append(self.keys.audit_action(&entry.action), ACTION_AUDIT_CAP);
        if !entry.actor.is_empty() {
            append(self.keys.audit(Some(&entry.actor)), USER_AUDIT_CAP);
        }
        if !entry.target.is_empty() && entry.target != entry.actor {
            append(self.keys.audit(Some(&entry.target)), USER_AUDIT_CAP);
        }
        if let Some((stat, amount)) = stat {
            let key = self
                .keys
                .stat(stat.name(), crate::store::minute_of(self.clock.now()));
            let mut incr = redis::cmd("INCRBY");
            incr.arg(&key).arg(amount);
            let mut expire = redis::cmd("EXPIRE");
            expire.arg(&key).arg(STATS_RETENTION_SECS);
            groups.push(vec![incr, expire]);
        }
        self.run_groups(groups).await.map(|_| ())
    }

    pub async fn audit(
        &self,
        filter: AuditFilter<'_>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page<AuditEntry>, StoreError> {
        if before == Some(FIRST_STREAM_ID) {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        // Each filter alone has a stream of its own; both together read the user's (capped at
        // ~500 entries) and keep the action's entries, a bounded read.
        let (key, keep_action) = match (filter.user, filter.action) {
            (Some(user), action) => (self.keys.audit(Some(user)), action),
            (None, Some(action)) => (self.keys.audit_action(action), None),
            (None, None) => (self.keys.audit(None), None),
        };
        let batch = if keep_action.is_some() {
            100
        } else {
            limit + 1
        };
        let mut start = match before {
            Some(id) => format!("({id}"),
            None => "+".to_owned(),
        };
        let mut items = Vec::new();
        loop {
            let (key, from) = (key.clone(), start.clone());
            let entries: Vec<(String, HashMap<String, String>)> = self
                .run(|mut conn| async move {
                    redis::cmd("XREVRANGE")
                        .arg(key)
                        .arg(from)
                        .arg("-")
                        .arg("COUNT")
                        .arg(batch)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            let exhausted = entries.len() < batch;
            if let Some((last, _)) = entries.last() {
                start = format!("({last}");
            }
            items.extend(
                entries
                    .into_iter()
                    .map(audit_entry)
                    .filter(|e| keep_action.is_none_or(|a| e.action == a)),
            );
            if exhausted || items.len() > limit {
                break;
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    pub async fn stats(&self, stat: Stat, minutes: usize) -> Result<Vec<u64>, StoreError> {
        let current = crate::store::minute_of(self.clock.now());
        let keys: Vec<String> = (0..minutes as i64)
            .rev()
            .map(|ago| self.keys.stat(stat.name(), current - ago))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Every stat counter has one tag (`keys.rs`): one MGET on any topology.
        let values: Vec<Option<u64>> = self
            .run(
                |mut conn| async move { redis::cmd("MGET").arg(keys).query_async(&mut conn).await },
            )
            .await?;
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }
}

fn audit_entry((id, mut fields): (String, HashMap<String, String>)) -> AuditEntry {
    let mut take = |f: &str| fields.remove(f).unwrap_or_default();
    AuditEntry {
        at: take("at").parse().unwrap_or(0),
        action: take("action"),
        actor: take("actor"),
        target: take("target"),
        detail: take("detail"),
        ip: take("ip"),
        id,
    }
}

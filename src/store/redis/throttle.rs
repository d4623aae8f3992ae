//! Failed-login counters, per account and per client address.

use super::*;

impl RedisStore {
    pub async fn counters(&self, counters: &[String]) -> Result<Vec<Counter>, StoreError> {
        let groups = counters
            .iter()
            .map(|counter| {
                let key = self.keys.throttle(counter);
                let mut get = redis::cmd("GET");
                get.arg(&key);
                let mut ttl = redis::cmd("TTL");
                ttl.arg(&key);
                vec![get, ttl]
            })
            .collect();
        let flat = self.run_groups(groups).await?;
        let mut values = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            let count: Option<u64> =
                redis::from_redis_value_ref(&pair[0]).map_err(redis::RedisError::from)?;
            let ttl: i64 =
                redis::from_redis_value_ref(&pair[1]).map_err(redis::RedisError::from)?;
            values.push((count, ttl));
        }
        Ok(values
            .into_iter()
            .map(|(count, ttl)| Counter {
                count: count.unwrap_or(0),
                resets_in_secs: ttl.max(0),
            })
            .collect())
    }

    pub async fn reset_counters(&self, counters: &[String]) -> Result<(), StoreError> {
        let groups = counters
            .iter()
            .map(|c| {
                let mut del = redis::cmd("DEL");
                del.arg(self.keys.throttle(c));
                vec![del]
            })
            .collect();
        self.run_groups(groups).await.map(|_| ())
    }

    pub async fn bump_counters(
        &self,
        counters: &[String],
        window_secs: i64,
    ) -> Result<(), StoreError> {
        let bumps = counters.iter().map(|counter| {
            let mut invocation = self.scripts.bump_counter.key(self.keys.throttle(counter));
            invocation.arg(window_secs);
            self.run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
        });
        for bumped in futures_util::future::join_all(bumps).await {
            bumped?;
        }
        Ok(())
    }
}

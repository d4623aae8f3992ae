//! Failed-login counters, per account and per client address.

use super::*;

impl RedisStore {
    pub async fn counters(&self, counters: &[String]) -> Result<Vec<Counter>, StoreError> {
        let mut pipe = redis::pipe();
        for counter in counters {
            let key = self.keys.throttle(counter);
            pipe.get(&key).ttl(&key);
        }
        let values: Vec<(Option<u64>, i64)> = self
            .run(|mut conn| async move {
                let flat: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
                let mut values = Vec::with_capacity(flat.len() / 2);
                for pair in flat.chunks_exact(2) {
                    let count: Option<u64> = redis::from_redis_value_ref(&pair[0])?;
                    let ttl: i64 = redis::from_redis_value_ref(&pair[1])?;
                    values.push((count, ttl));
                }
                Ok(values)
            })
            .await?;
        Ok(values
            .into_iter()
            .map(|(count, ttl)| Counter {
                count: count.unwrap_or(0),
                resets_in_secs: ttl.max(0),
            })
            .collect())
    }

    pub async fn reset_counters(&self, counters: &[String]) -> Result<(), StoreError> {
        let keys: Vec<String> = counters.iter().map(|c| self.keys.throttle(c)).collect();
        self.run(|mut conn| async move { conn.del::<_, ()>(keys).await })
            .await
    }

    pub async fn bump_counters(
        &self,
        counters: &[String],
        window_secs: i64,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for counter in counters {
            let key = self.keys.throttle(counter);
            pipe.incr(&key, 1).ignore();
            // NX: the window starts at the first failure and is not pushed back by later ones.
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(window_secs)
                .arg("NX")
                .ignore();
        }
        self.run(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }
}

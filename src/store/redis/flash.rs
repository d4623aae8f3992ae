//! Short-lived and shared values: one-time messages after a form, secrets shared by every
//! instance.

use super::*;

impl RedisStore {
    pub async fn put_flash(
        &self,
        token_hash: &str,
        value: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        let key = self.keys.flash(token_hash);
        let value = value.to_owned();
        self.run(|mut conn| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("EX")
                .arg(ttl_secs.max(1))
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    pub async fn take_flash(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        let key = self.keys.flash(token_hash);
        self.run(|mut conn| async move {
            redis::cmd("GETDEL")
                .arg(&key)
                .query_async::<Option<String>>(&mut conn)
                .await
        })
        .await
    }

    pub async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        let key = self.keys.secret(name);
        // SET NX GET: the value already there, or nothing when ours was stored.
        let candidate = candidate.to_owned();
        let before: Option<String> = self
            .run(|mut conn| {
                let candidate = candidate.clone();
                async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(candidate)
                        .arg("NX")
                        .arg("GET")
                        .query_async(&mut conn)
                        .await
                }
            })
            .await?;
        Ok(before.unwrap_or(candidate))
    }
}

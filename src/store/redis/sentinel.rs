//! Following a Sentinel-managed master across failovers.
//!
//! redis-rs's Sentinel client resolves the master once and keeps talking to it; after a
//! failover the old master goes on accepting writes until Sentinel turns it into a replica,
//! and those writes are then thrown away (measured: 208 of 302 acknowledged writes lost in
//! 11 s). So this watch does it by hand:
//!
//! - every sentinel is subscribed to for `+switch-master`; when our master moves, the
//!   generation goes up, and every kept connection of an older generation is dropped before
//!   its next command (`RedisStore::connection`);
//! - the master's address is also asked again every second (a message missed while a sentinel
//!   was unreachable changes nothing for longer than that);
//! - every sentinel is asked at once (the master's address and its `config-epoch`), and the
//!   answer with the highest epoch wins; an answer older than one already followed is
//!   ignored. A sentinel that has not yet heard of a failover still names the old master, and
//!   following it back (say, to a killed master restarted empty, still a master until
//!   Sentinel demotes it) would read an empty store and write what the resync then wipes;
//! - a new connection asks `ROLE` first and is refused unless the node says `master`;
//! - a `READONLY` answer or a lost connection forgets the master, so the next command finds it
//!   again.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;

use super::topology::SentinelTarget;
use crate::store::{StoreCause, StoreError};

/// How long, after the sentinels were asked, a majority's answer lets a master refusing writes
/// be read from: the next poll's answer, a second later, must have had time to come back (it
/// may wait `store.timeout_ms` for a slow sentinel), so the window is that plus a second.
const CONFIRMED_SLACK: Duration = Duration::from_secs(1);

/// How often the master's address is asked again besides the `+switch-master` messages.
const POLL: Duration = Duration::from_secs(1);

/// Answers in a row, all sentinels asked, naming an older configuration epoch than the one
/// followed, before it is taken as the truth (about five seconds of polls).
const STALE_ANSWERS: u32 = 5;

/// What the sentinels, asked together, said.
struct Answer {
    /// The answer of the highest configuration epoch.
    master: Master,
    /// How many sentinels gave that very answer.
    agreeing: usize,
    /// How many sentinels there are (the URL's, or more if one knows of more).
    sentinels: usize,
    /// When they were asked (`SentinelWatch::elapsed_ms`).
    asked_at: u64,
}

/// `GET-MASTER-ADDR-BY-NAME`'s answer: host and port (as a string).
type HostPort = (String, String);

/// Where the sentinels say the master is, and the configuration epoch of that answer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Master {
    host: String,
    port: u16,
    epoch: u64,
}

pub struct SentinelWatch {
    target: SentinelTarget,
    master: RwLock<Option<Master>>,
    /// The highest configuration epoch followed so far: never go back below it (but see
    /// `set_master`).
    epoch: AtomicU64,
    /// Answers in a row that named an older epoch than `epoch`.
    stale_answers: AtomicU32,
    generation: AtomicU64,
    listening: AtomicBool,
    timeout: Duration,
    /// When (milliseconds since `started`) a majority of the sentinels last named the master
    /// followed; 0 = never.
    confirmed_at: AtomicU64,
    started: std::time::Instant,
    /// `store.tls_*_file`, for the sentinels and the master alike.
    tls: Option<redis::TlsCertificates>,
}

impl SentinelWatch {
    pub fn new(
        target: SentinelTarget,
        timeout: Duration,
        tls: Option<redis::TlsCertificates>,
    ) -> Arc<SentinelWatch> {
        Arc::new(SentinelWatch {
            target,
            master: RwLock::new(None),
            epoch: AtomicU64::new(0),
            stale_answers: AtomicU32::new(0),
            generation: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            timeout,
            confirmed_at: AtomicU64::new(0),
            started: std::time::Instant::now(),
            tls,
        })
    }

    /// Whether a majority of the sentinels named the master followed when last asked (within a
    /// poll, its timeout and `CONFIRMED_SLACK`). A master that refuses writes (`NOREPLICAS`) is
    /// read from only then: one cut off with this instance from the sentinels' majority, which
    /// may have promoted another and revoked sessions there, must not go on serving them.
    pub fn confirmed_recently(&self) -> bool {
        let at = self.confirmed_at.load(Ordering::Acquire);
        let window = POLL + self.timeout + CONFIRMED_SLACK;
        at > 0 && self.elapsed_ms() <= at + window.as_millis() as u64
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Follows `found` (`set_master`), and notes it confirmed as of `asked_at` (when the
    /// sentinels were asked, not when the slowest answered) when `agreeing` sentinels, a
    /// majority of the sentinels there are, named it and it is the master followed.
    fn follow_answer(&self, answer: Answer) {
        let Answer {
            master: found,
            agreeing,
            sentinels,
            asked_at,
        } = answer;
        if self.set_master(found) && agreeing * 2 > sentinels {
            self.confirmed_at.store(asked_at.max(1), Ordering::Release);
        }
    }

    fn client(&self, url: &str) -> redis::RedisResult<redis::Client> {
        match &self.tls {
            Some(certs) => redis::Client::build_with_tls(url, certs.clone()),
            None => redis::Client::open(url),
        }
    }

    /// Connections made in an older generation must not be used.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The master moved, or a command found it is no longer one: every kept connection goes.
    pub fn forget_master(&self) {
        let mut master = self.master.write().unwrap_or_else(|p| p.into_inner());
        *master = None;
        // Under the lock, so `connect` reads a master and its generation together.
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Follows `found` unless an answer of a later configuration epoch was followed already;
    /// but when every sentinel has answered an older epoch `STALE_ANSWERS` times in a row
    /// (sentinels redeployed or reset start again from 0), their answer is the truth now, or
    /// the app would find no master until it restarts.
    /// Whether `found` is the master followed now (false: an older answer, ignored).
    fn set_master(&self, found: Master) -> bool {
        let mut master = self.master.write().unwrap_or_else(|p| p.into_inner());
        let followed = self.epoch.load(Ordering::Acquire);
        if found.epoch < followed {
            if self.stale_answers.fetch_add(1, Ordering::AcqRel) + 1 < STALE_ANSWERS {
                return false;
            }
            tracing::warn!(
                followed,
                now = found.epoch,
                "every sentinel names an older configuration epoch than the one followed \
                 (sentinels reset?): following them"
            );
        }
        self.stale_answers.store(0, Ordering::Release);
        self.epoch.store(found.epoch, Ordering::Release);
        let same_node = master
            .as_ref()
            .is_some_and(|m| m.host == found.host && m.port == found.port);
        if !same_node {
            let moved = master.is_some();
            *master = Some(found);
            if moved {
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
        true
    }

    /// A connection to the current master, checked with `ROLE`, and its generation.
    pub async fn connect(self: &Arc<Self>) -> Result<(u64, MultiplexedConnection), StoreError> {
        self.listen();
        // Asked afresh for every new connection (rare: the first, and after a failure), not
        // taken from what was followed last: a master that died and came back empty is a
        // master again for a moment, and only the configuration epoch says it is not ours.
        let answer = self.resolve().await?;
        self.follow_answer(answer);
        // The master and its generation read together (both change under the lock): a switch
        // in between would label a connection to the old master with the new generation.
        let (followed, generation) = {
            let master = self.master.read().unwrap_or_else(|p| p.into_inner());
            (master.clone(), self.generation())
        };
        let Some(Master { host, port, .. }) = followed else {
            return Err(StoreError::Unreachable(StoreCause::NoMaster(
                self.target.master_name.clone(),
            )));
        };
        let url = self.target.master_url(&host, port);
        let client = self.client(&url)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        let role = match role.first() {
            Some(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => String::new(),
        };
        if role != "master" {
            self.forget_master();
            return Err(StoreError::Unreachable(StoreCause::NotMaster(
                format!("{host}:{port}"),
                role,
            )));
        }
        Ok((generation, conn))
    }

    /// Asks every sentinel at once where the master is; the answer of the highest
    /// configuration epoch wins. Also says how many sentinels gave that very answer, and how
    /// many sentinels there are.
    async fn resolve(&self) -> Result<Answer, StoreError> {
        let asked_at = self.elapsed_ms();
        let answers = futures_util::future::join_all(
            self.target
                .sentinels
                .iter()
                .map(|sentinel| tokio::time::timeout(self.timeout, self.ask(sentinel))),
        )
        .await;
        let mut best: Option<Master> = None;
        let mut named = Vec::new();
        // The sentinels there are: those named in the URL, or more if a sentinel knows more
        // (a URL naming one sentinel of three, or one twice, is no majority).
        let mut sentinels = self.target.sentinels.len();
        let mut last = None;
        for answer in answers {
            match answer {
                Ok(Ok(Some((found, known)))) => {
                    if best.as_ref().is_none_or(|b| found.epoch > b.epoch) {
                        best = Some(found.clone());
                    }
                    sentinels = sentinels.max(known);
                    named.push(found);
                }
                Ok(Ok(None)) | Err(_) => {}
                Ok(Err(err)) => last = Some(err),
            }
        }
        if let Some(best) = best {
            let agreeing = named.iter().filter(|found| **found == best).count();
            return Ok(Answer {
                master: best,
                agreeing,
                sentinels,
                asked_at,
            });
        }
        Err(match last.map(StoreError::from) {
            Some(err) if err.is_unreachable() => err,
            _ => StoreError::Unreachable(StoreCause::NoMaster(self.target.master_name.clone())),
        })
    }

    /// One sentinel's view: the master's address and the configuration epoch, or `None` when
    /// it does not know the name. The address comes from `GET-MASTER-ADDR-BY-NAME`, not from
    /// `SENTINEL MASTER`: once the promoted replica answers as master, the failover's leader
    /// raises the epoch at once but keeps the old address in `SENTINEL MASTER` until every
    /// replica is reconfigured, while `GET-MASTER-ADDR-BY-NAME` names the promoted replica from
    /// that same moment. Both asked in one pipeline, they describe one state of the sentinel.
    async fn ask(&self, sentinel: &str) -> redis::RedisResult<Option<(Master, usize)>> {
        let client = self.client(sentinel)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let reply: redis::RedisResult<(Option<HostPort>, Vec<String>)> = redis::pipe()
            .cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.target.master_name)
            .cmd("SENTINEL")
            .arg("MASTER")
            .arg(&self.target.master_name)
            .query_async(&mut conn)
            .await;
        let (address, fields) = match reply {
            Ok(reply) => reply,
            // "ERR No such master with that name"
            Err(err)
                if matches!(
                    err.kind(),
                    redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
                ) =>
            {
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        let field = |name: &str| -> Option<usize> {
            fields
                .chunks_exact(2)
                .find(|kv| kv[0] == name)
                .and_then(|kv| kv[1].parse().ok())
        };
        let epoch = field("config-epoch").unwrap_or(0) as u64;
        // This one and the others it knows of.
        let known = field("num-other-sentinels").unwrap_or(0) + 1;
        Ok(address.and_then(|(host, port)| {
            Some((
                Master {
                    host,
                    port: port.parse().ok()?,
                    epoch,
                },
                known,
            ))
        }))
    }

    /// Starts (once) the tasks that follow the master: one subscription per sentinel, and the
    /// poll.
    fn listen(self: &Arc<Self>) {
        if self.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        for sentinel in self.target.sentinels.clone() {
            let watch = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    let Some(this) = watch.upgrade() else { return };
                    if let Err(err) = this.follow(&sentinel).await {
                        tracing::debug!(%sentinel, error = %err, "sentinel subscription lost");
                    }
                    drop(this);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
        let watch = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                let Some(this) = watch.upgrade() else { return };
                if let Ok(answer) = this.resolve().await {
                    this.follow_answer(answer);
                }
            }
        });
    }

    /// Listens to one sentinel's `+switch-master` until its connection ends.
    async fn follow(&self, sentinel: &str) -> redis::RedisResult<()> {
        let client = self.client(sentinel)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe("+switch-master").await?;
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            // "<master name> <old ip> <old port> <new ip> <new port>"
            let payload: String = message.get_payload()?;
            let parts: Vec<&str> = payload.split_whitespace().collect();
            if let [name, _, _, host, port] = parts.as_slice()
                && *name == self.target.master_name
                && let Ok(port) = port.parse::<u16>()
            {
                tracing::warn!(master = %name, new = %format!("{host}:{port}"), "sentinel switched the master");
                // The message carries no epoch: drop every connection now, and follow what
                // the sentinels, asked together, say is the latest configuration.
                self.forget_master();
                if let Ok(answer) = self.resolve().await {
                    self.follow_answer(answer);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redis::topology::Topology;

    fn watch() -> Arc<SentinelWatch> {
        let Some(Topology::Sentinel(target)) =
            Topology::parse("redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster")
        else {
            panic!("a sentinel URL");
        };
        SentinelWatch::new(target, Duration::from_secs(1), None)
    }

    fn at(port: u16, epoch: u64) -> Master {
        Master {
            host: "127.0.0.1".into(),
            port,
            epoch,
        }
    }

    fn followed(watch: &SentinelWatch) -> Option<u16> {
        watch.master.read().unwrap().as_ref().map(|m| m.port)
    }

    #[test]
    fn a_master_is_confirmed_only_by_a_majority_of_the_sentinels() {
        let watch = watch(); // two sentinels configured
        assert!(!watch.confirmed_recently());

        let answer = |agreeing, sentinels| Answer {
            master: at(7000, 3),
            agreeing,
            sentinels,
            asked_at: watch.elapsed_ms(),
        };
        watch.follow_answer(answer(1, 2));
        assert!(!watch.confirmed_recently(), "one of two is no majority");

        watch.follow_answer(answer(2, 5));
        assert!(
            !watch.confirmed_recently(),
            "two of the five sentinels the answers know of is no majority"
        );

        watch.follow_answer(answer(2, 2));
        assert!(watch.confirmed_recently());
    }

    #[test]
    fn an_older_configuration_is_not_followed_back() {
        let watch = watch();
        watch.set_master(at(7000, 3));
        let generation = watch.generation();

        // A lagging sentinel's answer: the old master, an older epoch.
        watch.set_master(at(7001, 2));

        assert_eq!(followed(&watch), Some(7000));
        assert_eq!(watch.generation(), generation, "no connection dropped");
        // A newer configuration is followed, and every kept connection goes.
        watch.set_master(at(7001, 4));
        assert_eq!(followed(&watch), Some(7001));
        assert!(watch.generation() > generation);
    }

    #[test]
    fn sentinels_that_all_start_over_are_followed_after_a_while() {
        let watch = watch();
        watch.set_master(at(7000, 9));
        for _ in 1..STALE_ANSWERS {
            watch.set_master(at(7001, 0));
            assert_eq!(followed(&watch), Some(7000));
        }

        watch.set_master(at(7001, 0));

        assert_eq!(
            followed(&watch),
            Some(7001),
            "not stuck on a forgotten epoch"
        );
    }
}

//! The near-cache: the hot path's session loads served from memory, kept honest by Redis.
//!
//! Redis's server-assisted client-side caching (RESP3 `CLIENT TRACKING`) remembers which keys
//! a connection read and pushes an `invalidate` message on that connection when any client
//! changes one. One dedicated connection per process does every cacheable read (the load
//! script, then the owner's record), so every change to a cached session or its owner's roles
//! or disabled flag, by any instance, evicts the entry here.
//!
//! What makes it safe (each point is a way a cache like this serves a revoked session):
//! - **Wire order.** Pushes and replies share one ordered socket, and the push handler runs
//!   inside the connection's reader, before any later reply is handed over. An entry is
//!   inserted as `Pending(token)` *before* its read is sent and filled only if the same token
//!   is still there when the reply comes: an invalidation that arrived in between leaves
//!   nothing behind. (Tracking is `NOLOOP`, and the load script reads the session again after
//!   sliding its expiry, so that write neither evicts the entry nor leaves it untracked.)
//! - **The owner is known before their record is read.** The load script finds the owner only
//!   in the session it reads, so a push about the owner's record could be handled while the
//!   entry is still pending and match nothing (and Redis 7.0.15 did not track the record for a
//!   script's caller at all: the two-instance demotion test failed). A miss therefore notes
//!   the owner on its pending entry, then reads their record with an `HMGET` of its own: from
//!   then on a change to it cancels the fill, whichever thread gets there first.
//!   redis-rs's own `cache-aio` applies invalidations after the reply may already be stored,
//!   which is why it is not used.
//! - **Nothing unread.** Redis writes the push to this process's socket in the same event-loop
//!   iteration as it answers the writer, so by the time anyone has seen the writer's answer the
//!   push is in this socket. A hit first peeks at the socket (`MSG_PEEK`, non-blocking) and
//!   checks that the reader is not half-way through what it took from it: anything unread or
//!   unhandled makes the request ask Redis instead (a fallback), so a revocation's push that
//!   the reader's thread has not been scheduled to handle yet cannot be raced.
//! - **No hit without a live connection.** A disconnect clears everything; so does a `null`
//!   invalidation (`FLUSHALL`, `FLUSHDB`). A heartbeat PINGs every 100 ms, and hits are served
//!   only while the last PONG is under 300 ms old: every push Redis queued before it answered
//!   that PING has been applied. A stalled or partitioned Redis turns hits into fallbacks to
//!   the normal one-round-trip load (and to 503 when it does not answer).
//! - **Deadlines kept locally.** Redis invalidates a key that expires by TTL only when it gets
//!   round to deleting it, so a hit checks the idle and absolute deadlines itself, and a load
//!   due to slide the expiry (once per touch interval) goes to Redis.
//! - **The writer evicts its own entry** as soon as Redis acknowledges the write, without
//!   waiting for the push (which travels on another socket).
//! - **Fenced writes.** Redis writes a change's answer and its pushes in one event-loop
//!   iteration, but may write the answer first; an instance that revokes something sends one
//!   more PING before it says so (`RedisStore::fence`), answered only once every push is out.
//!
//! What remains: over a real network the push and the writer's answer travel different paths,
//! and a push split across TCP segments could be half-read; the cross-instance revocation
//! probe measures what is left (on one host: nothing).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lru::LruCache;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ProtocolVersion, PushInfo, PushKind, Value,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{CREATED_FIELD, SEEN_FIELD};
use crate::metrics::Metrics;
use crate::store::SessionPolicy;
use crate::store::keys::{Keys, Tagged, handle_tag};

/// How often the tracking connection proves it is alive.
const HEARTBEAT: Duration = Duration::from_millis(100);
/// Hits are served only while the last PONG is younger than this.
const FRESH: Duration = Duration::from_millis(300);
/// A PING unanswered for this long ends the connection (and empties the cache).
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest pause between attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(super) struct NearCache {
    shared: Arc<Shared>,
}

/// What the hot path should do with one session ID.
pub(super) enum Lookup {
    /// Serve these fields: no Redis round trip.
    Hit(HashMap<String, String>),
    /// The cached session is past its idle or absolute deadline.
    Expired,
    /// Load through the tracking connection, then `fill` with the token.
    Miss {
        conn: MultiplexedConnection,
        token: u64,
    },
    /// The cache cannot vouch for anything now: load the normal way.
    Unavailable,
}

/// What a hit needs to know about the tracking socket: whether bytes have arrived that the
/// connection's reader has not finished handling (they may be an invalidation).
struct Watch {
    /// The same socket (a duplicated descriptor), for a non-blocking `MSG_PEEK`.
    socket: std::net::TcpStream,
    /// Set before the reader asks the socket for bytes; cleared only when the socket has none
    /// left, which is after every frame read so far has been handled.
    reading: Arc<AtomicBool>,
}

impl Watch {
    /// Nothing has arrived that is not handled yet. The peek comes first: bytes that arrived
    /// before it are either still in the socket, or were taken by a reader that had already
    /// set `reading`, which stays set until their invalidations are applied.
    fn quiet(&self) -> bool {
        match self.socket.peek(&mut [0u8; 1]) {
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                !self.reading.load(Ordering::SeqCst)
            }
            // Bytes waiting, the peer gone (Ok(0)), or an error: nothing can be vouched for.
            _ => false,
        }
    }
}

/// The tracking connection's socket, as the redis-rs reader sees it.
struct WatchedStream {
    inner: tokio::net::TcpStream,
    reading: Arc<AtomicBool>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.reading.store(true, Ordering::SeqCst);
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_pending() {
            self.reading.store(false, Ordering::SeqCst);
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct Shared {
    state: Mutex<State>,
    epoch: Instant,
    /// The store timeout: how long a pending load keeps others from starting their own.
    timeout: Duration,
    /// Reads invalidated keys back into sessions and users.
    keys: Keys,
    metrics: Arc<Metrics>,
}

/// Everything the push handler and the hot path must change together, under one lock: a miss
/// takes the connection and registers its pending entry atomically with respect to a teardown.
struct State {
    entries: LruCache<String, Slot>,
    /// Session IDs cached per owner's tag, so a change to a user record evicts their sessions.
    by_user: HashMap<String, HashSet<String>>,
    /// The tracking connection, its generation and its socket's watch, while tracking is on.
    conn: Option<(u64, MultiplexedConnection, Arc<Watch>)>,
    /// When the current connection last answered a PING (since `epoch`).
    last_pong: Option<Duration>,
    next_token: u64,
}

enum Slot {
    /// A load is under way; the owner is filled in once the session has been read, before
    /// their record is, so a change to the record invalidates the load too.
    Pending(u64, Option<String>, Instant),
    Ready(Arc<Cached>),
}

struct Cached {
    fields: HashMap<String, String>,
    uid: Option<String>,
    seen: i64,
    /// min(last seen + idle, created + absolute): refused from this second on.
    deadline: i64,
}

impl NearCache {
    /// Starts the cache and its tracking connection on a thread of its own (the connection's
    /// reader runs the push handler, and it must not wait behind request handlers).
    pub(super) fn start(
        client: Client,
        capacity: usize,
        keys: Keys,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<NearCache> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                entries: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
                by_user: HashMap::new(),
                conn: None,
                last_pong: None,
                next_token: 0,
            }),
            epoch: Instant::now(),
            timeout,
            keys,
            metrics,
        });
        let weak = Arc::downgrade(&shared);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("sessiond-near-cache".into())
            .spawn(move || runtime.block_on(maintain(weak, client, timeout)))?;
        Ok(NearCache { shared })
    }

    pub(super) fn lookup(&self, sid_hash: &str, now: i64, policy: &SessionPolicy) -> Lookup {
        let metrics = &self.shared.metrics.near_cache;
        let (generation, conn, watch) = {
            let state = self.shared.lock();
            let fresh = state
                .last_pong
                .is_some_and(|pong| self.shared.epoch.elapsed().saturating_sub(pong) < FRESH);
            match &state.conn {
                Some((generation, conn, watch)) if fresh => {
                    (*generation, conn.clone(), watch.clone())
                }
                _ => {
                    drop(state);
                    metrics.fallbacks.inc();
                    return Lookup::Unavailable;
                }
            }
        };
        // Checked before the entry is read: an invalidation that arrived before this point is
        // applied by the time the socket is quiet.
        let quiet = watch.quiet();
        let mut state = self.shared.lock();
        if !state.is_current(generation) {
            drop(state);
            metrics.fallbacks.inc();
            return Lookup::Unavailable;
        }
        match state.entries.get(sid_hash) {
            Some(Slot::Ready(cached)) => {
                let cached = cached.clone();
                // Something is on its way that may concern this entry (another instance's
                // revocation, or the touch that would keep it alive): ask Redis.
                if !quiet {
                    drop(state);
                    metrics.fallbacks.inc();
                    return Lookup::Unavailable;
                }
                if now >= cached.deadline {
                    state.remove(sid_hash);
                    self.shared.note_size(&state);
                    metrics.hits.inc();
                    return Lookup::Expired;
                }
                // Sliding the expiry is a write: Redis does it, in the load this miss sends.
                if now - cached.seen < policy.touch_secs {
                    drop(state);
                    metrics.hits.inc();
                    return Lookup::Hit(cached.fields.clone());
                }
            }
            // Another request is loading it: let that one fill it rather than cancel it. A
            // load that never came back (its request was dropped) stops counting after the
            // store timeout.
            Some(Slot::Pending(_, _, since)) if since.elapsed() < self.shared.timeout => {
                drop(state);
                metrics.fallbacks.inc();
                return Lookup::Unavailable;
            }
            _ => {}
        }
        state.next_token += 1;
        let token = state.next_token;
        state.put(
            sid_hash.to_owned(),
            Slot::Pending(token, None, Instant::now()),
        );
        self.shared.note_size(&state);
        metrics.misses.inc();
        Lookup::Miss { conn, token }
    }

    /// Stores what a miss loaded, unless something invalidated it since the miss began.
    pub(super) fn fill(
        &self,
        sid_hash: &str,
        token: u64,
        loaded: Option<&HashMap<String, String>>,
        policy: &SessionPolicy,
    ) {
        let mut state = self.shared.lock();
        if !matches!(state.entries.peek(sid_hash), Some(Slot::Pending(t, _, _)) if *t == token) {
            return;
        }
        match loaded.and_then(|fields| Cached::new(fields, policy)) {
            Some(cached) => state.put(sid_hash.to_owned(), Slot::Ready(Arc::new(cached))),
            // Unknown sessions are not remembered: a flood of made-up cookies must not be
            // able to push real sessions out.
            None => state.remove(sid_hash),
        }
        self.shared.note_size(&state);
    }

    /// A miss has read the session and is about to read its owner's record: from now on an
    /// invalidation of that record cancels the miss. Returns false if it is cancelled already.
    pub(super) fn owner_known(&self, sid_hash: &str, token: u64, tag: &str) -> bool {
        let mut state = self.shared.lock();
        if !matches!(state.entries.peek(sid_hash), Some(Slot::Pending(t, _, _)) if *t == token) {
            return false;
        }
        state.put(
            sid_hash.to_owned(),
            Slot::Pending(token, Some(tag.to_owned()), Instant::now()),
        );
        true
    }

    /// Every entry goes (after `sessiond migrate` rewrote records behind the tracking).
    pub(super) fn clear(&self) {
        let mut state = self.shared.lock();
        state.clear();
        self.shared.note_size(&state);
    }

    /// After this instance changed a session: its entry goes now, not when the push arrives.
    pub(super) fn evict_session(&self, sid_hash: &str) {
        let mut state = self.shared.lock();
        state.remove(sid_hash);
        self.shared.note_size(&state);
    }

    /// After this instance changed a user record (roles, disabled, password, deletion, sign-in
    /// time) or ended all of a user's sessions.
    pub(super) fn evict_user(&self, tag: &str) {
        let mut state = self.shared.lock();
        state.remove_user(tag);
        self.shared.note_size(&state);
    }
}

impl Slot {
    /// Whether the entry is (or, pending, is known to be) a signed-in user's session, indexed
    /// under its owner's tag, which its handle carries.
    fn owned(&self) -> bool {
        match self {
            Slot::Ready(cached) => cached.uid.is_some(),
            Slot::Pending(_, owner, _) => owner.is_some(),
        }
    }
}

impl Cached {
    fn new(fields: &HashMap<String, String>, policy: &SessionPolicy) -> Option<Cached> {
        let number = |name: &str| fields.get(name)?.parse::<i64>().ok();
        let created = number(CREATED_FIELD)?;
        let seen = number(SEEN_FIELD)?;
        Some(Cached {
            uid: crate::store::session_owner(fields),
            seen,
            deadline: (seen + policy.idle_secs).min(created + policy.absolute_secs),
            fields: fields.clone(),
        })
    }
}

impl State {
    fn put(&mut self, sid_hash: String, slot: Slot) {
        let owned = slot.owned();
        if let Some((old_sid, old)) = self.entries.push(sid_hash.clone(), slot) {
            self.unlink(&old_sid, &old);
        }
        if owned && let Some(tag) = handle_tag(&sid_hash) {
            self.by_user
                .entry(tag.to_owned())
                .or_default()
                .insert(sid_hash);
        }
    }

    fn remove(&mut self, sid_hash: &str) {
        if let Some(old) = self.entries.pop(sid_hash) {
            self.unlink(sid_hash, &old);
        }
    }

    fn remove_user(&mut self, tag: &str) {
        for sid_hash in self.by_user.remove(tag).unwrap_or_default() {
            self.entries.pop(&sid_hash);
        }
    }

    fn unlink(&mut self, sid_hash: &str, slot: &Slot) {
        if slot.owned()
            && let Some(tag) = handle_tag(sid_hash)
            && let Some(sessions) = self.by_user.get_mut(tag)
        {
            sessions.remove(sid_hash);
            if sessions.is_empty() {
                self.by_user.remove(tag);
            }
        }
    }

    fn is_current(&self, generation: u64) -> bool {
        self.conn.as_ref().is_some_and(|(g, _, _)| *g == generation)
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.by_user.clear();
    }
}

impl Shared {
    /// The entries gauge, after any change to the entries.
    fn note_size(&self, state: &State) {
        self.metrics
            .near_cache
            .entries
            .set(state.entries.len() as i64);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs inside the tracking connection's reader, in wire order with the replies.
    fn on_push(&self, generation: u64, push: PushInfo) {
        let metrics = &self.metrics.near_cache;
        let mut state = self.lock();
        match push.kind {
            PushKind::Invalidate => {
                match push.data.first() {
                    Some(Value::Array(keys)) => {
                        for key in keys {
                            metrics.invalidations.inc();
                            let Value::BulkString(key) = key else {
                                continue;
                            };
                            let key = String::from_utf8_lossy(key);
                            match self.keys.parse_tagged(&key) {
                                Some(Tagged::Session(sid_hash)) => state.remove(&sid_hash),
                                Some(Tagged::User(tag)) => state.remove_user(&tag),
                                None => {}
                            }
                        }
                    }
                    // A null list: the whole keyspace changed (FLUSHALL, FLUSHDB).
                    _ => {
                        metrics.invalidations.inc();
                        state.clear();
                    }
                }
            }
            PushKind::Disconnection if state.is_current(generation) => {
                state.conn = None;
                state.last_pong = None;
                state.clear();
            }
            _ => {}
        }
        self.note_size(&state);
    }

    fn install(&self, generation: u64, conn: MultiplexedConnection, watch: Watch) {
        let mut state = self.lock();
        state.clear();
        state.conn = Some((generation, conn, Arc::new(watch)));
        state.last_pong = Some(self.epoch.elapsed());
        self.metrics.near_cache.entries.set(0);
    }

    fn pong(&self, generation: u64) -> bool {
        let mut state = self.lock();
        let current = state.is_current(generation);
        if current {
            state.last_pong = Some(self.epoch.elapsed());
        }
        current
    }

    fn tear_down(&self, generation: u64) {
        let mut state = self.lock();
        if state.is_current(generation) {
            state.conn = None;
            state.last_pong = None;
            state.clear();
            self.metrics.near_cache.entries.set(0);
        }
    }
}

/// The tracking connection's life: connect, turn tracking on, PING until something fails,
/// then start over. Ends when the store is dropped.
async fn maintain(shared: Weak<Shared>, client: Client, timeout: Duration) {
    let mut generation = 0u64;
    let mut backoff = HEARTBEAT;
    loop {
        generation += 1;
        match connect(&shared, &client, generation, timeout).await {
            Ok(Some(conn)) => {
                backoff = HEARTBEAT;
                heartbeat(&shared, conn, generation).await;
            }
            Ok(None) => return,
            Err(err) => {
                tracing::debug!(error = %err, "near-cache: tracking connection failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        if shared.strong_count() == 0 {
            return;
        }
    }
}

async fn connect(
    shared: &Weak<Shared>,
    client: &Client,
    generation: u64,
    timeout: Duration,
) -> redis::RedisResult<Option<MultiplexedConnection>> {
    let info = client.get_connection_info();
    let ConnectionAddr::Tcp(host, port) = info.addr() else {
        return Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "the near-cache needs a plain TCP redis:// URL",
        )));
    };
    let stream = tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((host.as_str(), *port)),
    )
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    stream.set_nodelay(true)?;
    // A second descriptor for the same socket, so a hit can peek without the reader.
    let std_stream = stream.into_std()?;
    let socket = std_stream.try_clone()?;
    let stream = tokio::net::TcpStream::from_std(std_stream)?;
    let reading = Arc::new(AtomicBool::new(false));
    let watched = WatchedStream {
        inner: stream,
        reading: reading.clone(),
    };
    let pushes = shared.clone();
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(timeout))
        .set_push_sender(
            move |push: PushInfo| -> Result<(), std::convert::Infallible> {
                if let Some(shared) = pushes.upgrade() {
                    shared.on_push(generation, push);
                }
                Ok(())
            },
        );
    let (mut conn, driver) = tokio::time::timeout(
        timeout,
        MultiplexedConnection::new_with_config(info.redis_settings(), watched, config),
    )
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    tokio::spawn(driver);
    // NOLOOP: the load script's own sliding-expiry write does not invalidate the entry it is
    // about to fill (the script reads the session again after writing it, which tracks it
    // anew: a write removes a key from Redis's tracking table for every client).
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("NOLOOP")
        .query_async::<()>(&mut conn)
        .await?;
    let Some(shared) = shared.upgrade() else {
        return Ok(None);
    };
    shared.install(generation, conn.clone(), Watch { socket, reading });
    tracing::info!("near-cache: tracking connection up");
    Ok(Some(conn))
}

async fn heartbeat(shared: &Weak<Shared>, mut conn: MultiplexedConnection, generation: u64) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let pinged = tokio::time::timeout(
            PING_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let alive = matches!(pinged, Ok(Ok(_))) && shared.pong(generation);
        if !alive {
            tracing::warn!(
                "near-cache: tracking connection lost; serving from Redis until it is back"
            );
            shared.tear_down(generation);
            return;
        }
    }
}

/// The tracking connection speaks RESP3 (pushes need it); everything else in the URL stays.
/// Plain TCP only: a hit peeks at the socket, which TLS would hide behind its own buffering.
pub(super) fn tracking_client(url: &str) -> redis::RedisResult<Client> {
    let info = Client::open(url)?.get_connection_info().clone();
    if !matches!(info.addr(), ConnectionAddr::Tcp(..)) {
        return Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "the near-cache needs a plain TCP redis:// URL",
        )));
    }
    let resp3 = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Client::open(info.set_redis_settings(resp3))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use crate::store::UID_FIELD;

    use super::*;

    fn shared(capacity: usize) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                entries: LruCache::new(NonZeroUsize::new(capacity).unwrap()),
                by_user: HashMap::new(),
                conn: None,
                last_pong: None,
                next_token: 0,
            }),
            epoch: Instant::now(),
            timeout: Duration::from_secs(2),
            keys: Keys::new("p:"),
            metrics: Arc::new(Metrics::default()),
        })
    }

    fn policy() -> SessionPolicy {
        SessionPolicy {
            idle_secs: 1800,
            absolute_secs: 43200,
            touch_secs: 60,
            marker_secs: 0,
            refresh_grace_secs: 2,
        }
    }

    fn session_of(user: &str) -> HashMap<String, String> {
        HashMap::from([
            (UID_FIELD.to_owned(), format!("\"{user}\"")),
            (CREATED_FIELD.to_owned(), "100".to_owned()),
            (SEEN_FIELD.to_owned(), "100".to_owned()),
        ])
    }

    fn ready(user: &str) -> Slot {
        Slot::Ready(Arc::new(Cached::new(&session_of(user), &policy()).unwrap()))
    }

    fn invalidate(keys: &[&str]) -> PushInfo {
        PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Array(
                keys.iter()
                    .map(|k| Value::BulkString(k.as_bytes().to_vec()))
                    .collect(),
            )],
        }
    }

    /// A miss under way, as `lookup` registers it.
    fn pending(cache: &NearCache, sid: &str, token: u64) {
        cache
            .shared
            .lock()
            .put(sid.to_owned(), Slot::Pending(token, None, Instant::now()));
    }

    fn is_ready(cache: &NearCache, sid: &str) -> bool {
        matches!(cache.shared.lock().entries.peek(sid), Some(Slot::Ready(_)))
    }

    #[test]
    fn evictions_and_invalidations_keep_the_owner_index_in_step() {
        // Arrange
        let shared = shared(2);
        let mut state = shared.lock();
        state.put("annAAAAAAAA.1".into(), ready("ann"));
        state.put("annAAAAAAAA.2".into(), ready("ann"));

        // Act: a third entry pushes the least recently used out.
        state.put("benAAAAAAAA.3".into(), ready("ben"));
        drop(state);
        shared.on_push(0, invalidate(&["p:{annAAAAAAAA}u"]));

        // Assert
        let state = shared.lock();
        assert!(
            state.entries.peek("annAAAAAAAA.1").is_none()
                && state.entries.peek("annAAAAAAAA.2").is_none()
        );
        assert!(state.entries.peek("benAAAAAAAA.3").is_some());
        assert!(
            !state.by_user.contains_key("annAAAAAAAA"),
            "{:?}",
            state.by_user
        );
        assert_eq!(state.by_user["benAAAAAAAA"].len(), 1);
    }

    #[test]
    fn a_miss_fills_unless_its_session_or_owner_changed_meanwhile() {
        let cache = NearCache { shared: shared(10) };
        let loaded = session_of("ann");

        // Untouched: filled.
        pending(&cache, "annAAAAAAAA.1", 1);
        assert!(cache.owner_known("annAAAAAAAA.1", 1, "annAAAAAAAA"));
        cache.fill("annAAAAAAAA.1", 1, Some(&loaded), &policy());
        assert!(is_ready(&cache, "annAAAAAAAA.1"));

        // The owner's record changed after the owner was noted: not filled.
        pending(&cache, "annAAAAAAAA.2", 2);
        assert!(cache.owner_known("annAAAAAAAA.2", 2, "annAAAAAAAA"));
        cache.shared.on_push(0, invalidate(&["p:{annAAAAAAAA}u"]));
        cache.fill("annAAAAAAAA.2", 2, Some(&loaded), &policy());
        assert!(!is_ready(&cache, "annAAAAAAAA.2"));

        // The session changed (the script's own touch, or another instance): not filled.
        pending(&cache, "annAAAAAAAA.3", 3);
        cache.shared.on_push(0, invalidate(&["p:{annAAAAAAAA}s:3"]));
        assert!(!cache.owner_known("annAAAAAAAA.3", 3, "annAAAAAAAA"));
        cache.fill("annAAAAAAAA.3", 3, Some(&loaded), &policy());
        assert!(!is_ready(&cache, "annAAAAAAAA.3"));

        // A newer miss took over: the older one's answer is not kept.
        pending(&cache, "annAAAAAAAA.4", 4);
        pending(&cache, "annAAAAAAAA.4", 5);
        cache.fill("annAAAAAAAA.4", 4, Some(&loaded), &policy());
        assert!(!is_ready(&cache, "annAAAAAAAA.4"));
    }

    #[test]
    fn a_null_invalidation_empties_the_cache() {
        let cache = NearCache { shared: shared(10) };
        cache
            .shared
            .lock()
            .put("annAAAAAAAA.1".into(), ready("ann"));

        cache.shared.on_push(
            0,
            PushInfo {
                kind: PushKind::Invalidate,
                data: vec![Value::Nil],
            },
        );

        assert_eq!(cache.shared.lock().entries.len(), 0);
    }

    #[test]
    fn the_socket_is_quiet_only_with_nothing_unread_or_being_handled() {
        // Arrange: a socket pair on loopback.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut redis, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let watch = Watch {
            socket: ours.try_clone().unwrap(),
            reading: Arc::new(AtomicBool::new(false)),
        };
        assert!(watch.quiet());

        // Bytes arrive: not quiet until they are read.
        redis.write_all(b">2\r\n").unwrap();
        assert!(!watch.quiet());
        let mut buf = [0u8; 16];
        assert_eq!(ours.read(&mut buf).unwrap(), 4);
        assert!(watch.quiet());

        // Read, but the reader is still handling them.
        watch.reading.store(true, Ordering::SeqCst);
        assert!(!watch.quiet());
        watch.reading.store(false, Ordering::SeqCst);

        // The peer hung up.
        drop(redis);
        assert!(!watch.quiet());
    }
}

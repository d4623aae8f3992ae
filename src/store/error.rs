//! What can go wrong with the store, classified once, where the error is raised.
//!
//! The HTTP layer maps the class to a status and nothing else: `Unreachable` is a 503 ("try
//! again in a moment", the person stays signed in), every other variant is a 500 (a bug or a
//! misconfiguration an operator must fix). A Redis reply error to a command we built (wrong
//! type, bad argument, a failing script) is therefore never reported as an outage.

/// Why the store call failed, kept whole for the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreCause {
    #[error(transparent)]
    Redis(#[from] ::redis::RedisError),
    #[error(transparent)]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// Sentinel named a node that does not say it is the master (a failover in progress):
    /// nothing is written to it.
    #[error("{0} is not the master (ROLE {1})")]
    NotMaster(String, String),
    /// `store.min_replicas_acked`: the write reached fewer replicas than required in time, so
    /// it was not acknowledged (it may still be applied, like any write whose answer is lost).
    #[error("the write reached {acked} of the {wanted} replicas required")]
    NotReplicated { acked: i64, wanted: i64 },
    #[error("no sentinel named a master for {0:?}")]
    NoMaster(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Connection refused or lost, timeout, Redis loading its data set, a failover in
    /// progress (READONLY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN, NOREPLICAS, a redirection): the
    /// store cannot serve us right now, and will again without anything changing on our side.
    #[error("the store cannot be reached")]
    Unreachable(#[source] StoreCause),
    /// Redis answered, and refused what we sent: wrong type, bad argument, a script error,
    /// failed authentication. A bug or a misconfiguration, not an outage.
    #[error("the store refused a command")]
    Refused(#[source] StoreCause),
    #[error("the store holds data this version cannot read: {0}")]
    Corrupt(String),
    #[error("the memory store lives inside the server process; point store.url at Redis")]
    MemoryOutsideServer,
    #[error(
        "invalid store url {0:?}: expected memory://, redis://, rediss://, \
         redis+cluster://h1:p1,h2:p2, or redis+sentinel://s1:p1,s2:p2/MASTER_NAME"
    )]
    BadUrl(String),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("could not use {0} (store.tls_*_file)")]
    TlsFile(std::path::PathBuf, #[source] std::io::Error),
    #[error("could not start the near-cache's thread")]
    NearCache(#[source] std::io::Error),
}

/// The two classes an error of the store falls in, for metrics and status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Unreachable,
    Bug,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Unreachable => "unreachable",
            ErrorClass::Bug => "bug",
        }
    }
}

impl StoreError {
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Unreachable(_) => ErrorClass::Unreachable,
            _ => ErrorClass::Bug,
        }
    }

    pub fn is_unreachable(&self) -> bool {
        self.class() == ErrorClass::Unreachable
    }

    /// The master refused a write because too few replicas are connected
    /// (`min-replicas-to-write`); reads still work.
    pub fn is_no_replicas(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable(StoreCause::Redis(err)) if err.code() == Some("NOREPLICAS")
        )
    }

    pub fn timeout(millis: u64) -> StoreError {
        StoreError::Unreachable(StoreCause::Timeout(millis))
    }
}

/// The one place a Redis error is classified.
impl From<::redis::RedisError> for StoreError {
    fn from(err: ::redis::RedisError) -> StoreError {
        if unreachable(&err) {
            StoreError::Unreachable(err.into())
        } else {
            StoreError::Refused(err.into())
        }
    }
}

impl From<deadpool_redis::PoolError> for StoreError {
    fn from(err: deadpool_redis::PoolError) -> StoreError {
        use deadpool_redis::PoolError;
        match err {
            // Could not connect (or the connection's first command failed): classified like
            // any other Redis error.
            PoolError::Backend(redis) => StoreError::from(redis),
            PoolError::Timeout(_) => StoreError::Unreachable(err.into()),
            // Closed pool, no runtime, a failing hook: our own wiring is wrong.
            _ => StoreError::Refused(err.into()),
        }
    }
}

fn unreachable(err: &::redis::RedisError) -> bool {
    use ::redis::{ErrorKind, ServerErrorKind};
    if err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
    {
        return true;
    }
    match err.kind() {
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask,
        )
        | ErrorKind::ClusterConnectionNotFound
        | ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::NoValidReplicasFoundBySentinel => true,
        // `min-replicas-to-write` not met: the master refuses writes until a replica is back.
        // A pipeline's error has no code of its own: any of its commands refused that way.
        ErrorKind::Extension => {
            err.code() == Some("NOREPLICAS")
                || err
                    .clone()
                    .into_server_errors()
                    .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "NOREPLICAS"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use ::redis::{ErrorKind, RedisError, ServerErrorKind};

    use super::*;

    fn class_of(err: RedisError) -> ErrorClass {
        StoreError::from(err).class()
    }

    #[test]
    fn lost_and_refused_connections_are_unreachable() {
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::BrokenPipe,
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::TimedOut,
        ] {
            let err = RedisError::from(std::io::Error::from(kind));
            assert_eq!(class_of(err), ErrorClass::Unreachable, "{kind:?}");
        }
    }

    #[test]
    fn a_store_loading_or_failing_over_is_unreachable() {
        for kind in [
            ServerErrorKind::BusyLoading,
            ServerErrorKind::TryAgain,
            ServerErrorKind::ClusterDown,
            ServerErrorKind::MasterDown,
            ServerErrorKind::ReadOnly,
            ServerErrorKind::Moved,
            ServerErrorKind::Ask,
        ] {
            let err = RedisError::from((ErrorKind::Server(kind), "failover"));
            assert_eq!(class_of(err), ErrorClass::Unreachable, "{kind:?}");
        }
        let no_replicas = ::redis::make_extension_error(
            "NOREPLICAS".into(),
            Some("Not enough good replicas to write.".into()),
        );
        assert_eq!(class_of(no_replicas), ErrorClass::Unreachable);
    }

    #[test]
    fn a_command_redis_refuses_is_a_bug() {
        for err in [
            RedisError::from((
                ErrorKind::Server(ServerErrorKind::ResponseError),
                "WRONGTYPE Operation against a key holding the wrong kind of value",
            )),
            RedisError::from((ErrorKind::Server(ServerErrorKind::ExecAbort), "aborted")),
            RedisError::from((ErrorKind::Server(ServerErrorKind::CrossSlot), "crossslot")),
            RedisError::from((ErrorKind::UnexpectedReturnType, "not a string")),
            RedisError::from((ErrorKind::AuthenticationFailed, "WRONGPASS")),
            RedisError::from((ErrorKind::Client, "empty pipeline")),
            ::redis::make_extension_error("WRONGTYPE".into(), None),
        ] {
            let shown = format!("{err:?}");
            assert_eq!(class_of(err), ErrorClass::Bug, "{shown}");
        }
    }

    #[test]
    fn a_pool_that_times_out_is_unreachable_and_a_closed_one_a_bug() {
        let timeout = deadpool_redis::PoolError::Timeout(deadpool_redis::TimeoutType::Wait);
        assert!(StoreError::from(timeout).is_unreachable());
        assert!(!StoreError::from(deadpool_redis::PoolError::Closed).is_unreachable());
        assert!(StoreError::timeout(2000).is_unreachable());
        assert!(!StoreError::Corrupt("x".into()).is_unreachable());
    }
}

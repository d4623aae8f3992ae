//! What the soak's clients were told, kept to check it later: every session whose login was
//! acknowledged, every end (logout, revocation) that was acknowledged, every role change that
//! was acknowledged. A session moves Live -> Ending (an end is on its way) -> Ended (the end was
//! acknowledged) or Unknown (the answer was a 503 or never came: it may or may not have ended).
//! Only a session Live for the whole of a request is held to "must be accepted", and only one
//! Ended before a request was sent is held to "must be refused".

use rand::RngExt;
use rand::rngs::SmallRng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Live,
    Ending,
    Ended,
    Unknown,
    /// Acknowledged, never ended, and then refused: a lost write.
    Lost,
    /// Its end was acknowledged, and then it was accepted again: an undone write.
    Undone,
}

pub struct Session {
    pub user: usize,
    /// The `Cookie` header that carries it.
    pub cookie: String,
    /// The stored hash of its ID, as the admin API names it.
    pub handle: String,
    pub state: State,
    live_pos: usize,
}

pub struct User {
    pub name: String,
    /// A login, a revoke-all or a role change of this user is in flight: one at a time, so
    /// their order is known.
    pub busy: bool,
    /// The roles last acknowledged; `None` after a change whose outcome is unknown.
    pub roles: Option<Vec<String>>,
    /// Bumped whenever a change of roles starts or ends, so a reader can tell whether the
    /// roles it compares against held for the whole of its request.
    pub version: u64,
}

#[derive(Default)]
pub struct Ledger {
    pub sessions: Vec<Session>,
    live: Vec<usize>,
    ended: Vec<usize>,
    pub users: Vec<User>,
}

impl Ledger {
    pub fn new(users: &[String], roles: &[String]) -> Ledger {
        Ledger {
            users: users
                .iter()
                .map(|name| User {
                    name: name.clone(),
                    busy: false,
                    roles: Some(roles.to_vec()),
                    version: 0,
                })
                .collect(),
            ..Ledger::default()
        }
    }

    pub fn add_live(&mut self, user: usize, cookie: String, handle: String) {
        let id = self.sessions.len();
        self.sessions.push(Session {
            user,
            cookie,
            handle,
            state: State::Live,
            live_pos: self.live.len(),
        });
        self.live.push(id);
    }

    pub fn live_ids(&self) -> Vec<usize> {
        self.live.clone()
    }

    pub fn ended_ids(&self) -> Vec<usize> {
        self.ended.clone()
    }

    pub fn random_live(&self, rng: &mut SmallRng) -> Option<usize> {
        (!self.live.is_empty()).then(|| self.live[rng.random_range(0..self.live.len())])
    }

    pub fn random_ended(&self, rng: &mut SmallRng) -> Option<usize> {
        (!self.ended.is_empty()).then(|| self.ended[rng.random_range(0..self.ended.len())])
    }

    fn unlist_live(&mut self, id: usize) {
        let pos = self.sessions[id].live_pos;
        self.live.swap_remove(pos);
        if let Some(&moved) = self.live.get(pos) {
            self.sessions[moved].live_pos = pos;
        }
    }

    /// Live -> Ending, before an end is sent; false if it was not live.
    pub fn begin_end(&mut self, id: usize) -> bool {
        if self.sessions[id].state != State::Live {
            return false;
        }
        self.unlist_live(id);
        self.sessions[id].state = State::Ending;
        true
    }

    /// Ending -> Live: the end was never sent.
    pub fn cancel_end(&mut self, id: usize) {
        if self.sessions[id].state == State::Ending {
            self.sessions[id].state = State::Live;
            self.sessions[id].live_pos = self.live.len();
            self.live.push(id);
        }
    }

    /// Ending -> Ended: the end was acknowledged.
    pub fn ended(&mut self, id: usize) {
        if self.sessions[id].state == State::Ending {
            self.sessions[id].state = State::Ended;
            self.ended.push(id);
        }
    }

    /// Ending -> Unknown: the end may or may not have happened.
    pub fn unknown(&mut self, id: usize) {
        if self.sessions[id].state == State::Ending {
            self.sessions[id].state = State::Unknown;
        }
    }

    /// Live -> Lost; true the first time (each session is counted once).
    pub fn lost(&mut self, id: usize) -> bool {
        if self.sessions[id].state != State::Live {
            return false;
        }
        self.unlist_live(id);
        self.sessions[id].state = State::Lost;
        true
    }

    /// Ended -> Undone; true the first time.
    pub fn undone(&mut self, id: usize) -> bool {
        if self.sessions[id].state != State::Ended {
            return false;
        }
        if let Some(pos) = self.ended.iter().position(|&e| e == id) {
            self.ended.swap_remove(pos);
        }
        self.sessions[id].state = State::Undone;
        true
    }

    /// A user nothing else is changing, now marked busy.
    pub fn claim_user(&mut self, rng: &mut SmallRng) -> Option<usize> {
        let n = self.users.len();
        (0..8)
            .map(|_| rng.random_range(0..n))
            .find(|&user| self.claim(user))
    }

    /// Marks `user` busy; false when something else is changing them.
    pub fn claim(&mut self, user: usize) -> bool {
        !std::mem::replace(&mut self.users[user].busy, true)
    }

    pub fn release_user(&mut self, user: usize) {
        self.users[user].busy = false;
    }

    /// Every live session of `user`, moved to Ending.
    pub fn begin_end_all(&mut self, user: usize) -> Vec<usize> {
        let ids: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|&id| self.sessions[id].user == user)
            .collect();
        for &id in &ids {
            self.begin_end(id);
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_session_is_live_until_its_end_starts_and_ended_only_when_acknowledged() {
        let mut ledger = Ledger::new(&["alice".into()], &[]);
        ledger.add_live(0, "c0".into(), "h0".into());
        ledger.add_live(0, "c1".into(), "h1".into());
        ledger.add_live(0, "c2".into(), "h2".into());

        assert!(ledger.begin_end(1));
        assert!(!ledger.begin_end(1), "an end already on its way");
        ledger.ended(1);
        assert!(ledger.begin_end(0));
        ledger.unknown(0);

        assert_eq!(ledger.live_ids(), vec![2]);
        assert_eq!(ledger.ended_ids(), vec![1]);
        assert!(
            !ledger.lost(0),
            "a session whose end is unknown is never counted lost"
        );
        assert!(ledger.lost(2));
        assert!(!ledger.lost(2), "counted once");
        assert!(ledger.undone(1));
        assert!(ledger.ended_ids().is_empty());
    }

    #[test]
    fn an_end_never_sent_leaves_the_session_live_and_users_are_claimed_one_at_a_time() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut ledger = Ledger::new(&["alice".into()], &[]);
        ledger.add_live(0, "c0".into(), "h0".into());

        let all = ledger.begin_end_all(0);
        ledger.cancel_end(all[0]);

        assert_eq!(ledger.random_live(&mut rng), Some(0));
        assert_eq!(ledger.claim_user(&mut rng), Some(0));
        assert_eq!(ledger.claim_user(&mut rng), None, "alice is busy");
        ledger.release_user(0);
        assert_eq!(ledger.claim_user(&mut rng), Some(0));
    }
}

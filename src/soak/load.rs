//! The soak's steady mixed load: page views and `GET /api/me` over the live sessions, good and
//! bad logins, logouts, admin revokes (one session, or all of a user's) and role changes, sent
//! to whichever instance is in the (simulated) load balancer. Every answer is timed and
//! counted; every acknowledged write goes into the ledger, and every later answer is checked
//! against it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, CookieJar, Key};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::ledger::{Ledger, State};
use crate::auth::session_store::session_id_hash;

/// How long a client waits for an answer: longer than a stall plus the store's timeout, so a
/// request the server still answers is never given up on.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// One answer (or its absence), as the timeline of the run.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// Seconds since the soak started, when the answer came.
    pub at: f64,
    /// 0: no answer (the connection failed or closed, or the client gave up).
    pub status: u16,
}

/// What the load counted; the report adds the faults and the final check.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Counts {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer at all.
    pub unanswered: u64,
    /// What those were, a few of them.
    pub unanswered_examples: Vec<String>,
    pub logins_acknowledged: u64,
    pub bad_logins_refused: u64,
    /// A wrong password answered with a session: must be 0.
    pub bad_logins_accepted: u64,
    /// The right password of an existing, enabled user refused with 401/403: a lost user record.
    pub good_logins_refused: u64,
    pub logouts_acknowledged: u64,
    pub revokes_acknowledged: u64,
    pub revoke_alls_acknowledged: u64,
    pub sessions_ended_by_revoke_all: u64,
    pub role_changes_acknowledged: u64,
    /// Ends and role changes answered 503 or not at all: their outcome is unknown, and the
    /// ledger stops holding anything to them.
    pub outcomes_unknown: u64,
    /// Sessions acknowledged, never ended, later refused: must be 0.
    pub sessions_lost: u64,
    /// Ends acknowledged, then the session accepted again: must be 0.
    pub revocations_undone: u64,
    /// Role changes acknowledged, then the old roles served again: must be 0.
    pub role_changes_undone: u64,
    /// Checks of a live session's roles against the last acknowledged change.
    pub role_checks: u64,
    /// Checks of an ended session being refused.
    pub ended_checks: u64,
}

/// One instance behind the simulated load balancer.
pub struct Slot {
    pub base: String,
    client: RwLock<reqwest::Client>,
    up: AtomicBool,
    pub in_flight: AtomicUsize,
}

fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(CLIENT_TIMEOUT)
        // Below the server's keep-alive (`server.keep_alive_secs`, 5 s), as a load balancer's
        // idle timeout must be: otherwise a request sent on a connection the server is closing
        // as idle at that very moment gets no answer, which is HTTP/1.1's race, not a fault.
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("a reqwest client with no TLS settings builds")
}

impl Slot {
    pub fn new(base: String) -> Slot {
        Slot {
            base,
            client: RwLock::new(new_client()),
            up: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Out of the load balancer: no new request goes to it (in-flight ones carry on).
    pub fn take_out(&self) {
        self.up.store(false, Ordering::SeqCst);
    }

    /// Back in, with fresh connections (the old pool's belong to the process that ended).
    pub fn put_back(&self) {
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = new_client();
        self.up.store(true, Ordering::SeqCst);
    }
}

pub struct Reply {
    pub status: u16,
    pub set_cookies: Vec<String>,
    pub body: String,
}

pub struct Shared {
    pub slots: Vec<Slot>,
    pub ledger: Mutex<Ledger>,
    pub counts: Mutex<Counts>,
    pub events: Mutex<Vec<Event>>,
    pub started: Instant,
    pub stop: AtomicBool,
    pub cookie_name: String,
    pub cookie_key: Key,
    pub password: String,
    pub admin: Mutex<Option<Admin>>,
    pub admin_name: String,
    pub role_choices: [Vec<String>; 2],
}

/// The admin's signed-in session and its CSRF token.
#[derive(Clone)]
pub struct Admin {
    cookie: String,
    csrf: String,
}

pub enum Outcome {
    Answered(Reply),
    Unanswered,
}

impl Shared {
    fn lock_ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, update: impl FnOnce(&mut Counts)) {
        update(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// An instance in the load balancer, at random.
    fn pick(&self, rng: &mut SmallRng) -> usize {
        let up: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].up.load(Ordering::SeqCst))
            .collect();
        if up.is_empty() {
            0
        } else {
            up[rng.random_range(0..up.len())]
        }
    }

    pub async fn send(
        &self,
        slot: usize,
        method: Method,
        path: &str,
        cookie: Option<&str>,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Outcome {
        // A step's later requests follow the balancer too: an instance taken out since the
        // step began gets none of them.
        let slot = if self.slots[slot].up.load(Ordering::SeqCst) {
            &self.slots[slot]
        } else {
            self.slots
                .iter()
                .find(|s| s.up.load(Ordering::SeqCst))
                .unwrap_or(&self.slots[slot])
        };
        let client = slot
            .client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut request = client.request(method.clone(), format!("{}{path}", slot.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        slot.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = async {
            let response = build(request).send().await?;
            let status = response.status().as_u16();
            let set_cookies = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect();
            let body = response.text().await?;
            Ok::<_, reqwest::Error>(Reply {
                status,
                set_cookies,
                body,
            })
        }
        .await;
        slot.in_flight.fetch_sub(1, Ordering::SeqCst);
        let status = result.as_ref().map_or(0, |r| r.status);
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Event {
                at: self.seconds(),
                status,
            });
        self.count(|c| {
            c.requests += 1;
            *c.by_status.entry(status).or_default() += 1;
            if let Err(e) = &result {
                c.unanswered += 1;
                if c.unanswered_examples.len() < 10 {
                    c.unanswered_examples
                        .push(format!("{method} {}{path}: {e:?}", slot.base));
                }
            }
        });
        match result {
            Ok(reply) => Outcome::Answered(reply),
            Err(_) => Outcome::Unanswered,
        }
    }

    /// The session cookie a reply set: the `Cookie` header that sends it back, and its handle.
    fn session_cookie(&self, reply: &Reply) -> Option<(String, String)> {
        let raw = reply
            .set_cookies
            .iter()
            .find(|c| c.starts_with(&format!("{}=", self.cookie_name)))?;
        let pair = raw.split(';').next()?.to_owned();
        let cookie = Cookie::parse_encoded(raw.clone()).ok()?;
        let mut jar = CookieJar::new();
        jar.add_original(cookie.into_owned());
        let id = jar.signed(&self.cookie_key).get(&self.cookie_name)?;
        Some((pair, session_id_hash(id.value())))
    }

    /// Signs `user` in through the login form; the session's cookie and handle on a 303.
    pub async fn login(
        &self,
        slot: usize,
        user: &str,
        password: &str,
    ) -> Result<(String, String), Option<u16>> {
        let form = match self.send(slot, Method::GET, "/login", None, |r| r).await {
            Outcome::Answered(reply) if reply.status == 200 => reply,
            Outcome::Answered(reply) => return Err(Some(reply.status)),
            Outcome::Unanswered => return Err(None),
        };
        let csrf = crate::bench::form_value(&form.body, "csrf").unwrap_or_default();
        let pre_login = self.session_cookie(&form).map(|(pair, _)| pair);
        let reply = match self
            .send(slot, Method::POST, "/login", pre_login.as_deref(), |r| {
                r.form(&[("username", user), ("password", password), ("csrf", &csrf)])
            })
            .await
        {
            Outcome::Answered(reply) => reply,
            Outcome::Unanswered => return Err(None),
        };
        match (reply.status, self.session_cookie(&reply)) {
            (303, Some(session)) => Ok(session),
            (status, _) => Err(Some(status)),
        }
    }

    /// The CSRF token of the session `cookie` carries, from `GET /api/csrf`.
    async fn csrf(&self, slot: usize, cookie: &str) -> Result<String, Option<u16>> {
        match self
            .send(slot, Method::GET, "/api/csrf", Some(cookie), |r| r)
            .await
        {
            Outcome::Answered(reply) if reply.status == 200 => {
                let value: serde_json::Value =
                    serde_json::from_str(&reply.body).map_err(|_| Some(reply.status))?;
                Ok(value["csrf"].as_str().unwrap_or_default().to_owned())
            }
            Outcome::Answered(reply) => Err(Some(reply.status)),
            Outcome::Unanswered => Err(None),
        }
    }

    /// The admin's session, signing in again if there is none.
    async fn admin(&self, slot: usize) -> Option<Admin> {
        if let Some(admin) = self.admin.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Some(admin);
        }
        let (cookie, _) = self
            .login(slot, &self.admin_name, &self.password)
            .await
            .ok()?;
        let csrf = self.csrf(slot, &cookie).await.ok()?;
        let admin = Admin { cookie, csrf };
        *self.admin.lock().unwrap_or_else(|p| p.into_inner()) = Some(admin.clone());
        Some(admin)
    }

    /// An admin API call; a 401 means the admin's own acknowledged session was lost.
    async fn admin_call(
        &self,
        slot: usize,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Option<u16> {
        let admin = self.admin(slot).await?;
        let reply = self
            .send(slot, method, path, Some(&admin.cookie), |r| {
                let r = r.header("x-csrf-token", &admin.csrf);
                match body {
                    Some(body) => r.json(&body),
                    None => r,
                }
            })
            .await;
        match reply {
            Outcome::Answered(reply) => {
                if reply.status == 401 {
                    self.count(|c| c.sessions_lost += 1);
                    *self.admin.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                Some(reply.status)
            }
            Outcome::Unanswered => None,
        }
    }
}

/// What one worker does next, by weight. Ends are rarer than logins, so the live sessions the
/// reads spread over keep growing.
#[derive(Debug, Clone, Copy)]
enum Step {
    Me,
    Page,
    Login,
    BadLogin,
    Logout,
    RevokeOne,
    RevokeAll,
    ChangeRoles,
    CheckEnded,
}

const MIX: &[(Step, u32)] = &[
    (Step::Me, 46),
    (Step::Page, 14),
    (Step::Login, 10),
    (Step::BadLogin, 4),
    (Step::Logout, 3),
    (Step::RevokeOne, 2),
    (Step::RevokeAll, 1),
    (Step::ChangeRoles, 4),
    (Step::CheckEnded, 10),
];

fn next_step(rng: &mut SmallRng) -> Step {
    let mut roll = rng.random_range(0..MIX.iter().map(|(_, w)| w).sum::<u32>());
    for &(step, weight) in MIX {
        if roll < weight {
            return step;
        }
        roll -= weight;
    }
    Step::Me
}

/// One client of the load: steps until told to stop, pausing `pace` between steps.
pub async fn worker(shared: Arc<Shared>, seed: u64, pace: Duration) {
    let mut rng = SmallRng::seed_from_u64(seed);
    while !shared.stop.load(Ordering::SeqCst) {
        let slot = shared.pick(&mut rng);
        match next_step(&mut rng) {
            Step::Me => read_me(&shared, slot, &mut rng).await,
            Step::Page => view_page(&shared, slot, &mut rng).await,
            Step::Login => login(&shared, slot, &mut rng).await,
            Step::BadLogin => bad_login(&shared, slot, &mut rng).await,
            Step::Logout => logout(&shared, slot, &mut rng).await,
            Step::RevokeOne => revoke_one(&shared, slot, &mut rng).await,
            Step::RevokeAll => revoke_all(&shared, slot, &mut rng).await,
            Step::ChangeRoles => change_roles(&shared, slot, &mut rng).await,
            Step::CheckEnded => check_ended(&shared, slot, &mut rng).await,
        }
        tokio::time::sleep(pace).await;
    }
}

/// `GET /api/me` on a live session: refused means lost; the roles must be the last
/// acknowledged ones.
async fn read_me(shared: &Shared, slot: usize, rng: &mut SmallRng) {
    let picked = {
        let ledger = shared.lock_ledger();
        ledger.random_live(rng).map(|id| {
            let session = &ledger.sessions[id];
            let user = &ledger.users[session.user];
            (id, session.cookie.clone(), session.user, user.version)
        })
    };
    let Some((id, cookie, user, version)) = picked else {
        return;
    };
    let Outcome::Answered(reply) = shared
        .send(slot, Method::GET, "/api/me", Some(&cookie), |r| r)
        .await
    else {
        return;
    };
    let mut ledger = shared.lock_ledger();
    if ledger.sessions[id].state != State::Live {
        return;
    }
    match reply.status {
        401 if ledger.lost(id) => {
            drop(ledger);
            shared.count(|c| c.sessions_lost += 1);
        }
        200 => {
            let owner = &ledger.users[user];
            // Only when no change of roles started or ended while the request was out.
            if owner.version != version || owner.busy {
                return;
            }
            let Some(expected) = owner.roles.clone() else {
                return;
            };
            drop(ledger);
            let served = served_roles(&reply.body);
            shared.count(|c| {
                c.role_checks += 1;
                if served != expected {
                    c.role_changes_undone += 1;
                }
            });
        }
        _ => {}
    }
}

/// The roles a `GET /api/me` answer says, sorted (the ledger's are).
pub fn served_roles(body: &str) -> Vec<String> {
    let mut roles: Vec<String> = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::from_value(v["roles"].clone()).ok())
        .unwrap_or_default();
    roles.sort();
    roles
}

/// A page that needs a signed-in user: a redirect to the login page means the session was lost.
async fn view_page(shared: &Shared, slot: usize, rng: &mut SmallRng) {
    let picked = {
        let ledger = shared.lock_ledger();
        ledger
            .random_live(rng)
            .map(|id| (id, ledger.sessions[id].cookie.clone()))
    };
    let Some((id, cookie)) = picked else {
        return;
    };
    let path = if rng.random_range(0..2) == 0 {
        "/"
    } else {
        "/account/sessions"
    };
    let Outcome::Answered(reply) = shared
        .send(slot, Method::GET, path, Some(&cookie), |r| r)
        .await
    else {
        return;
    };
    if path == "/account/sessions" && reply.status == 303 && shared.lock_ledger().lost(id) {
        shared.count(|c| c.sessions_lost += 1);
    }
}

async fn login(shared: &Shared, slot: usize, rng: &mut SmallRng) {
    let Some((user, name)) = claim(shared, rng) else {
        return;
    };
    match shared.login(slot, &name, &shared.password).await {
        Ok((cookie, handle)) => {
            shared.lock_ledger().add_live(user, cookie, handle);
            shared.count(|c| c.logins_acknowledged += 1);
        }
        Err(Some(401 | 403)) => shared.count(|c| c.good_logins_refused += 1),
        Err(_) => {}
    }
    shared.lock_ledger().release_user(user);
}

fn claim(shared: &Shared, rng: &mut SmallRng) -> Option<(usize, String)> {
    let mut ledger = shared.lock_ledger();
    let user = ledger.claim_user(rng)?;
    Some((user, ledger.users[user].name.clone()))
}

/// A wrong password for a real user, or a name nobody has: never a session.
async fn bad_login(shared: &Shared, slot: usize, rng: &mut SmallRng) {
    let name = if rng.random_range(0..2) == 0 {
        "soak-decoy".to_owned()
    } else {
        format!("nobody-{}", rng.random_range(0..1000))
    };
    match shared.login(slot, &name, "not the password at all").await {
        Ok(_) => shared.count(|c| c.bad_logins_accepted += 1),
        Err(Some(401 | 429)) => shared.count(|c| c.bad_logins_refused += 1),
        Err(_) => {}
    }
}

/// A live session, moved to Ending, with its owner claimed: nothing else ends the owner's
/// sessions while its end is out (a revoke-all in between would look like a lost session).
fn pick_to_end(shared: &Shared, rng: &mut SmallRng) -> Option<(usize, usize)> {
    let mut ledger = shared.lock_ledger();
    let id = ledger.random_live(rng)?;
    let user = ledger.sessions[id].user;
    if !ledger.claim(user) {
        return None;
    }
    ledger.begin_end(id);
    Some((id, user))
}

/// Signs a live session out through the form.
async fn logout(shared: &Shared, slot: usize, rng: &mut SmallRng) {
    let Some((id, user)) = pick_to_end(shared, rng) else {
        return;
    };
    signed_out(shared, slot, id).await;
    shared.lock_ledger().release_user(user);
}

async fn signed_out(shared: &Shared, slot: usize, id: usize) {
    let cookie = shared.lock_ledger().sessions[id].cookie.clone();
    let csrf = match shared.csrf(slot, &cookie).await {
        Ok(csrf) => csrf,
        Err(Some(401)) => {
            // Refused while it was still ours to end: lost.
            let mut ledger = shared.lock_ledger();
            ledger.cancel_end(id);
            if ledger.lost(id) {
                drop(ledger);
                shared.count(|c| c.sessions_lost += 1);
            }
            return;
        }
        Err(_) => {
            shared.lock_ledger().cancel_end(id);
            return;
        }
    };
    let reply = shared
        .send(slot, Method::POST, "/logout", Some(&cookie), |r| {
            r.form(&[("csrf", csrf.as_str())])
        })
        .await;
    settle_end(shared, &[id], reply_status(&reply) == Some(303), |c| {
        c.logouts_acknowledged += 1
    });
}

fn reply_status(outcome: &Outcome) -> Option<u16> {
    match outcome {
        Outcome::Answered(reply) => Some(reply.status),
        Outcome::Unanswered => None,
    }
}

/// Ending sessions become Ended when the end was acknowledged, Unknown otherwise.
fn settle_end(shared: &Shared, ids: &[usize], acknowledged: bool, count: impl FnOnce(&mut Counts)) {
    let mut ledger = shared.lock_ledger();
    for &id in ids {
        if acknowledged {
            ledger.ended(id);
        } else {
            ledger.unknown(id);
        }
    }
    drop(ledger);
    if acknowledged {
        shared.count(count);
    } else {
        shared.count(|c| c.outcomes_unknown += 1);
    }
}

/// An admin revokes one live session by its handle.
async fn revoke_one(shared: &Shared, slot: usize, rng: &mut SmallRng) {
    let Some((id, user)) = pick_to_end(shared, rng) else {
        return;
    };
    revoked(shared, slot, id).await;
    shared.lock_ledger().release_user(user);
}

async fn revoked(shared: &Shared, slot: usize, id: usize) {
    let path = {
        let ledger = shared.lock_ledger();
        let session = &ledger.sessions[id];
        format!(
            "/api/admin/users/{}/sessions/{}",
            ledger.users[session.user].name, session.handle
        )
    };
    let status = shared.admin_call(slot, Method::DELETE, &path, None).await;
    if status == Some(404) {
        // "No such live session" for one acknowledged and never ended: lost.
        let mut ledger = shared.lock_ledger();
        ledger.cancel_end(id);
        if ledger.lost(id) {
            drop(ledger);
            shared.count(|c| c.sessions_lost += 1);
        }
        return;
    }
    settle_end(shared, &[id], status == Some(204), |c| {
        c.revokes_acknowledged += 1
    });
}

/// An admin ends every session of a user.
async fn revoke_all(shared: &Shared, slot: usize, rng: &mut SmallRng) {
    let Some((user, name)) = claim(shared, rng) else {
        return;
    };
    let ids = shared.lock_ledger().begin_end_all(user);
    let path = format!("/api/admin/users/{name}/sessions");
    let status = shared.admin_call(slot, Method::DELETE, &path, None).await;
    let n = ids.len() as u64;
    settle_end(shared, &ids, status == Some(200), |c| {
        c.revoke_alls_acknowledged += 1;
        c.sessions_ended_by_revoke_all += n;
    });
    shared.lock_ledger().release_user(user);
}

/// An admin swaps a user's role between the two choices.
async fn change_roles(shared: &Shared, slot: usize, rng: &mut SmallRng) {
    let Some((user, name)) = claim(shared, rng) else {
        return;
    };
    let roles = {
        let mut ledger = shared.lock_ledger();
        let owner = &mut ledger.users[user];
        owner.version += 1;
        if owner.roles.as_ref() == Some(&shared.role_choices[0]) {
            shared.role_choices[1].clone()
        } else {
            shared.role_choices[0].clone()
        }
    };
    let path = format!("/api/admin/users/{name}/roles");
    let body = serde_json::json!({ "roles": roles });
    let status = shared
        .admin_call(slot, Method::PUT, &path, Some(body))
        .await;
    let mut ledger = shared.lock_ledger();
    let owner = &mut ledger.users[user];
    owner.version += 1;
    owner.roles = (status == Some(204)).then_some(roles);
    ledger.release_user(user);
    drop(ledger);
    if status == Some(204) {
        shared.count(|c| c.role_changes_acknowledged += 1);
    } else {
        shared.count(|c| c.outcomes_unknown += 1);
    }
}

/// A session whose end was acknowledged must stay refused.
async fn check_ended(shared: &Shared, slot: usize, rng: &mut SmallRng) {
    let picked = {
        let ledger = shared.lock_ledger();
        ledger
            .random_ended(rng)
            .map(|id| (id, ledger.sessions[id].cookie.clone()))
    };
    let Some((id, cookie)) = picked else {
        return;
    };
    let outcome = shared
        .send(slot, Method::GET, "/api/me", Some(&cookie), |r| r)
        .await;
    match reply_status(&outcome) {
        Some(200) => {
            if shared.lock_ledger().undone(id) {
                shared.count(|c| c.revocations_undone += 1);
            }
            shared.count(|c| c.ended_checks += 1);
        }
        Some(401) => shared.count(|c| c.ended_checks += 1),
        _ => {}
    }
}

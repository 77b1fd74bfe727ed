//! Console sessions: server-side, bounded, expiring.
//!
//! A session id is 32 random bytes (ring's `SystemRandom`) in hex, sent only as an `HttpOnly`,
//! `SameSite=Strict` cookie. The map is keyed by the id's SHA-256, so the ids themselves are
//! not kept. Each session has its own random CSRF token (the synchronizer token put in every
//! form), compared in constant time.
//!
//! Bounded: at most [`MAX_SESSIONS`]. When full, expired sessions are dropped first, then the
//! one closest to expiry; a flood of logins can only sign out other sessions, never grow
//! memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};

use crate::control::auth::{Operator, digests_equal, sha256};

/// Most live sessions. Each is under 200 bytes; raising it costs memory only.
pub(crate) const MAX_SESSIONS: usize = 10_000;

/// A signed-in console user.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Who signed in.
    pub(crate) operator: Operator,
    /// The synchronizer token for this session's forms.
    pub(crate) csrf: String,
    expires: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        digests_equal(&sha256(presented.as_bytes()), &sha256(self.csrf.as_bytes()))
    }
}

/// No session could be made: the random source failed (or the map's lock was poisoned).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unavailable;

/// The live sessions.
pub(crate) struct Sessions {
    ttl: Duration,
    random: SystemRandom,
    live: Mutex<HashMap<[u8; 32], Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// No sessions yet; each will last `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            random: SystemRandom::new(),
            live: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session for `operator`; returns its id (the cookie value).
    pub(crate) fn create(&self, operator: Operator) -> Result<String, Unavailable> {
        let id = self.random_hex()?;
        let session = Session {
            operator,
            csrf: self.random_hex()?,
            expires: Instant::now() + self.ttl,
        };
        let Ok(mut live) = self.live.lock() else {
            return Err(Unavailable);
        };
        if live.len() >= MAX_SESSIONS {
            let now = Instant::now();
            live.retain(|_, session| session.expires > now);
        }
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live
                .iter()
                .min_by_key(|(_, session)| session.expires)
                .map(|(key, _)| *key)
        {
            live.remove(&oldest);
        }
        live.insert(sha256(id.as_bytes()), session);
        Ok(id)
    }

    /// The live session with this id.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let key = sha256(id.as_bytes());
        let mut live = self.live.lock().ok()?;
        match live.get(&key) {
            Some(session) if session.expires > Instant::now() => Some(session.clone()),
            Some(_) => {
                live.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session with this id.
    pub(crate) fn remove(&self, id: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&sha256(id.as_bytes()));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.live.lock().map(|live| live.len()).unwrap_or(0)
    }

    fn random_hex(&self) -> Result<String, Unavailable> {
        let mut bytes = [0u8; 32];
        self.random.fill(&mut bytes).map_err(|_| Unavailable)?;
        Ok(portcullis_core::hex::encode(&bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_config::AdminRole;

    fn operator() -> Operator {
        Operator {
            name: "alice".into(),
            role: AdminRole::Approver,
        }
    }

    #[test]
    fn sessions_are_found_by_id_and_end() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions.create(operator()).unwrap();
        assert_eq!(id.len(), 64);
        let session = sessions.get(&id).unwrap();
        assert_eq!(session.operator.name, "alice");
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches("nope"));
        assert!(sessions.get("0".repeat(64).as_str()).is_none());
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn expired_sessions_are_gone() {
        let sessions = Sessions::new(Duration::ZERO);
        let id = sessions.create(operator()).unwrap();
        assert!(sessions.get(&id).is_none());
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn the_map_is_bounded() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let first = sessions.create(operator()).unwrap();
        for _ in 0..MAX_SESSIONS {
            sessions.create(operator()).unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        // The oldest went to make room.
        assert!(sessions.get(&first).is_none());
    }
}

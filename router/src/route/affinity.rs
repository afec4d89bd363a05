//! Cache affinity: a session keeps to the candidate that served its
//! previous request on a route, where the vendor's prompt cache holds the
//! context it resends. The gateway remembers that candidate (see its
//! `affinity` module); [`Route::plan_for`](super::Route::plan_for) puts it
//! first while it is healthy and able to serve the request, and the
//! `cheapest` strategy prices it with the session's observed cache-hit
//! share against the others paying full input for the context.

use super::Strategy;

/// The candidate that served a session's previous request on a route.
#[derive(Debug, Clone, PartialEq)]
pub struct Sticky {
    /// The configured model name.
    pub model: String,
    /// The share of that request's prompt the model read from its cache
    /// (0 to 1): what `cheapest` expects the next one to read.
    pub cache_share: f64,
}

/// What affinity did for a request of a session the route remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    /// The session's candidate answered again.
    Kept,
    /// Another candidate answered: the session's was unhealthy, failed,
    /// could not serve the request, or cost more even with its cache.
    Moved,
}

impl Affinity {
    /// The response header's value and the metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::Moved => "moved",
        }
    }
}

impl Strategy {
    /// Whether a route with this strategy and `candidates` keeps sessions
    /// on their candidate unless its config says otherwise: yes where the
    /// strategy could move a session between two requests (`cheapest` as
    /// prices and cache shares shift, `fastest` as speeds do, `weighted` at
    /// every draw) and there is somewhere to move to. `ordered` already
    /// sends every request to the first healthy candidate, and a session
    /// that fell back should return to it once it recovers.
    pub fn keeps_sessions_by_default(&self, candidates: usize) -> bool {
        candidates > 1 && !matches!(self, Self::Ordered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_is_on_by_default_where_the_strategy_could_move_a_session() {
        for s in [
            Strategy::Cheapest,
            Strategy::Fastest,
            Strategy::Weighted(vec![1, 1]),
        ] {
            assert!(s.keeps_sessions_by_default(2), "{}", s.name());
            assert!(!s.keeps_sessions_by_default(1), "{}", s.name());
        }
        assert!(!Strategy::Ordered.keeps_sessions_by_default(3));
    }
}

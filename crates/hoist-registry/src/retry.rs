//! Retries with exponential backoff for transient registry failures.

use std::time::Duration;

/// When and how often a failed request is repeated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; 1 turns retries off.
    pub max_attempts: u32,
    /// The wait after the first failure; each later wait doubles it.
    pub initial_backoff: Duration,
    /// The maximum wait, which also caps a `Retry-After` from the registry.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Returns the wait before attempt `attempt + 1`, after `attempt` failures (counting
    /// from 1), or the registry's `Retry-After` seconds when it sent them, capped either way.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let computed = self.initial_backoff.saturating_mul(1 << exponent);
        retry_after.unwrap_or(computed).min(self.max_backoff)
    }

    /// Tells whether another attempt follows attempt number `attempt`.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }
}

/// Tells whether an HTTP status is worth a retry: any 5xx, and 429 Too Many Requests.
pub(crate) fn is_transient_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// Tells whether a transport error is worth a retry: connection failures, resets,
/// timeouts and bodies cut short. Errors in building the request are not.
pub(crate) fn is_transient_error(error: &reqwest::Error) -> bool {
    !error.is_builder() && !error.is_redirect()
}

/// Parses a `Retry-After` header given in seconds. HTTP dates are ignored, so the
/// computed backoff applies to them.
pub(crate) fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_until_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        assert_eq!(policy.backoff(1, None), Duration::from_millis(100));
        assert_eq!(policy.backoff(2, None), Duration::from_millis(200));
        assert_eq!(policy.backoff(3, None), Duration::from_millis(400));
        assert_eq!(policy.backoff(4, None), Duration::from_millis(500));
        assert_eq!(policy.backoff(40, None), Duration::from_millis(500));
    }

    #[test]
    fn retry_after_is_capped() {
        let policy = RetryPolicy::default();
        let wait = policy.backoff(1, Some(Duration::from_secs(3600)));
        assert_eq!(wait, policy.max_backoff);
    }

    #[test]
    fn transient_statuses() {
        for status in [429, 500, 502, 503, 504] {
            assert!(is_transient_status(status), "{status}");
        }
        for status in [200, 201, 400, 401, 404, 416] {
            assert!(!is_transient_status(status), "{status}");
        }
    }

    #[test]
    fn retry_after_seconds_parse() {
        assert_eq!(parse_retry_after(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn attempts_are_bounded() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(policy.allows_another(2));
        assert!(!policy.allows_another(3));
    }
}

//! How far the projections have followed the log: the writer thread moves both marks, and
//! readers wait on them so that a page shows every row committed before it was asked for
//! (a user's own action included), or says how far behind it is.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// The log's last committed row and the last row the projections have taken in.
pub struct ProjectionProgress {
    appended: AtomicI64,
    projected: watch::Sender<i64>,
    /// When the oldest row not yet projected was committed (epoch ms), 0 when none waits.
    oldest_waiting_ms: AtomicI64,
}

/// How far the projections are behind the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lag {
    pub rows: i64,
    pub millis: i64,
}

impl Lag {
    /// In words, for banners and `/healthz`; `None` when there is no lag.
    pub fn describe(self) -> Option<String> {
        (self.rows > 0).then(|| {
            format!(
                "the projections are {} log row{} ({:.1} s) behind the log",
                self.rows,
                if self.rows == 1 { "" } else { "s" },
                self.millis as f64 / 1_000.0
            )
        })
    }
}

impl ProjectionProgress {
    /// The log ends at row `appended`; the projections have taken in rows up to `projected`.
    pub fn new(appended: i64, projected: i64) -> Self {
        Self {
            appended: AtomicI64::new(appended),
            projected: watch::Sender::new(projected),
            oldest_waiting_ms: AtomicI64::new(if projected < appended {
                chrono::Utc::now().timestamp_millis()
            } else {
                0
            }),
        }
    }

    /// The writer committed rows up to `id`; the oldest not yet projected was committed at
    /// `oldest_waiting_ms`.
    pub fn appended(&self, id: i64, oldest_waiting_ms: i64) {
        self.appended.store(id, Ordering::Release);
        self.oldest_waiting_ms.store(oldest_waiting_ms, Ordering::Release);
    }

    /// The projections took in rows up to `id`; `oldest_waiting_ms` as for [`Self::appended`].
    pub fn projected(&self, id: i64, oldest_waiting_ms: i64) {
        self.oldest_waiting_ms.store(oldest_waiting_ms, Ordering::Release);
        self.projected.send_replace(id);
    }

    pub fn last_appended(&self) -> i64 {
        self.appended.load(Ordering::Acquire)
    }

    pub fn last_projected(&self) -> i64 {
        *self.projected.borrow()
    }

    /// The lag now.
    pub fn lag(&self) -> Lag {
        let rows = (self.last_appended() - self.last_projected()).max(0);
        let oldest = self.oldest_waiting_ms.load(Ordering::Acquire);
        let millis =
            if rows > 0 && oldest > 0 { (chrono::Utc::now().timestamp_millis() - oldest).max(0) } else { 0 };
        Lag { rows, millis }
    }

    /// Waits until every row committed before the call is projected, at most `limit`; returns
    /// whether they are.
    pub async fn wait_for_rows_committed_so_far(&self, limit: Duration) -> bool {
        let target = self.last_appended();
        let mut projected = self.projected.subscribe();
        if *projected.borrow_and_update() >= target {
            return true;
        }
        let caught_up = tokio::time::timeout(limit, projected.wait_for(|id| *id >= target)).await;
        matches!(caught_up, Ok(Ok(_)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_lag_counts_rows_and_the_age_of_the_oldest_waiting() {
        let progress = ProjectionProgress::new(10, 10);
        assert_eq!(progress.lag(), Lag::default());
        assert_eq!(progress.lag().describe(), None);
        progress.appended(14, chrono::Utc::now().timestamp_millis() - 1_500);
        let lag = progress.lag();
        assert_eq!(lag.rows, 4);
        assert!((1_500..5_000).contains(&lag.millis), "{lag:?}");
        assert!(lag.describe().unwrap().starts_with("the projections are 4 log rows (1."), "{lag:?}");
        progress.projected(14, 0);
        assert_eq!(progress.lag(), Lag::default());
    }

    #[test]
    fn a_start_behind_the_log_counts_as_lag() {
        let progress = ProjectionProgress::new(20, 12);
        assert_eq!(progress.lag().rows, 8);
    }

    #[tokio::test]
    async fn a_reader_waits_for_the_rows_committed_before_it_and_no_longer() {
        let progress = Arc::new(ProjectionProgress::new(5, 5));
        assert!(
            progress.wait_for_rows_committed_so_far(Duration::from_millis(1)).await,
            "nothing to wait for"
        );
        progress.appended(7, chrono::Utc::now().timestamp_millis());
        let waiting = {
            let progress = progress.clone();
            tokio::spawn(
                async move { progress.wait_for_rows_committed_so_far(Duration::from_secs(10)).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "row 7 is not projected yet");
        progress.projected(6, chrono::Utc::now().timestamp_millis());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "row 7 is still not projected");
        // Rows committed after the reader arrived are not waited for.
        progress.appended(9, chrono::Utc::now().timestamp_millis());
        progress.projected(7, chrono::Utc::now().timestamp_millis());
        assert!(waiting.await.unwrap());
        // A reader that waits too long is served anyway, and told so.
        assert!(!progress.wait_for_rows_committed_so_far(Duration::from_millis(30)).await);
    }
}

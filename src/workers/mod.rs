//! Background work: the SLA sweeper and the outbox mailer. Each is a cancellable loop around a
//! public `run_once`, so tests drive them step by step and shutdown waits for them.

pub mod mailer;
pub mod sensors;
pub mod sweeper;
pub mod webhooks;

use std::time::Duration;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::context::AppContext;

pub struct Workers {
    pub token: CancellationToken,
    pub tracker: TaskTracker,
}

impl Workers {
    /// Spawns the loops, stopped by `token` (cancelled when a drain starts).
    pub fn spawn_with(ctx: &AppContext, token: CancellationToken) -> Self {
        let tracker = TaskTracker::new();
        tracker.spawn(sweeper::run(ctx.clone(), token.clone()));
        tracker.spawn(mailer::run(ctx.clone(), token.clone()));
        tracker.spawn(webhooks::run(ctx.clone(), token.clone()));
        tracker.spawn(sensors::run(ctx.clone(), token.clone()));
        tracker.close();
        Self { token, tracker }
    }

    /// Stops the loops between ticks and waits for the tick in progress to finish.
    pub async fn shutdown(self) {
        self.token.cancel();
        self.tracker.wait().await;
    }
}

/// Sleeps `for_how_long`, or less if cancelled; false when cancelled.
async fn pause(token: &CancellationToken, for_how_long: Duration) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(for_how_long) => true,
    }
}

//! Read-your-writes for pages and APIs: the projections follow the log a moment after each
//! append is answered, so a read first waits until they hold every row committed before it
//! arrived (the user's own action, the webhook a test just sent), for at most [`PAGE_WAIT`];
//! past that it is served as it is and the page's banner says how far behind it is.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error};

use super::AppState;

/// How long a read waits for the projections at most.
pub const PAGE_WAIT: Duration = Duration::from_secs(2);

/// Holds back every request but webhooks, health and metrics until the projections have
/// caught up with the log as it was when the request arrived: pages and APIs read them, and
/// actions look up what they act on through them.
pub async fn projections_caught_up(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let path = request.path();
    let reads_projections = !path.starts_with("/webhooks/")
        && !path.starts_with("/static/")
        && path != "/healthz"
        && path != "/metrics";
    if reads_projections {
        if let Some(state) = request.app_data::<web::Data<AppState>>() {
            state.progress.wait_for_rows_committed_so_far(PAGE_WAIT).await;
        }
    }
    next.call(request).await
}

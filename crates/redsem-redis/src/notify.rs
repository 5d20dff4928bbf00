//! Release notifications over redis-rs: a RESP3 connection, opened on the
//! first subscription, whose push messages feed redsem's hub.

use async_trait::async_trait;
use futures::lock::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use redsem_core::{BackendError, Channels, NotificationSink, Notifications, Subscriber};

use crate::convert;
use crate::runtime::RuntimeContext;

/// The subscriber connection of one backend (and its clones).
#[derive(Debug)]
pub(crate) struct PushSubscriber {
    client: redis::Client,
    runtime: RuntimeContext,
    sink: std::sync::OnceLock<NotificationSink>,
    /// Opened on first use, dropped after an error so the next subscribe
    /// reconnects.
    conn: Mutex<Option<MultiplexedConnection>>,
}

/// A hub whose subscriptions go through a RESP3 connection made from
/// `client` (the same server the backend reaches).
pub(crate) fn hub(
    client: &redis::Client,
    runtime: RuntimeContext,
) -> Result<Notifications, BackendError> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(settings)).map_err(convert::error)?;
    let subscriber = std::sync::Arc::new(PushSubscriber {
        client,
        runtime,
        sink: std::sync::OnceLock::new(),
        conn: Mutex::new(None),
    });
    let hub = Notifications::new(Channels::Global, subscriber.clone());
    let _ = subscriber.sink.set(hub.sink());
    Ok(hub)
}

impl PushSubscriber {
    async fn connect(&self) -> Result<MultiplexedConnection, BackendError> {
        let sink = self.sink.get().cloned();
        let on_push = move |info: PushInfo| -> Result<(), std::convert::Infallible> {
            if let Some(sink) = &sink {
                deliver(sink, &info);
            }
            Ok(())
        };
        let config = AsyncConnectionConfig::new().set_push_sender(on_push);
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(convert::error)
    }

    /// Runs `SUBSCRIBE`/`UNSUBSCRIBE`, reconnecting first if needed.
    async fn set(&self, channel: &str, on: bool) -> Result<(), BackendError> {
        self.runtime
            .run(async {
                let mut slot = self.conn.lock().await;
                let mut conn = match slot.as_ref() {
                    Some(conn) => conn.clone(),
                    None if !on => return Ok(()),
                    None => self.connect().await?,
                };
                let done = if on {
                    conn.subscribe(channel).await
                } else {
                    conn.unsubscribe(channel).await
                };
                match done {
                    Ok(()) => {
                        *slot = Some(conn);
                        Ok(())
                    }
                    Err(e) => {
                        *slot = None;
                        Err(convert::error(e))
                    }
                }
            })
            .await
    }
}

/// A push message: a release on a channel, or the connection's end.
fn deliver(sink: &NotificationSink, info: &PushInfo) {
    match info.kind {
        PushKind::Message | PushKind::SMessage => {
            if let Some(Value::BulkString(channel)) = info.data.first() {
                sink.notify(channel);
            }
        }
        PushKind::Disconnection => sink.reset(),
        _ => {}
    }
}

#[async_trait]
impl Subscriber for PushSubscriber {
    async fn subscribe(&self, channel: &str) -> Result<(), BackendError> {
        self.set(channel, true).await
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BackendError> {
        self.set(channel, false).await
    }
}

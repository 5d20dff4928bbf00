//! Release notifications over fred: a `SubscriberClient` from the same
//! configuration, connected on the first subscription, whose messages feed
//! redsem's hub. On a cluster it uses sharded pub/sub (`SSUBSCRIBE`), which
//! fred routes to the shard of each channel.

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::config::{Config, ReconnectPolicy};
use fred::types::Builder;
use redsem_core::{BackendError, Channels, NotificationSink, Notifications, Subscriber};
use tokio::sync::broadcast::error::RecvError;

use crate::convert;
use crate::runtime::RuntimeContext;

/// A hub whose subscriptions go through a subscriber client built from
/// `config`.
pub(crate) fn hub(config: Config, runtime: RuntimeContext) -> Result<Notifications, BackendError> {
    let channels = if config.server.is_clustered() {
        Channels::Sharded
    } else {
        Channels::Global
    };
    let client = Builder::from_config(config)
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build_subscriber_client()
        .map_err(convert::error)?;
    let subscriber = FredSubscriber {
        client,
        runtime,
        channels,
        sink: std::sync::OnceLock::new(),
        started: futures::lock::Mutex::new(false),
    };
    let shared = std::sync::Arc::new(subscriber);
    let hub = Notifications::new(channels, shared.clone());
    let _ = shared.sink.set(hub.sink());
    Ok(hub)
}

#[derive(Debug)]
struct FredSubscriber {
    client: SubscriberClient,
    runtime: RuntimeContext,
    channels: Channels,
    sink: std::sync::OnceLock<NotificationSink>,
    /// Whether the client is connected and its message loop runs.
    started: futures::lock::Mutex<bool>,
}

impl FredSubscriber {
    /// Connects on first use and starts the loop that hands messages to
    /// the hub (and tells it when a reconnect may have lost some).
    async fn start(&self) -> Result<(), BackendError> {
        let mut started = self.started.lock().await;
        if *started {
            return Ok(());
        }
        let _task = self.client.init().await.map_err(convert::error)?;
        let sink = self.sink.get().cloned();
        let mut messages = self.client.message_rx();
        let mut reconnects = self.client.reconnect_rx();
        let Some(sink) = sink else {
            return Ok(());
        };
        let on_reconnect = sink.clone();
        tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(message) => sink.notify(message.channel.as_bytes()),
                    // Some were missed: heads try at once.
                    Err(RecvError::Lagged(_)) => sink.reset(),
                    Err(RecvError::Closed) => return,
                }
            }
        });
        tokio::spawn(async move {
            // Subscriptions and messages may be lost across a reconnect.
            while !matches!(reconnects.recv().await, Err(RecvError::Closed)) {
                on_reconnect.reset();
            }
        });
        *started = true;
        Ok(())
    }

    async fn set(&self, channel: &str, on: bool) -> Result<(), BackendError> {
        self.runtime
            .run(async {
                self.start().await?;
                let done = match (self.channels, on) {
                    (Channels::Sharded, true) => self.client.ssubscribe(channel).await,
                    (Channels::Sharded, false) => self.client.sunsubscribe(channel).await,
                    (_, true) => self.client.subscribe(channel).await,
                    (_, false) => self.client.unsubscribe(channel).await,
                };
                done.map_err(convert::error)
            })
            .await
    }
}

impl Drop for FredSubscriber {
    fn drop(&mut self) {
        // The client's connection task runs until told to quit.
        if !self.started.try_lock().is_some_and(|started| *started) {
            return;
        }
        let client = self.client.clone();
        let quit = async move {
            let _ = client.quit().await;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(quit);
        } else if let Some(handle) = self.runtime.handle() {
            handle.spawn(quit);
        }
    }
}

#[async_trait]
impl Subscriber for FredSubscriber {
    async fn subscribe(&self, channel: &str) -> Result<(), BackendError> {
        self.set(channel, true).await
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BackendError> {
        self.set(channel, false).await
    }
}

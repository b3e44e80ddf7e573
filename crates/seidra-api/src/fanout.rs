//! Routing bus events to the WebSocket connections that may see them.
//!
//! One task per process reads the event bus and hands each event only to its owner's
//! connections (and owner-less `system` events to admins'), so an event costs O(its
//! recipients), not O(every connection): with 1,000 clients each following its own job, a
//! per-connection filter did 1,000 wake-ups and owner checks per event and saturated 2 cores at
//! ~200 events/s. The message body is rendered once per event; each connection only prefixes
//! its own sequence id.
//!
//! Every connection has a bounded queue. A connection whose queue is full is dropped from the
//! routing table and flagged as lagged; its session then closes it with 4008 and the client
//! resynchronises from the snapshot on reconnect. Nobody else waits for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use seidra_events::{Channel, Event, EventBus};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Events a connection may have queued before it counts as too slow.
pub const CONNECTION_QUEUE: usize = 1024;

/// An event ready to send: its channel (for per-connection subscriptions), its type (metrics)
/// and its JSON body without the connection's `id`.
#[derive(Debug)]
pub struct Outgoing {
    /// Channel of the event.
    pub channel: Channel,
    /// Event type.
    pub kind: String,
    /// `{"type":…,"channel":…,"job_id":…,"data":…,"at":…}`.
    pub body: String,
}

impl Outgoing {
    fn render(event: &Event) -> Self {
        let body = json!({
            "type": event.kind,
            "channel": event.channel,
            "job_id": event.job_id,
            "data": event.data,
            "at": event.at,
        })
        .to_string();
        Self { channel: event.channel, kind: event.kind.clone(), body }
    }

    /// The body with `"id": seq` as its first field.
    pub fn with_id(&self, seq: u64) -> String {
        let rest = self.body.strip_prefix('{').unwrap_or(&self.body);
        let mut text = String::with_capacity(self.body.len() + 24);
        text.push_str("{\"id\":");
        text.push_str(&seq.to_string());
        if rest != "}" {
            text.push(',');
        }
        text.push_str(rest);
        text
    }
}

struct Route {
    id: u64,
    admin: bool,
    tx: mpsc::Sender<Arc<Outgoing>>,
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct Table {
    by_user: HashMap<Uuid, Vec<Route>>,
}

/// The per-process routing table; cheap to clone.
#[derive(Clone)]
pub struct EventRouter {
    table: Arc<Mutex<Table>>,
    next_id: Arc<AtomicU64>,
}

/// A connection's place in the routing table; leaving it (drop) unregisters.
pub struct Registration {
    /// Events for this connection, in bus order.
    pub events: mpsc::Receiver<Arc<Outgoing>>,
    lagged: Arc<AtomicBool>,
    user: Uuid,
    id: u64,
    table: Arc<Mutex<Table>>,
}

impl Registration {
    /// Whether the connection was dropped for falling behind (its queue filled up).
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Relaxed)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(routes) = table.by_user.get_mut(&self.user) {
            routes.retain(|r| r.id != self.id);
            if routes.is_empty() {
                table.by_user.remove(&self.user);
            }
        }
    }
}

impl EventRouter {
    /// Starts the routing task on `bus`; it ends when the bus closes.
    pub fn start(bus: &EventBus) -> Self {
        let router = Self { table: Arc::default(), next_id: Arc::default() };
        let mut events = bus.subscribe();
        let table = router.table.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => dispatch(&table, &event),
                    Err(RecvError::Lagged(missed)) => {
                        // Every connection may have missed events: all of them resynchronise.
                        tracing::warn!(
                            missed,
                            "event router fell behind the bus; disconnecting every WebSocket client"
                        );
                        lag_everyone(&table);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        router
    }

    /// Registers a connection of `user`. Subscribe before reading any snapshot, so nothing
    /// falls between the two.
    pub fn register(&self, user: Uuid, admin: bool) -> Registration {
        let (tx, events) = mpsc::channel(CONNECTION_QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let lagged = Arc::new(AtomicBool::new(false));
        let route = Route { id, admin, tx, lagged: lagged.clone() };
        self.table.lock().unwrap_or_else(PoisonError::into_inner).by_user.entry(user).or_default().push(route);
        Registration { events, lagged, user, id, table: self.table.clone() }
    }
}

fn dispatch(table: &Mutex<Table>, event: &Event) {
    if event.channel == Channel::Control {
        return;
    }
    let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
    let mut message: Option<Arc<Outgoing>> = None;
    let mut render = || message.get_or_insert_with(|| Arc::new(Outgoing::render(event))).clone();
    match event.owner_id {
        Some(owner) => {
            if let Some(routes) = table.by_user.get_mut(&owner) {
                let msg = render();
                routes.retain(|r| deliver(r, &msg));
            }
        }
        None if event.channel == Channel::System => {
            for routes in table.by_user.values_mut() {
                if routes.iter().any(|r| r.admin) {
                    let msg = render();
                    routes.retain(|r| !r.admin || deliver(r, &msg));
                }
            }
        }
        None => {}
    }
}

/// Queues `msg` for a connection; false (drop the route) when it is gone or too slow.
fn deliver(route: &Route, msg: &Arc<Outgoing>) -> bool {
    match route.tx.try_send(msg.clone()) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            route.lagged.store(true, Ordering::Relaxed);
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

fn lag_everyone(table: &Mutex<Table>) {
    let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
    for routes in table.by_user.values() {
        for r in routes {
            r.lagged.store(true, Ordering::Relaxed);
        }
    }
    table.by_user.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(owner: Option<Uuid>, channel: Channel) -> Event {
        Event {
            kind: "job.started".into(),
            channel,
            owner_id: owner,
            job_id: None,
            data: json!({"n": 1}),
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn id_is_spliced_in_front() {
        let out = Outgoing::render(&event(None, Channel::Jobs));
        let v: serde_json::Value = serde_json::from_str(&out.with_id(7)).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["type"], "job.started");
        assert_eq!(v["data"]["n"], 1);
    }

    #[tokio::test]
    async fn events_reach_only_their_owner_and_admins_get_system() {
        let bus = EventBus::in_process();
        let router = EventRouter::start(&bus);
        let (alice, bob, admin) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut a = router.register(alice, false);
        let mut b = router.register(bob, false);
        let mut adm = router.register(admin, true);
        dispatch(&router.table, &event(Some(alice), Channel::Jobs));
        dispatch(&router.table, &event(None, Channel::System));
        dispatch(&router.table, &event(Some(alice), Channel::Control));
        assert_eq!(a.events.try_recv().unwrap().channel, Channel::Jobs);
        assert!(a.events.try_recv().is_err(), "alice gets neither system nor control events");
        assert!(b.events.try_recv().is_err(), "bob gets nothing of alice's");
        assert_eq!(adm.events.try_recv().unwrap().channel, Channel::System);
        assert!(adm.events.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_queue_flags_the_connection_and_unroutes_it() {
        let bus = EventBus::in_process();
        let router = EventRouter::start(&bus);
        let alice = Uuid::new_v4();
        let slow = router.register(alice, false);
        let mut fast = router.register(alice, false);
        for _ in 0..=CONNECTION_QUEUE {
            dispatch(&router.table, &event(Some(alice), Channel::Jobs));
            let _ = fast.events.try_recv();
        }
        assert!(slow.lagged(), "the connection that never read is flagged");
        assert!(!fast.lagged());
        dispatch(&router.table, &event(Some(alice), Channel::Jobs));
        assert!(fast.events.try_recv().is_ok(), "the other connection keeps receiving");
        drop(slow);
        drop(fast);
        assert!(router.table.lock().unwrap().by_user.is_empty(), "dropping registrations cleans the table");
    }
}

//! Real-time messages owed once the transaction that caused them commits.

use spog_core::Id;
use spog_core::model::Account;

use crate::hub::bus::{Bus, BusEvent};

/// Real-time messages owed once the transaction commits.
#[derive(Default)]
#[must_use = "announcements are sent after the transaction commits"]
pub struct Announcements {
    events: Vec<BusEvent>,
    /// Dashboard topics whose data changed, announced coalesced ([`Bus::touch`]).
    touched: Vec<(Id<Account>, &'static str)>,
}

impl Announcements {
    pub fn push(&mut self, event: BusEvent) {
        self.events.push(event);
    }

    /// The account's dashboard `topic` changed.
    pub fn touch(&mut self, account: Id<Account>, topic: &'static str) {
        self.touched.push((account, topic));
    }

    pub async fn send(self, bus: &Bus) {
        for event in self.events {
            bus.publish(event).await;
        }
        for (account, topic) in self.touched {
            bus.touch(account, topic);
        }
    }
}

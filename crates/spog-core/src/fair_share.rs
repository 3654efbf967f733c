//! Fair shares of free delivery slots (SPEC 5.5 "Fairness", issue 12): a free slot goes to
//! the account with due deliveries holding the fewest slots, then to its target holding the
//! fewest; targets at their limit are skipped. Ties go to whoever's earliest due delivery has
//! waited longest. So one slow endpoint holds at most its limit, and an account's backlog
//! never keeps another account's due delivery waiting for more than the next free slot.

use std::collections::{BTreeSet, HashMap};

/// A target with due deliveries, as the claim sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub account: String,
    pub target: String,
    /// Attempts in flight to the target now, on every instance.
    pub held: u32,
    /// Attempts the target may have in flight at once.
    pub limit: u32,
    /// Due deliveries waiting (counted up to some bound).
    pub due: u32,
    /// When the earliest of them came due (microseconds).
    pub oldest_due: i64,
}

/// How many of `slots` free slots each candidate gets, in the candidates' order.
/// `account_held` gives the attempts each account has in flight now (absent: none).
pub fn allocate(
    candidates: &[Candidate],
    account_held: &HashMap<String, u32>,
    slots: u32,
) -> Vec<u32> {
    let mut granted = vec![0u32; candidates.len()];
    let mut accounts: HashMap<&str, Account> = HashMap::new();
    for (i, candidate) in candidates.iter().enumerate() {
        if candidate.due == 0 || candidate.held >= candidate.limit {
            continue;
        }
        let account = accounts
            .entry(candidate.account.as_str())
            .or_insert_with(|| Account {
                held: account_held.get(&candidate.account).copied().unwrap_or(0),
                oldest_due: candidate.oldest_due,
                targets: BTreeSet::new(),
            });
        account.oldest_due = account.oldest_due.min(candidate.oldest_due);
        account
            .targets
            .insert((candidate.held, candidate.oldest_due, i));
    }
    let mut order: BTreeSet<(u32, i64, &str)> = accounts
        .iter()
        .map(|(name, a)| (a.held, a.oldest_due, *name))
        .collect();
    for _ in 0..slots {
        let Some((held, oldest_due, name)) = order.pop_first() else {
            break;
        };
        let account = accounts.get_mut(name).expect("an account in the order");
        let (target_held, target_due, i) = account
            .targets
            .pop_first()
            .expect("an account in the order has a target with room");
        granted[i] += 1;
        let candidate = &candidates[i];
        let room_left = target_held + 1 < candidate.limit && granted[i] < candidate.due;
        if room_left {
            account.targets.insert((target_held + 1, target_due, i));
        }
        account.held = held + 1;
        if !account.targets.is_empty() {
            order.insert((account.held, oldest_due, name));
        }
    }
    granted
}

struct Account {
    held: u32,
    oldest_due: i64,
    /// (held, oldest due, candidate index) of its targets with room.
    targets: BTreeSet<(u32, i64, usize)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(account: &str, target: &str, held: u32, due: u32, oldest_due: i64) -> Candidate {
        Candidate {
            account: account.to_owned(),
            target: target.to_owned(),
            held,
            limit: 16,
            due,
            oldest_due,
        }
    }

    #[test]
    fn a_backlog_to_one_target_holds_at_most_its_limit() {
        let candidates = [candidate("a", "black-hole", 0, 5_000, 1)];
        assert_eq!(allocate(&candidates, &HashMap::new(), 256), [16]);
        let candidates = [candidate("a", "black-hole", 16, 5_000, 1)];
        assert_eq!(allocate(&candidates, &HashMap::new(), 256), [0]);
    }

    #[test]
    fn the_account_holding_the_fewest_slots_is_served_first() {
        let candidates = [
            candidate("a", "a1", 15, 5_000, 1),
            candidate("a", "a2", 15, 5_000, 1),
            candidate("b", "b1", 0, 1, 1_000),
        ];
        let held = HashMap::from([("a".to_owned(), 30)]);
        // One free slot: B's, although A's deliveries came due long before.
        assert_eq!(allocate(&candidates, &held, 1), [0, 0, 1]);
        assert_eq!(allocate(&candidates, &held, 10), [1, 1, 1]);
    }

    #[test]
    fn slots_alternate_between_accounts_and_their_targets() {
        let candidates = [
            candidate("a", "a1", 0, 100, 1),
            candidate("a", "a2", 0, 100, 2),
            candidate("b", "b1", 0, 100, 3),
        ];
        assert_eq!(allocate(&candidates, &HashMap::new(), 4), [1, 1, 2]);
        assert_eq!(allocate(&candidates, &HashMap::new(), 1), [1, 0, 0]);
    }

    #[test]
    fn a_target_gets_no_more_than_it_has_due_and_ties_go_to_the_longest_waiting() {
        let candidates = [
            candidate("a", "a1", 0, 2, 50),
            candidate("b", "b1", 0, 100, 10),
        ];
        assert_eq!(allocate(&candidates, &HashMap::new(), 100), [2, 16]);
        assert_eq!(allocate(&candidates, &HashMap::new(), 1), [0, 1]);
    }
}

//! Alert rules, alerts and metric evaluation state (SPEC 7.3).

pub mod alerts;
pub mod metric_states;
pub mod rules;
pub mod silences;
pub mod silent_series;

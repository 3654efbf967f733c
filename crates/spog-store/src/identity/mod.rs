//! Accounts, organizations, users, roles, API tokens, login sessions and hosts (SPEC 2).
//! Every function takes the account it acts in: another account's rows are never found.

pub mod accounts;
pub mod auth_settings;
pub mod hosts;
pub mod login_throttle;
pub mod organizations;
pub mod providers;
pub mod roles;
pub mod sessions;
pub mod sso_logins;
pub mod tokens;
pub mod users;

//! Who may do what: which web origins may act on the server ([`origin`]), and what callers
//! without a credential may take, per client address ([`budgets`]). Pure policies: the
//! caller passes the time, the address and the headers.

pub mod budgets;
pub mod origin;

//! Faults on loopback: real TCP on 127.0.0.1, real time, short timeouts.
//!
//! The machines that run these are shared and noisy, so nothing here
//! asserts speed. Lower bounds are deterministic (a timer never fires
//! early); upper bounds are generous and only catch hangs.
//!
//! faults/server_gone.rs: the server dies, is down or stops reading;
//! faults/hostile_clients.rs: clients misbehave; faults/handlers.rs:
//! handlers misbehave; faults/shutdown.rs: shutdown.

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
}

#[path = "faults/handlers.rs"]
mod handlers;
#[path = "faults/hostile_clients.rs"]
mod hostile_clients;
#[path = "faults/server_gone.rs"]
mod server_gone;
#[path = "faults/shutdown.rs"]
mod shutdown;

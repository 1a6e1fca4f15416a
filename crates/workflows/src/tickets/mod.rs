//! Photo tickets: a brand campaign where each customer gets a personalised cinema-ticket image
//! (generated picture, movie-style Korean title and tagline, brand layout, visible AI label),
//! one at a time or thousands from a CSV.
//!
//! - [`campaign`]: the versioned campaign spec.
//! - [`steps`]: the nine recorded, re-runnable steps of one ticket.
//! - [`csv`]: reading agencies' customer files (UTF-8/BOM/CP949, per-row errors).
//! - [`store`]: campaigns, tickets, batches (SQLite next to the platform's tables).
//! - [`app`]: the service and the two apps (`atelier/photo-ticket`, `atelier/photo-ticket-batch`).
//! - [`local`]: running the steps without a server (`atelier ticket`).
//! - [`share`]: the public share page and the batch results (links CSV, ZIP).

pub mod app;
pub mod campaign;
pub mod csv;
pub mod local;
pub mod share;
pub mod steps;
pub mod store;

pub use app::{PhotoTicketApp, TicketBatchApp, Tickets, BATCH_APP, TICKET_APP};
pub use campaign::{Campaign, CampaignSpec};
pub use steps::{Step, TicketHost, TicketWorkflow};
pub use store::{SqlTickets, TicketInput, TicketRecord, TicketStore};
